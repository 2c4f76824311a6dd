"""The SQL change log: revisions per collection, and the log of changes, gap-free.

Every write logs its change in ``fabrica_changes`` under a revision of its collection, in
its own transaction, as its last statement but the outbox's. Where the numbers come from:

- PostgreSQL and MariaDB: a sequence per collection (``fabrica_rev_<collection>``, see
  `sequence_name`). Drawing a number locks nothing, so the writes of a collection run and
  commit in parallel, in any order; their numbers are consecutive but for the numbers of
  writes that roll back (holes). A write draws its number and logs its change in one
  statement, holding, on PostgreSQL, a transaction advisory lock on (collection, number)
  from before its change row exists until it commits or rolls back (on MariaDB, InnoDB's
  lock on the uncommitted row does the same).
- SQLite and MySQL (no sequences): the collection's row in ``fabrica_collections`` counts
  (``UPDATE ... SET settled = settled + 1``), which locks that row until the write commits,
  so the writes of a collection take their numbers and commit one after the other (SQLite
  has one writer at a time anyway); a rolled-back write gives its number back.

Readers never pass a number whose write may still commit. The collection's row holds
``settled``: every number up to it is settled (a committed change, or a number no change
will ever have). `latest` walks the log upward from the highest settled number it knows;
at the first missing number below a committed change it asks whether that number's writer
is still in flight, without waiting (`_probe`): PostgreSQL tries the advisory lock (shared,
not waiting), MariaDB inserts with a lock wait timeout of 0 (an uncommitted row of that
number makes it fail at once). A number in flight stops the walk there; a number nobody
holds is a hole (its writer rolled back, or its connection died and the database rolled it
back): the reader fills it with a *skip marker* (``type = 'SKIP'``, never returned by
`changes`) in the same statement, so no reader asks again, and the walk goes on. No reader
waits a fixed time for anything: a dead writer's transaction ends when the database sees
its connection gone, and its number is passed by the next reader.

A writer that drew its number but has not yet logged its change holds nothing (the moment
between the sequence and the insert of one statement): a reader may fill its number, and
the writer's insert then fails on the change log's primary key: `RevisionTaken`, and the
write runs again with a new number. The primary key decides every such race.

`settled` is raised by readers every `_ADVANCE` revisions (so a new process does not walk
the whole log), and, where the row counts, by every write. A new collection's row starts
at a number of its own sequence (or of the database's revision counter), above any version
a deleted resource of that name ever had.

Compaction deletes the oldest changes and raises the horizon in one transaction; a reader
gets rows and horizon from one statement (one snapshot), so it can tell when it asked for
changes that are gone.
"""

from __future__ import annotations

import builtins
import zlib
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Dialect,
    Row,
    TextClause,
    and_,
    bindparam,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy import func as sql
from sqlalchemy.dialects import mysql, postgresql, sqlite

from .._base import ChangeType, Gone, StoredChange
from ._query import with_stored_version
from ._schema import changes, collections

__all__ = [
    "SKIP",
    "NoCollectionRow",
    "RevisionTaken",
    "compact",
    "ensure_collection",
    "horizon",
    "latest",
    "newest",
    "read_changes",
    "sequence_name",
    "sequenced",
    "take",
    "take_many",
]

#: The type of a number no change will ever have (see the module docstring).
SKIP = "SKIP"
_ADVANCE = 1000  # readers store the settled revision every this many revisions
_WALK = 1000  # revisions read per statement while walking the log


class NoCollectionRow(Exception):  # noqa: N818 (a signal to the caller, not an error)
    """The collection has no row (or sequence) yet: make it (`ensure_collection`) and run
    the write again."""

    def __init__(self, collection: str) -> None:
        super().__init__(collection)
        self.collection = collection


class RevisionTaken(Exception):  # noqa: N818 (a signal to the caller, not an error)
    """A reader filled the number this write drew before the write logged it (see the
    module docstring): the write rolled back whole and runs again."""


def sequenced(dialect: Dialect) -> bool:
    """Whether revisions come from sequences (PostgreSQL, MariaDB 10.5+: sequences and
    ``INSERT ... RETURNING``) rather than the collection's row (SQLite, MySQL)."""
    if dialect.name == "postgresql":
        return True
    version = getattr(dialect, "server_version_info", None) or ()
    return bool(getattr(dialect, "is_mariadb", False)) and tuple(version[:2]) >= (10, 5)


