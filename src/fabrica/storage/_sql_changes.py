"""The SQL change log: revisions per collection, and the log of changes, gap-free.

Every write starts by taking its revision from its collection's row in
``fabrica_collections`` (``UPDATE ... SET revision = revision + 1``), which locks that row
until the write commits or rolls back. So the writes of one collection take their numbers
and commit one after the other, in revision order, and a reader that sees revision r
committed sees every earlier one: `changes` is gap-free by construction, and `latest` is
that row's committed revision, one indexed single-row read. Writers of different
collections never meet. A rolled-back write gives its number back (nobody saw it), so the
numbers of a collection are consecutive from its first logged write.

The row lock is the first lock a write takes and each write touches one collection, so
writers cannot deadlock on it with each other, with the outbox or the label and version
tables. The first write of a new collection finds no row: it rolls back, inserts the row in
a short transaction of its own (``INSERT`` that ignores a duplicate, so two processes doing
it at once both succeed) and tries again. A new row starts at the database's revision
counter, above any version a deleted resource of that name ever had.

Compaction deletes the oldest changes and raises the horizon in one transaction; a reader
gets rows and horizon from one statement (one snapshot), so it can tell when it asked for
changes that are gone.
"""

from __future__ import annotations

import builtins
from typing import Any, cast

from sqlalchemy import Connection, and_, delete, insert, select, update
from sqlalchemy import func as sql
from sqlalchemy.dialects import mysql, postgresql, sqlite

from ._base import ChangeType, Document, Gone, StoredChange
from ._sql_query import decode, encode
from ._sql_schema import changes, collections

__all__ = [
    "NoCollectionRow",
    "allocate",
    "compact",
    "ensure_collection",
    "horizon",
    "latest",
    "read_changes",
    "record",
]


class NoCollectionRow(Exception):  # noqa: N818 (a signal to the caller, not an error)
    """The collection has no row yet: make it (`ensure_collection`) and run the write again."""

    def __init__(self, collection: str) -> None:
        super().__init__(collection)
        self.collection = collection


def allocate(conn: Connection, collection: str) -> int:
    """The write's revision; locks the collection's row until the transaction ends."""
    where = collections.c.collection == collection
    if conn.dialect.name in ("mysql", "mariadb"):  # no UPDATE ... RETURNING there
        result = conn.execute(update(collections).where(where).values(
            revision=sql.last_insert_id(collections.c.revision + 1)))
        if result.rowcount != 1:
            raise NoCollectionRow(collection)
        # LAST_INSERT_ID(expr) is also the statement's insert id: no second round trip.
        return int(result.lastrowid)
    revision = conn.execute(update(collections).where(where).values(
        revision=collections.c.revision + 1).returning(collections.c.revision)).scalar()
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


def record(conn: Connection, collection: str, revision: int, kind: ChangeType,
           document: Document, history: int) -> None:
    """Log the change; every `history`/10 revisions, compact (the lock is ours already)."""
    conn.execute(insert(changes).values(
        collection=collection, revision=revision, uid=document["metadata"]["uid"], type=kind,
        document=encode(document)))
    if history and revision % _compaction_step(history) == 0:
        _drop_before(conn, collection, revision - history)


def latest(conn: Connection, collection: str) -> int:
    found = conn.execute(select(collections.c.revision).where(
        collections.c.collection == collection)).scalar()
    return 0 if found is None else int(found)


def horizon(conn: Connection, collection: str) -> int:
    found = conn.execute(select(collections.c.horizon).where(
        collections.c.collection == collection)).scalar()
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
    return [StoredChange(int(row.revision), cast(ChangeType, row.type), decode(row.document))
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
