"""The SQL change log: revisions per collection, and the log of changes, gap-free.

Every write takes its revision from its collection's row in ``fabrica_collections``
(``UPDATE ... SET revision = revision + 1``), which locks that row until the write commits
or rolls back. So the writes of one collection take their numbers and commit one after the
other, in revision order, and a reader that sees revision r committed sees every earlier
one: `changes` is gap-free by construction, and `latest` is that row's committed revision,
one indexed single-row read. Writers of different collections never meet. A rolled-back
write gives its number back (nobody saw it), so the numbers of a collection are
consecutive from its first logged write.

That lock serialises the writers of a collection, so a write takes it as late as it can:
`take` is its last statement before COMMIT. Everything else (the resource's row, stored
with a placeholder version, its labels and snapshot, the checks that can fail: uniqueness,
compare-and-swap) is done before; `take` then sets the row's version and logs the change
(on PostgreSQL in the same statement), and only the outbox rows follow. Documents are
stored without their version (readers take it from the row's column or the change's
revision), so nothing is written twice. The collection's row is the last lock a write
takes, after its resource's row, labels and snapshots; a writer holding it waits for
nothing another writer holds, so writers cannot wait for each other in a cycle.

The first write of a new collection finds no row at that last step: it rolls back,
inserts the row in a short transaction of its own (``INSERT`` that ignores a duplicate,
so two processes doing it at once both succeed) and runs again. A new row starts at the
database's revision counter, above any version a deleted resource of that name ever had.

Compaction deletes the oldest changes and raises the horizon in one transaction; a reader
gets rows and horizon from one statement (one snapshot), so it can tell when it asked for
changes that are gone.
"""

from __future__ import annotations

import builtins
from typing import Any, cast

from sqlalchemy import Connection, and_, bindparam, delete, insert, select, text, update
from sqlalchemy import func as sql
from sqlalchemy.dialects import mysql, postgresql, sqlite

from ._base import ChangeType, Gone, StoredChange
from ._sql_query import with_stored_version
from ._sql_schema import changes, collections, resources

__all__ = [
    "NoCollectionRow",
    "allocate",
    "compact",
    "ensure_collection",
    "horizon",
    "latest",
    "read_changes",
    "take",
]


class NoCollectionRow(Exception):  # noqa: N818 (a signal to the caller, not an error)
    """The collection has no row yet: make it (`ensure_collection`) and run the write again."""

    def __init__(self, collection: str) -> None:
        super().__init__(collection)
        self.collection = collection


# The statements of every write and every `latest`, built once (see `_sql_ops`).
_THIS_COLLECTION = collections.c.collection == bindparam("w_collection")
_ALLOCATE_MYSQL = update(collections).where(_THIS_COLLECTION).values(
    revision=sql.last_insert_id(collections.c.revision + 1))
_ALLOCATE = update(collections).where(_THIS_COLLECTION).values(
    revision=collections.c.revision + 1).returning(collections.c.revision)
_SET_VERSION = update(resources).where(
    resources.c.collection == bindparam("w_collection"), resources.c.uid == bindparam("w_uid"))
_LOG_CHANGE = insert(changes)
_LATEST = select(collections.c.revision).where(_THIS_COLLECTION)
_HORIZON = select(collections.c.horizon).where(_THIS_COLLECTION)


def allocate(conn: Connection, collection: str) -> int:
    """The write's revision; locks the collection's row until the transaction ends."""
    where = {"w_collection": collection}
    if conn.dialect.name in ("mysql", "mariadb"):  # no UPDATE ... RETURNING there
        result = conn.execute(_ALLOCATE_MYSQL, where)
        if result.rowcount != 1:
            raise NoCollectionRow(collection)
        # LAST_INSERT_ID(expr) is also the statement's insert id: no second round trip.
        return int(result.lastrowid)
    revision = conn.execute(_ALLOCATE, where).scalar()
    if revision is None:
        raise NoCollectionRow(collection)
    return int(revision)