def sequence_name(collection: str) -> str:
    """The collection's sequence: ``fabrica_rev_`` and the name with ``-`` as ``_`` (which
    collection names never hold); a long name is cut and given a checksum, so every name
    fits an identifier (63 bytes) and needs no quoting."""
    base = collection.replace("-", "_")
    if len(base) > 51:
        base = f"{base[:42]}_{zlib.crc32(collection.encode()):08x}"
    return f"fabrica_rev_{base}"


# -- writes ------------------------------------------------------------------------------


def take(conn: Connection, collection: str, uid: str, name: str, kind: ChangeType,
         body: str, history: int) -> int:
    """The last statements of a write: draw its revision, give it to the resource's row
    (found by uid and name: both unique, so any index the planner picks finds one row) and
    log the change (`body`: the document without its version, which readers take from the
    revision). Every `history`/10 revisions, compact."""
    change = {"collection": collection, "uid": uid, "type": kind, "document": body}
    row = {"collection": collection, "uid": uid, "name": name}
    dialect = conn.dialect
    if not sequenced(dialect):
        revision = _count(conn, collection)
        if kind != "DELETED":
            conn.execute(_SET_VERSION, {**row, "resource_version": revision})
        conn.execute(_LOG_CHANGE, {**change, "revision": revision})
    else:
        try:
            if dialect.name == "postgresql":
                found = conn.execute(_TAKE_POSTGRESQL, {
                    **change, "name": name, "sequence": sequence_name(collection)}).scalar()
            else:
                found = conn.execute(_take_mariadb(sequence_name(collection)),
                                     change).scalar()
        except sa_exc.IntegrityError as exc:
            raise RevisionTaken(collection) from exc
        except sa_exc.ProgrammingError as exc:
            if _no_such_sequence(exc):
                raise NoCollectionRow(collection) from exc
            raise
        if found is None:
            raise RevisionTaken(collection)  # pragma: no cover (an insert returns its row)
        revision = int(found)
        if dialect.name != "postgresql" and kind != "DELETED":
            conn.execute(_SET_VERSION, {**row, "resource_version": revision})
    if history and revision % _compaction_step(history) == 0:
        _drop_before(conn, collection, revision - history)
    return revision


def take_many(conn: Connection, collection: str, kind: ChangeType,
              entries: Sequence[tuple[str, str, str]], history: int) -> builtins.list[int]:
    """`take` for many writes of one transaction, (uid, name, body) each, in a few
    statements whatever their number; their revisions, in the order of `entries`.

    Where the row counts it is raised by the whole block at once (locked until commit, as
    by `take`), so the block's numbers are consecutive and commit together. PostgreSQL
    draws the numbers, gives them to the rows and logs the changes in one statement; it
    takes no advisory lock per number (thousands of locks would fill the lock table): a
    reader probing a number of the block meets its uncommitted change row instead and
    waits for the commit on the primary key, and a number a reader settled between its
    draw and its insert fails the insert: `RevisionTaken`, and the batch runs again.
    MariaDB takes each number as `take` does."""
    if not entries:
        return []
    dialect = conn.dialect
    if dialect.name == "postgresql":
        taken = _take_many_postgresql(conn, collection, kind, entries)
    elif sequenced(dialect):
        return [take(conn, collection, uid, name, kind, body, history)
                for uid, name, body in entries]
    else:
        last = _count(conn, collection, len(entries))
        taken = list(range(last - len(entries) + 1, last + 1))
        if kind != "DELETED":
            conn.execute(_SET_VERSION, [
                {"collection": collection, "uid": uid, "name": name, "resource_version": r}
                for (uid, name, _), r in zip(entries, taken, strict=True)])
        conn.execute(_LOG_CHANGE, [
            {"collection": collection, "uid": uid, "type": kind, "document": body,
             "revision": r} for (uid, _, body), r in zip(entries, taken, strict=True)])
    step = _compaction_step(history) if history else 0
    due = [r for r in taken if step and r % step == 0]
    if due:
        _drop_before(conn, collection, max(due) - history)
    return taken


def _take_many_postgresql(conn: Connection, collection: str, kind: ChangeType,
                          entries: Sequence[tuple[str, str, str]]) -> builtins.list[int]:
    try:
        rows = conn.execute(_TAKE_MANY_POSTGRESQL, {
            "collection": collection, "type": kind, "sequence": sequence_name(collection),
            "uids": [e[0] for e in entries], "names": [e[1] for e in entries],
            "documents": [e[2] for e in entries]}).all()
    except sa_exc.IntegrityError as exc:
        raise RevisionTaken(collection) from exc
    except sa_exc.ProgrammingError as exc:
        if _no_such_sequence(exc):
            raise NoCollectionRow(collection) from exc
        raise
    by_uid = {str(uid): int(revision) for uid, revision in rows}
    return [by_uid[uid] for uid, _, _ in entries]


_THIS_COLLECTION = collections.c.collection == bindparam("w_collection")
_COUNT_MANY_MYSQL = update(collections).where(_THIS_COLLECTION).values(
    settled=sql.last_insert_id(collections.c.settled + bindparam("w_count")))
_COUNT_MANY = update(collections).where(_THIS_COLLECTION).values(
    settled=collections.c.settled + bindparam("w_count")).returning(collections.c.settled)
_SET_VERSION = text("""\
UPDATE fabrica_resources SET resource_version = :resource_version
WHERE collection = :collection AND uid = :uid AND name = :name""")
_LOG_CHANGE = insert(changes)


def _count(conn: Connection, collection: str, count: int = 1) -> int:
    """The last of the next `count` revisions, from the collection's row, which stays
    locked until commit."""
    where = {"w_collection": collection, "w_count": count}
    if conn.dialect.name in ("mysql", "mariadb"):
        result = conn.execute(_COUNT_MANY_MYSQL, where)
        if result.rowcount != 1:
            raise NoCollectionRow(collection)
        # LAST_INSERT_ID(expr) is also the statement's insert id: no second round trip.
        return int(result.lastrowid)
    revision = conn.execute(_COUNT_MANY, where).scalar()
    if revision is None:
        raise NoCollectionRow(collection)
    return int(revision)


# The advisory lock of (collection, revision): one 64-bit key, the schema and collection
# hashed into the high half, the revision's low 32 bits in the low half. (A clash of two
# keys makes a reader take a settled number for one in flight a little longer, never the
# reverse. The one-key form never meets the two-key leases of `_leases`.)
_LOCK_KEY = ("(CAST(hashtext(current_schema() || '/' || CAST(:collection AS VARCHAR)) AS BIGINT)"
             " << 32) | ({revision} & 4294967295)")

# One round trip: the number, its lock (taken before the change row exists: the lateral
# subquery runs before its row goes on), the resource's version and the log entry.
_TAKE_POSTGRESQL = text(f"""\
WITH taken AS (
    SELECT drawn.revision
    FROM (SELECT nextval(CAST(:sequence AS REGCLASS)) AS revision OFFSET 0) AS drawn
    CROSS JOIN LATERAL (SELECT pg_advisory_xact_lock({_LOCK_KEY.format(revision="drawn.revision")})) AS held
), moved AS (
    UPDATE fabrica_resources SET resource_version = taken.revision FROM taken
    WHERE fabrica_resources.collection = CAST(:collection AS VARCHAR)
      AND fabrica_resources.uid = CAST(:uid AS VARCHAR)
      AND fabrica_resources.name = CAST(:name AS VARCHAR)
)
INSERT INTO fabrica_changes (collection, revision, uid, type, document)
SELECT CAST(:collection AS VARCHAR), revision, CAST(:uid AS VARCHAR), CAST(:type AS VARCHAR),
       CAST(:document AS TEXT)
FROM taken
RETURNING revision""")  # noqa: E501