def ensure_collection(conn: Connection, collection: str, counter: int) -> None:
    """Give `collection` its row (starting at `counter`) unless it has one."""
    values = {"collection": collection, "revision": counter, "horizon": 0}
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(postgresql.insert(collections).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        conn.execute(sqlite.insert(collections).values(**values).on_conflict_do_nothing())
    else:
        conn.execute(mysql.insert(collections).values(**values).prefix_with("IGNORE"))


def take(conn: Connection, collection: str, uid: str, kind: ChangeType, body: str,
         history: int) -> int:
    """The last statements of a write: take its revision (which locks the collection's row
    until commit), give it to the resource's row and log the change (`body`: the document
    without its version, which readers take from the revision). Every `history`/10
    revisions, compact (the lock is ours already). PostgreSQL does it in one statement."""
    if conn.dialect.name == "postgresql":
        revision = conn.execute(_TAKE_POSTGRESQL, {
            "collection": collection, "uid": uid, "type": kind, "document": body}).scalar()
        if revision is None:
            raise NoCollectionRow(collection)
    else:
        revision = allocate(conn, collection)
        if kind != "DELETED":
            conn.execute(_SET_VERSION, {"w_collection": collection, "w_uid": uid,
                                        "resource_version": revision})
        conn.execute(_LOG_CHANGE, {"collection": collection, "revision": revision, "uid": uid,
                                   "type": kind, "document": body})
    if history and revision % _compaction_step(history) == 0:
        _drop_before(conn, collection, revision - history)
    return int(revision)


# One round trip: the lock, the resource's version and the log entry. (Nothing is logged,
# nothing returned when the collection has no row.)
_TAKE_POSTGRESQL = text("""\
WITH taken AS (
    UPDATE fabrica_collections SET revision = revision + 1
    WHERE collection = CAST(:collection AS VARCHAR) RETURNING revision
), moved AS (
    UPDATE fabrica_resources SET resource_version = taken.revision FROM taken
    WHERE fabrica_resources.collection = CAST(:collection AS VARCHAR)
      AND fabrica_resources.uid = CAST(:uid AS VARCHAR)
)
INSERT INTO fabrica_changes (collection, revision, uid, type, document)
SELECT CAST(:collection AS VARCHAR), revision, CAST(:uid AS VARCHAR), CAST(:type AS VARCHAR),
       CAST(:document AS TEXT)
FROM taken
RETURNING revision""")


def latest(conn: Connection, collection: str) -> int:
    found = conn.execute(_LATEST, {"w_collection": collection}).scalar()
    return 0 if found is None else int(found)


def horizon(conn: Connection, collection: str) -> int:
    found = conn.execute(_HORIZON, {"w_collection": collection}).scalar()
    return 0 if found is None else int(found)


def read_changes(conn: Connection, collection: str, after: int, limit: int
                 ) -> builtins.list[StoredChange]:
    """One statement, so one snapshot: the horizon and the rows agree."""
    query = (select(collections.c.horizon, changes.c.revision, changes.c.type,
                    changes.c.document)
             .select_from(collections.outerjoin(changes, and_(
                 changes.c.collection == collections.c.collection,
                 changes.c.revision > after)))
             .where(collections.c.collection == collection)
             .order_by(changes.c.revision)
             .limit(max(limit, 1)))
    rows = conn.execute(query).all()
    if rows and after < rows[0].horizon:
        raise Gone(collection, after, int(rows[0].horizon))
    if limit <= 0:
        return []
    return [StoredChange(int(row.revision), cast(ChangeType, row.type),
                         with_stored_version(row.document, row.revision))
            for row in rows if row.revision is not None]


def compact(conn: Connection, collection: str, keep: int) -> None:
    """Keep at most the newest `keep` changes (revisions are consecutive, so by number)."""
    revision = conn.execute(select(collections.c.revision).where(
        collections.c.collection == collection).with_for_update()).scalar()
    if revision is not None:
        _drop_before(conn, collection, int(revision) - max(keep, 0))


def _drop_before(conn: Connection, collection: str, new_horizon: int) -> None:
    raised: Any = conn.execute(update(collections).where(
        collections.c.collection == collection, collections.c.horizon < new_horizon,
    ).values(horizon=new_horizon))
    if raised.rowcount:
        conn.execute(delete(changes).where(changes.c.collection == collection,
                                           changes.c.revision <= new_horizon))


def _compaction_step(history: int) -> int:
    """Compact every this many revisions: about a tenth of the history, amortised."""
    return max(1, min(history // 10, 1000))