# `_TAKE_POSTGRESQL` for a block: a number per entry, the rows' versions and the log.
_TAKE_MANY_POSTGRESQL = text("""\
WITH taken AS (
    SELECT nextval(CAST(:sequence AS REGCLASS)) AS revision, entry.uid, entry.name,
           entry.document
    FROM unnest(CAST(:uids AS VARCHAR[]), CAST(:names AS VARCHAR[]),
                CAST(:documents AS TEXT[])) AS entry(uid, name, document)
), moved AS (
    UPDATE fabrica_resources SET resource_version = taken.revision FROM taken
    WHERE fabrica_resources.collection = CAST(:collection AS VARCHAR)
      AND fabrica_resources.uid = taken.uid AND fabrica_resources.name = taken.name
)
INSERT INTO fabrica_changes (collection, revision, uid, type, document)
SELECT CAST(:collection AS VARCHAR), revision, uid, CAST(:type AS VARCHAR), document
FROM taken
RETURNING uid, revision""")


@cache
def _take_mariadb(sequence: str) -> TextClause:
    """The number and the log entry in one statement (the sequence is an identifier, so
    the statement is built per collection, once)."""
    return text(f"""\
INSERT INTO fabrica_changes (collection, revision, uid, type, document)
VALUES (:collection, NEXTVAL({sequence}), :uid, :type, :document)
RETURNING revision""")


def _no_such_sequence(exc: sa_exc.DBAPIError) -> bool:
    """PostgreSQL's undefined_table (42P01), MariaDB's 1146 "table doesn't exist"."""
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    return code == "42P01" or bool(args) and args[0] == 1146


def ensure_collection(conn: Connection, collection: str, counter: Callable[[], int]) -> None:
    """Give `collection` its row (and its sequence) unless it has them; `counter` draws a
    number of the database's revision counter, where a new collection's revisions start.

    A row missing beside an existing sequence (deleted since) starts at a number drawn from
    the sequence; a sequence missing beside a row starts just above the row's settled
    revision (every revision of the collection so far)."""
    dialect = conn.dialect
    if not sequenced(dialect):
        _insert_row(conn, collection, counter())
        return
    sequence = sequence_name(collection)
    if dialect.name == "postgresql":  # two processes creating one sequence: one at a time
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY.format(revision='0')})"),
                     {"collection": collection})
    settled = conn.execute(select(collections.c.settled).where(
        collections.c.collection == collection)).scalar()
    if settled is not None and _has_sequence(conn, sequence):
        return
    # Numbers from where the row says (the sequence continues its counting), or, for a new
    # collection, from the database's counter.
    start = counter() if settled is None else int(settled) + 1
    cache_clause = "" if dialect.name == "postgresql" else " NOCACHE"
    # MariaDB commits before DDL: nothing of this transaction precedes it but reads.
    conn.execute(text(f"CREATE SEQUENCE IF NOT EXISTS {sequence} START WITH {int(start)}"
                      f"{cache_clause}"))
    if settled is None:
        first = conn.execute(text(f"SELECT {_nextval(dialect, sequence)}")).scalar_one()
        _insert_row(conn, collection, int(first))


def _has_sequence(conn: Connection, sequence: str) -> bool:
    if conn.dialect.name == "postgresql":
        query = text("SELECT to_regclass(CAST(:name AS TEXT)) IS NOT NULL")
    else:
        query = text("SELECT COUNT(*) > 0 FROM information_schema.tables WHERE table_schema ="
                     " DATABASE() AND table_name = :name AND table_type = 'SEQUENCE'")
    return bool(conn.execute(query, {"name": sequence}).scalar())


def _nextval(dialect: Dialect, sequence: str) -> str:
    return f"nextval('{sequence}')" if dialect.name == "postgresql" else f"NEXTVAL({sequence})"


def _insert_row(conn: Connection, collection: str, settled: int) -> None:
    """The collection's row, unless another process made it first."""
    values = {"collection": collection, "settled": settled, "horizon": 0}
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(postgresql.insert(collections).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        conn.execute(sqlite.insert(collections).values(**values).on_conflict_do_nothing())
    else:
        conn.execute(mysql.insert(collections).values(**values).prefix_with("IGNORE"))


# -- reads -------------------------------------------------------------------------------


def latest(conn: Connection, collection: str, known: int) -> tuple[int, bool]:
    """(the newest revision R such that every number up to R is settled, whether a writer
    still in flight holds R + 1 with committed changes above it); `known` is a revision
    the caller knows settled already, or 0. Walks the log up from there, settling what it
    can (see the module docstring)."""
    if not known:  # start where the row says, not at the oldest change kept
        start = conn.execute(_START, {"w_collection": collection}).first()
        if start is None:
            return 0, False  # no row: never written
        known = max(int(start.settled), int(start.horizon))
    return _walk(conn, collection, known, store=True)


def newest(conn: Connection, collection: str) -> int:
    """The highest revision in the log, committed or a skip marker (0 when none)."""
    found = conn.execute(_NEWEST, {"w_collection": collection}).scalar()
    return 0 if found is None else int(found)


_NEWEST = select(sql.max(changes.c.revision)).where(
    changes.c.collection == bindparam("w_collection"))


def _settle(conn: Connection, collection: str, start: int, *, store: bool) -> int:
    """The highest R >= `start` such that every number after `start` up to R is settled,
    settling what it can on the way (skip markers, committed at once: one holds a lock
    until then). `store`: `start` itself is settled (every number up to it), so R is, and
    is stored in the row every `_ADVANCE` revisions."""
    return _walk(conn, collection, start, store=store)[0]


def _walk(conn: Connection, collection: str, start: int, *, store: bool) -> tuple[int, bool]:
    """`_settle`, and whether it stopped at a writer in flight below committed changes."""
    while True:
        rows = conn.execute(_WALK_FROM, {"w_collection": collection, "after": start,
                                         "limit": _WALK}).all()
        if not rows:
            return start, False  # no row (deleted since)
        stored = int(rows[0].settled)
        end = max(start, stored, int(rows[0].horizon))
        stopped = False
        for row in rows:
            if row.revision is None or row.revision <= end:
                continue
            if row.revision > end + 1:
                busy, filled = _probe(conn, collection, end + 1, row.revision - 1)
                if filled:
                    conn.commit()
                if busy is not None:
                    end, stopped = busy - 1, True
                    break
            end = row.revision
        if store and end - stored >= _ADVANCE:
            conn.execute(_ADVANCE_TO, {"w_collection": collection, "w_settled": end})
            conn.commit()
        if stopped or len(rows) < _WALK:
            return end, stopped
        start = end


_START = select(collections.c.settled, collections.c.horizon).where(_THIS_COLLECTION)
_ADVANCE_TO = update(collections).where(
    _THIS_COLLECTION, collections.c.settled < bindparam("w_settled")).values(
    settled=bindparam("w_settled"))


_WALK_FROM = (select(collections.c.settled, collections.c.horizon, changes.c.revision)
              .select_from(collections.outerjoin(changes, and_(
                  changes.c.collection == collections.c.collection,
                  changes.c.revision > bindparam("after"))))
              .where(collections.c.collection == bindparam("w_collection"))
              .order_by(changes.c.revision)
              .limit(bindparam("limit")))


def _probe(conn: Connection, collection: str, first: int, last: int
           ) -> tuple[int | None, bool]:
    """(the lowest number of first..last whose writer is still in flight, or None; whether
    a skip marker is left to commit). Every number below that one is settled on return:
    holes are filled with skip markers."""
    dialect = conn.dialect
    if not sequenced(dialect):  # the row counts: a missing number is still committing
        return first, False
    if dialect.name == "postgresql":
        busy, filled = conn.execute(_PROBE_POSTGRESQL, {
            "collection": collection, "first": first, "last": last}).one()
        return (None if busy is None else int(busy)), bool(filled)
    for number in range(first, last + 1):
        try:
            if conn.execute(_PROBE_MARIADB, {"collection": collection,
                                             "revision": number}).rowcount == 1:
                conn.commit()  # settled for good before the walk goes past it
        except sa_exc.OperationalError as exc:
            if getattr(exc.orig, "args", (None,))[0] != _LOCK_WAIT_TIMEOUT:
                raise
            return number, False  # a writer holds the row: still in flight
    return None, False


# Shared try-locks on the range (held to the end of this statement) find the first number
# in flight; the numbers below it nobody holds get skip markers (a committed change keeps
# its row: ON CONFLICT DO NOTHING). A writer takes its lock before its change row exists,
# so a number whose lock was free has no uncommitted row to wait for.
_PROBE_POSTGRESQL = text(f"""\
WITH busy AS (
    SELECT min(number) AS number
    FROM generate_series(CAST(:first AS BIGINT), CAST(:last AS BIGINT)) AS number
    WHERE NOT pg_try_advisory_xact_lock_shared({_LOCK_KEY.format(revision="number")})
), filled AS (
    INSERT INTO fabrica_changes (collection, revision, uid, type, document)
    SELECT CAST(:collection AS VARCHAR), free.number, '', '{SKIP}', ''
    FROM generate_series(CAST(:first AS BIGINT), CAST(:last AS BIGINT)) AS free(number), busy
    WHERE busy.number IS NULL OR free.number < busy.number
    ON CONFLICT DO NOTHING
    RETURNING revision
)
SELECT (SELECT number FROM busy), (SELECT count(*) FROM filled)""")

_LOCK_WAIT_TIMEOUT = 1205
_PROBE_MARIADB = text(f"""\
SET STATEMENT innodb_lock_wait_timeout = 0 FOR
INSERT IGNORE INTO fabrica_changes (collection, revision, uid, type, document)
VALUES (:collection, :revision, '', '{SKIP}', '')""")


def horizon(conn: Connection, collection: str) -> int:
    found = conn.execute(_HORIZON, {"w_collection": collection}).scalar()
    return 0 if found is None else int(found)


_HORIZON = select(collections.c.horizon).where(_THIS_COLLECTION)


def read_changes(conn: Connection, collection: str, after: int, limit: int, known: int
                 ) -> tuple[builtins.list[StoredChange], int]:
    """(the changes after `after`, at most `limit`, up to where every number after `after`
    is settled; the settled revision now known, `known` being one known before).

    Rows up to `known` (or `after`, when beyond it) are complete. When rows beyond exist,
    the numbers above are settled as far as they can be and the rest is read again (a
    change may have committed below the rows read meanwhile): the answer holds every
    settled change up to `limit`, as a reader that takes a short page for the end of the
    log needs."""
    reach = max(after, known)
    settled = False
    found: builtins.list[StoredChange] = []
    position, fetched = after, limit
    rows = _read(conn, collection, position, fetched, after)
    while True:
        for row in rows:
            if row.revision > reach:
                if settled:
                    return found, known
                reach = _settle(conn, collection, reach, store=after <= known)
                known = reach if after <= known else known
                settled = True
                break
            position = row.revision
            if row.type != SKIP:
                found.append(StoredChange(int(row.revision), cast(ChangeType, row.type),
                                          with_stored_version(row.document, row.revision)))
        else:
            if len(found) >= limit or len(rows) < fetched:
                return found, known
        # Read on: after settling, or when skip markers took places in a full page (a
        # short page would tell the caller the log ends there).
        fetched = limit - len(found)
        rows = _read(conn, collection, position, fetched, after)


def _read(conn: Connection, collection: str, after: int, limit: int, asked: int
          ) -> Sequence[Row[Any, Any, Any, Any]]:
    """Rows after `after`, with the horizon from the same statement (one snapshot):
    `Gone` for the caller's `asked` when `after` is below it."""
    rows = conn.execute(_READ, {"w_collection": collection, "after": after,
                                "limit": max(limit, 1)}).all()
    if rows and after < rows[0].horizon:
        raise Gone(collection, asked, int(rows[0].horizon))
    if limit <= 0:
        return []
    return [row for row in rows if row.revision is not None]


_READ = (select(collections.c.horizon, changes.c.revision, changes.c.type, changes.c.document)
         .select_from(collections.outerjoin(changes, and_(
             changes.c.collection == collections.c.collection,
             changes.c.revision > bindparam("after"))))
         .where(collections.c.collection == bindparam("w_collection"))
         .order_by(changes.c.revision)
         .limit(bindparam("limit")))


def compact(conn: Connection, collection: str, keep: int) -> None:
    """Keep at most the newest `keep` changes (revisions are consecutive, so by number)."""
    settled = conn.execute(select(collections.c.settled).where(
        collections.c.collection == collection).with_for_update()).scalar()
    if settled is not None:
        newest = conn.execute(select(sql.max(changes.c.revision)).where(
            changes.c.collection == collection)).scalar()
        top = max(int(settled), int(newest or 0))
        _drop_before(conn, collection, top - max(keep, 0))


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
