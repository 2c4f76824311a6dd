"""The storage operations as SQL, each one function on one connection in one transaction.

They are plain synchronous functions of a SQLAlchemy `Connection`, so the same code runs on
every database: `SQLStorage` calls them through ``AsyncConnection.run_sync`` on PostgreSQL
and MySQL (each ``execute`` awaits the async driver underneath), and in a worker thread on
SQLite, whose driver is synchronous anyway: one thread hop per operation instead of one per
statement. `SQLStorage` opens and commits the transaction around each call.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import (
    BindParameter,
    Connection,
    Select,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from .._base import (
    ChangeType,
    Conflict,
    Document,
    DuplicateValues,
    Invalid,
    NotFound,
    UniqueKeys,
)
from .._outbox import Outbox, OutboxEntry, OutboxMessage, OutboxStats
from .._unique import duplicates, key_hash
from . import _changes as change_log
from ._fields import prepare_fields, write_fields
from ._query import decode, encode, resource_columns, with_stored_version
from ._schema import (
    labels,
    outbox,
    resources,
    revisions,
    unique_constraints,
    unique_keys,
    versions,
)

__all__ = [
    "PENDING",
    "append_outbox",
    "create",
    "delete_resource",
    "delete_version",
    "ensure_collection",
    "fetch_one",
    "get_resource",
    "get_resource_by_name",
    "list_documents",
    "list_resources",
    "list_versions",
    "outbox_done",
    "outbox_pending",
    "outbox_stats",
    "prepare_fields",
    "swap_resource",
    "prepare_unique",
    "record_events_of",
    "uid_taken",
    "unique_holder",
    "update_resource",
    "with_version",
    "without_version",
]

_VERSION_ID = re.compile(r"^v[0-9]{1,12}\Z")
_REVISION_ROWS_KEPT = 100  # fabrica_revisions is pruned every this many writes
# The resource_version of a row written before its write took its revision (`_finish`
# sets it before commit, so no reader sees it); no expected version ever matches it.
_PENDING = PENDING = -2


# Statements built once: SQLAlchemy then finds each one's compiled form by a cache key
# memoised on the object, where a statement built per call costs its construction and the
# walk that computes its key (a few tenths of a write's CPU, measured on PostgreSQL). Values
# are bound at execution; the ``w_`` names keep WHERE parameters apart from SET columns.
_W_COLLECTION: BindParameter[str] = bindparam("w_collection")
_W_UID: BindParameter[str] = bindparam("w_uid")
_RESOURCE_ROW = (resources.c.collection == _W_COLLECTION, resources.c.uid == _W_UID)
_GET_BY_UID = select(resources.c.document, resources.c.resource_version).where(*_RESOURCE_ROW)
_GET_BY_NAME = select(resources.c.document, resources.c.resource_version).where(
    resources.c.collection == _W_COLLECTION, resources.c.name == bindparam("w_name"))
_EXISTS = select(resources.c.resource_version).where(*_RESOURCE_ROW)
_INSERT_RESOURCE = insert(resources)
_SWAP_RESOURCE = update(resources).where(
    *_RESOURCE_ROW, resources.c.resource_version == bindparam("w_expected"),
    resources.c.name == bindparam("w_name"))
_LOCK_RESOURCE = select(resources.c.resource_version, resources.c.document).where(
    *_RESOURCE_ROW).with_for_update()
_DELETE_RESOURCE = delete(resources).where(
    *_RESOURCE_ROW, resources.c.resource_version == bindparam("w_version"))
_DELETE_RETURNING = delete(resources).where(*_RESOURCE_ROW).returning(resources.c.document)
_DELETE_VERSION_RETURNING = _DELETE_RESOURCE.returning(resources.c.document)
_INSERT_LABELS = insert(labels)
_DELETE_LABELS = delete(labels).where(labels.c.collection == _W_COLLECTION,
                                      labels.c.uid == _W_UID)
_INSERT_OUTBOX = insert(outbox)


def _row(collection: str, uid: str) -> dict[str, str]:
    return {"w_collection": collection, "w_uid": uid}


# -- reads -------------------------------------------------------------------------------


def get_resource(conn: Connection, collection: str, uid: str) -> Document | None:
    """A resource by uid, its version from the row's column."""
    found = conn.execute(_GET_BY_UID, _row(collection, uid)).first()
    return None if found is None else with_stored_version(found[0], found[1])


def get_resource_by_name(conn: Connection, collection: str, name: str) -> Document | None:
    found = conn.execute(_GET_BY_NAME, {"w_collection": collection, "w_name": name}).first()
    return None if found is None else with_stored_version(found[0], found[1])



def fetch_one(conn: Connection, query: Select[str]) -> Document | None:
    found = conn.execute(query).scalar_one_or_none()
    return None if found is None else decode(found)


def list_documents(conn: Connection, query: Select[str]) -> builtins.list[Document]:
    return [decode(row) for row in conn.execute(query).scalars()]


def list_resources(conn: Connection, query: Select[str, int]
                   ) -> builtins.list[Document]:
    return [with_stored_version(document, version) for document, version in conn.execute(query)]


def list_versions(conn: Connection, collection: str, uid: str) -> builtins.list[Document] | None:
    """Spec snapshots, oldest first; None when the resource does not exist."""
    if not _exists(conn, collection, uid):
        return None
    query = (select(versions.c.document)
             .where(versions.c.collection == collection, versions.c.uid == uid)
             .order_by(versions.c.number, versions.c.version_id))
    return list_documents(conn, query)


def uid_taken(conn: Connection, collection: str, uid: str) -> bool:
    return _exists(conn, collection, uid)


# -- writes ------------------------------------------------------------------------------


def create(
    conn: Connection,
    collection: str,
    doc: Document,
    snapshot: Document | None,
    events: Outbox | None = None,
    history: int = 0,
    unique: UniqueKeys | None = None,
    indexed: Sequence[str] = (),
) -> Document:
    """INSERT; a taken uid, name or unique key raises the database's IntegrityError.
    `indexed`: the collection's fields kept in the field index."""
    meta = doc["metadata"]
    body = encode(_without_version(doc))
    row = {"collection": collection, "uid": meta["uid"], "name": meta["name"],
           "resource_version": _PENDING, "document": body, **resource_columns(doc)}
    values = meta.get("labels") or {}
    if conn.dialect.name == "postgresql":  # the row and its labels in one round trip
        conn.execute(_CREATE_POSTGRESQL, {**row, "keys": list(values),
                                          "values": list(values.values())})
    else:
        conn.execute(_INSERT_RESOURCE, row)
        _write_labels(conn, collection, meta["uid"], values)
    if unique:
        _hold_keys(conn, collection, meta["uid"], unique, {})
    if indexed:
        write_fields(conn, collection, meta["uid"], doc, indexed, replace=False)
    if snapshot is not None:
        _write_snapshot(conn, collection, meta["uid"], snapshot)
    return _finish(conn, collection, "ADDED", doc, body, events, history)


# PostgreSQL: the resource's row and its labels (as two arrays) in one statement. The
# labels' foreign key is checked at the end of the statement, when the row is there.
_CREATE_POSTGRESQL = text("""\
WITH created AS (
    INSERT INTO fabrica_resources (collection, uid, name, kind, resource_version, generation,
                                   created_at, updated_at, deletion_timestamp, document)
    VALUES (CAST(:collection AS VARCHAR), CAST(:uid AS VARCHAR), CAST(:name AS VARCHAR),
            CAST(:kind AS VARCHAR), CAST(:resource_version AS BIGINT),
            CAST(:generation AS BIGINT), CAST(:created_at AS TIMESTAMP WITH TIME ZONE),
            CAST(:updated_at AS TIMESTAMP WITH TIME ZONE),
            CAST(:deletion_timestamp AS TIMESTAMP WITH TIME ZONE), CAST(:document AS TEXT))
    RETURNING collection, uid
)
INSERT INTO fabrica_labels (collection, uid, key, value)
SELECT created.collection, created.uid, label.key, label.value
FROM created, unnest(CAST(:keys AS VARCHAR[]), CAST(:values AS VARCHAR[])) AS label(key, value)""")


def update_resource(
    conn: Connection,
    collection: str,
    doc: Document,
    expected: str,
    snapshot: Document | None,
    events: Outbox | None = None,
    history: int = 0,
    unique: UniqueKeys | None = None,
    indexed: Sequence[str] = (),
) -> Document:
    """Compare-and-swap on resource_version: one UPDATE that matches only the expected row
    (and locks it); the row's new version is set by `_finish`, last. A unique key held by
    another resource raises the database's IntegrityError."""
    body = swap_resource(conn, collection, doc, expected, snapshot, unique, indexed)
    return _finish(conn, collection, "MODIFIED", doc, body, events, history)


def swap_resource(conn: Connection, collection: str, doc: Document, expected: str,
                  snapshot: Document | None, unique: UniqueKeys | None = None,
                  indexed: Sequence[str] = ()) -> str:
    """`update_resource` but its last statements (the revision, the change log, the
    events): the row swapped to `doc` with a pending version. Returns the stored body."""
    meta = doc["metadata"]
    uid, name = meta["uid"], meta["name"]
    body = encode(_without_version(doc))
    values = meta.get("labels") or {}
    where = {**_row(collection, uid), "w_expected": _version_number(expected), "w_name": name}
    row = {"resource_version": _PENDING, "document": body, **resource_columns(doc)}
    if conn.dialect.name == "postgresql":  # the swap and the labels in one round trip
        swapped = conn.execute(_UPDATE_POSTGRESQL, {
            **where, **row, "keys": list(values), "values": list(values.values())}).scalar()
    else:
        swapped = conn.execute(_SWAP_RESOURCE, {**where, **row}).rowcount
    if swapped != 1:
        _explain_failed_swap(conn, collection, uid, name, expected)
    if conn.dialect.name != "postgresql":
        conn.execute(_DELETE_LABELS, _row(collection, uid))
        _write_labels(conn, collection, uid, values)
    if unique:  # (after the swap: only the winner's row is locked, and changes its keys)
        _hold_keys(conn, collection, uid, unique, _keys_held(conn, collection, uid))
    if indexed:
        write_fields(conn, collection, uid, doc, indexed, replace=True)
    if snapshot is not None:
        _write_snapshot(conn, collection, uid, snapshot)
    return body


# PostgreSQL: compare-and-swap, then (only if it swapped) the labels made what the document
# says: keys no longer there deleted, new or changed ones upserted, unchanged ones left
# alone (the two label statements touch different keys). Answers how many rows swapped.
_UPDATE_POSTGRESQL = text("""\
WITH swapped AS (
    UPDATE fabrica_resources
    SET resource_version = CAST(:resource_version AS BIGINT), document = CAST(:document AS TEXT),
        kind = CAST(:kind AS VARCHAR), generation = CAST(:generation AS BIGINT),
        created_at = CAST(:created_at AS TIMESTAMP WITH TIME ZONE),
        updated_at = CAST(:updated_at AS TIMESTAMP WITH TIME ZONE),
        deletion_timestamp = CAST(:deletion_timestamp AS TIMESTAMP WITH TIME ZONE)
    WHERE collection = CAST(:w_collection AS VARCHAR) AND uid = CAST(:w_uid AS VARCHAR)
      AND resource_version = CAST(:w_expected AS BIGINT) AND name = CAST(:w_name AS VARCHAR)
    RETURNING collection, uid
), dropped AS (
    DELETE FROM fabrica_labels USING swapped
    WHERE fabrica_labels.collection = swapped.collection AND fabrica_labels.uid = swapped.uid
      AND fabrica_labels.key <> ALL (CAST(:keys AS VARCHAR[]))
), written AS (
    INSERT INTO fabrica_labels (collection, uid, key, value)
    SELECT swapped.collection, swapped.uid, label.key, label.value
    FROM swapped, unnest(CAST(:keys AS VARCHAR[]), CAST(:values AS VARCHAR[]))
        AS label(key, value)
    ON CONFLICT (collection, uid, key) DO UPDATE SET value = EXCLUDED.value
    WHERE fabrica_labels.value <> EXCLUDED.value
)
SELECT count(*) FROM swapped""")


def delete_resource(
    conn: Connection, collection: str, uid: str, expected: str | None,
    events: Outbox | None = None, history: int = 0,
) -> Document:
    """Lock the row, compare, delete; labels and snapshots go by ON DELETE CASCADE. The
    delete takes a revision of its own: the returned document carries it.

    On PostgreSQL one ``DELETE ... RETURNING`` (of the expected version) does the three;
    when it deletes nothing, a read tells `NotFound` from `Conflict`."""
    if conn.dialect.name == "postgresql":
        document = _delete_returning(conn, collection, uid, expected)
    else:
        row = conn.execute(_LOCK_RESOURCE, _row(collection, uid)).first()
        if row is None:
            raise NotFound(collection, uid)
        actual = str(row.resource_version)
        if expected is not None and actual != expected:
            raise Conflict(collection, uid, expected, actual)
        conn.execute(_DELETE_RESOURCE, {**_row(collection, uid),
                                        "w_version": row.resource_version})
        document = row.document
    last = _without_version(decode(document))
    return _finish(conn, collection, "DELETED", last, encode(last), events, history)


def _delete_returning(conn: Connection, collection: str, uid: str, expected: str | None
                      ) -> str:
    """The deleted row's document; `NotFound` or `Conflict` when none was deleted."""
    if expected is None:
        deleted = conn.execute(_DELETE_RETURNING, _row(collection, uid)).scalar()
    else:
        deleted = conn.execute(_DELETE_VERSION_RETURNING, {
            **_row(collection, uid), "w_version": _version_number(expected)}).scalar()
    if deleted is not None:
        return str(deleted)
    actual = conn.execute(_EXISTS, _row(collection, uid)).scalar()
    if actual is None:
        raise NotFound(collection, uid)
    raise Conflict(collection, uid, str(expected), str(actual))


def _finish(conn: Connection, collection: str, kind: ChangeType, doc: Document, body: str,
            events: Outbox | None, history: int) -> Document:
    """The write's last statements: take the revision, give it to the resource row, log
    the change (see `_changes`) and record the events.

    Everything that can fail comes before, so a failed write draws no number (a hole that
    readers would have to settle). Where the collection's row counts (SQLite, MySQL) it is
    locked until commit: held for these few statements and the commit only, and the last
    lock a write takes (after its resource's row), so writers cannot wait for each other
    in a cycle."""
    meta = doc["metadata"]
    uid = meta["uid"]
    revision = change_log.take(conn, collection, uid, meta["name"], kind, body, history)
    stored = _with_version(doc, revision)
    _record_events(conn, collection, uid, stored, events)
    return stored


def ensure_collection(conn: Connection, collection: str) -> None:
    """The collection's row for the change log, made before its first write."""
    change_log.ensure_collection(conn, collection, lambda: _next_revision(conn))


# -- unique keys (see fabrica.storage._unique) ------------------------------------------

_KEYS_HELD = select(unique_keys.c.constraint_name, unique_keys.c.key_hash).where(
    unique_keys.c.collection == _W_COLLECTION, unique_keys.c.uid == _W_UID)
_INSERT_KEY = insert(unique_keys)
_DELETE_KEY = delete(unique_keys).where(
    unique_keys.c.collection == _W_COLLECTION, unique_keys.c.uid == _W_UID,
    unique_keys.c.constraint_name == bindparam("w_constraint"),
    unique_keys.c.key_hash == bindparam("w_hash"))
_KEY_HOLDER = select(unique_keys.c.uid).where(
    unique_keys.c.collection == _W_COLLECTION,
    unique_keys.c.constraint_name == bindparam("w_constraint"),
    unique_keys.c.key_hash == bindparam("w_hash"))


def _keys_held(conn: Connection, collection: str, uid: str) -> dict[str, str]:
    return {row[0]: row[1] for row in conn.execute(_KEYS_HELD, _row(collection, uid))}


def _hold_keys(conn: Connection, collection: str, uid: str, unique: UniqueKeys,
               held: Mapping[str, str]) -> None:
    """Make the resource's keys of `unique`'s constraints those given (`held`: what it
    holds now). The INSERT is the test: the primary key refuses a key held by another
    resource, waiting first for a writer of it still in flight (so two never both win)."""
    for constraint, key in sorted(unique.items()):
        wanted = None if key is None else key_hash(key)
        before = held.get(constraint)
        if wanted == before:
            continue
        if before is not None:
            conn.execute(_DELETE_KEY, {**_row(collection, uid), "w_constraint": constraint,
                                       "w_hash": before})
        if wanted is not None:
            conn.execute(_INSERT_KEY, {"collection": collection, "constraint_name": constraint,
                                       "key_hash": wanted, "uid": uid})


def unique_holder(conn: Connection, collection: str, uid: str, unique: UniqueKeys
                  ) -> tuple[str, str, str] | None:
    """The first of `unique`'s keys another resource holds: (constraint, key, its uid)."""
    for constraint, key in sorted(unique.items()):
        if key is None:
            continue
        holder = conn.execute(_KEY_HOLDER, {"w_collection": collection,
                                            "w_constraint": constraint,
                                            "w_hash": key_hash(key)}).scalar()
        if holder is not None and holder != uid:
            return constraint, key, str(holder)
    return None


def prepare_unique(conn: Connection, collection: str, constraints: Sequence[str]) -> None:
    """Build the keys of constraints new to the collection from its rows (`DuplicateValues`
    when some share a key: the transaction rolls back, nothing is dropped); forget those
    no longer wanted."""
    built = set(conn.execute(select(unique_constraints.c.constraint_name).where(
        unique_constraints.c.collection == collection)).scalars())
    for old in sorted(built - set(constraints)):
        for table in (unique_keys, unique_constraints):
            conn.execute(delete(table).where(table.c.collection == collection,
                                             table.c.constraint_name == old))
    new = sorted(set(constraints) - built)
    if not new:
        return
    documents = [decode(row) for row in conn.execute(select(resources.c.document).where(
        resources.c.collection == collection)).scalars()]
    for constraint in new:
        keys, shared = duplicates(documents, constraint)
        if shared:
            raise DuplicateValues(collection, constraint, shared)
        conn.execute(delete(unique_keys).where(unique_keys.c.collection == collection,
                                               unique_keys.c.constraint_name == constraint))
        rows = [{"collection": collection, "constraint_name": constraint,
                 "key_hash": key_hash(key), "uid": uid} for key, uid in keys.items()]
        for start in range(0, len(rows), 1000):
            conn.execute(_INSERT_KEY, rows[start:start + 1000])
        conn.execute(insert(unique_constraints).values(collection=collection,
                                                       constraint_name=constraint))


# -- the outbox (see _outbox) -------------------------------------------------------------


def _record_events(conn: Connection, collection: str, uid: str, stored: Document,
                   events: Outbox | None) -> None:
    if events is None:
        return
    messages = events(stored)
    if messages:
        now = datetime.now(UTC)
        conn.execute(_INSERT_OUTBOX, [
            {"resource": f"{collection}/{uid}", "subject": m.subject, "event_id": m.id,
             "payload": m.payload, "created_at": now} for m in messages])


def record_events_of(conn: Connection, collection: str, stored: Sequence[Document],
                     events: Outbox) -> None:
    """`_record_events` of many writes: one executemany."""
    now = datetime.now(UTC)
    rows = [{"resource": f"{collection}/{doc['metadata']['uid']}", "subject": m.subject,
             "event_id": m.id, "payload": m.payload, "created_at": now}
            for doc in stored for m in events(doc)]
    for start in range(0, len(rows), 1000):
        conn.execute(_INSERT_OUTBOX, rows[start:start + 1000])


def append_outbox(conn: Connection, resource: str, messages: Sequence[OutboxMessage]) -> None:
    now = datetime.now(UTC)
    conn.execute(_INSERT_OUTBOX, [
        {"resource": resource, "subject": m.subject, "event_id": m.id, "payload": m.payload,
         "created_at": now} for m in messages])


def outbox_pending(conn: Connection, limit: int) -> builtins.list[OutboxEntry]:
    rows = conn.execute(select(outbox).order_by(outbox.c.seq).limit(limit))
    return [OutboxEntry(r.seq, r.resource, r.subject, r.event_id, r.payload,
                        _aware(r.created_at)) for r in rows]


def outbox_done(conn: Connection, seqs: Sequence[int]) -> None:
    for start in range(0, len(seqs), 500):
        conn.execute(delete(outbox).where(outbox.c.seq.in_(seqs[start:start + 500])))


def outbox_stats(conn: Connection) -> OutboxStats:
    row = conn.execute(select(func.count(), func.min(outbox.c.created_at))).one()
    return OutboxStats(int(row[0]), None if row[1] is None else _aware(row[1]))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def delete_version(conn: Connection, collection: str, uid: str, version_id: str) -> None:
    removed = conn.execute(delete(versions).where(
        versions.c.collection == collection, versions.c.uid == uid,
        versions.c.version_id == version_id))
    if removed.rowcount != 1:
        raise NotFound(collection, f"{uid}/versions/{version_id}")


# -- helpers -----------------------------------------------------------------------------


def _next_revision(conn: Connection) -> int:
    """A number no write of this database has had: a sequence or an auto-increment."""
    if conn.dialect.name == "postgresql":
        query = text("SELECT nextval(pg_get_serial_sequence('fabrica_revisions', 'id'))")
        return int(conn.execute(query).scalar_one())
    result = conn.execute(insert(revisions))
    (revision,) = result.inserted_primary_key or (None,)
    assert revision is not None
    if revision % _REVISION_ROWS_KEPT == 0:
        # Only the counter matters, but the newest row stays: an old MySQL restarts its
        # auto-increment at the largest id in the table.
        conn.execute(delete(revisions).where(revisions.c.id < revision))
    return int(revision)


def _write_labels(conn: Connection, collection: str, uid: str, values: Mapping[str, str]
                  ) -> None:
    if values:  # executemany: one round trip with every driver, and a cached statement
        conn.execute(_INSERT_LABELS, [
            {"collection": collection, "uid": uid, "key": key, "value": value}
            for key, value in values.items()])


def _write_snapshot(conn: Connection, collection: str, uid: str, snapshot: Document) -> None:
    version_id = snapshot["versionId"]
    if not isinstance(version_id, str) or not _VERSION_ID.match(version_id):
        raise Invalid(f"invalid spec version id {version_id!r}")
    conn.execute(delete(versions).where(
        versions.c.collection == collection, versions.c.uid == uid,
        versions.c.version_id == version_id))
    conn.execute(insert(versions).values(
        collection=collection, uid=uid, version_id=version_id, number=int(version_id[1:]),
        document=encode(snapshot)))


def _exists(conn: Connection, collection: str, uid: str) -> bool:
    return conn.execute(_EXISTS, _row(collection, uid)).first() is not None


def _explain_failed_swap(
    conn: Connection, collection: str, uid: str, name: str, expected: str
) -> None:
    row = conn.execute(select(resources.c.resource_version, resources.c.name).where(
        resources.c.collection == collection, resources.c.uid == uid)).first()
    if row is None:
        raise NotFound(collection, uid)
    actual = str(row.resource_version)
    if actual == expected and row.name != name:
        raise Invalid("metadata.name is immutable")
    raise Conflict(collection, uid, expected, actual)


def _with_version(doc: Document, revision: int) -> Document:
    return {**doc, "metadata": {**doc["metadata"], "resourceVersion": str(revision)}}


def _without_version(doc: Document) -> Document:
    """The document as stored: its version lives in a column (see `with_stored_version`);
    the key stays, empty, so the document reads back with its keys in their order."""
    return {**doc, "metadata": {**doc["metadata"], "resourceVersion": ""}}


def _version_number(version: str) -> int:
    """A resourceVersion as the column holds it; -1 (never stored) when it cannot be one.
    Only the digits a version is written in name it, as on every backend: ``"07"`` or
    ``"٧"`` are not ``"7"`` (and ``"²"`` passes `isdigit` but not `int`)."""
    if version.isascii() and version.isdigit() and len(version) < 19:
        number = int(version)
        if str(number) == version:
            return number
    return -1


# (for `_bulk`'s set-based creates, which build what `create` builds, many at once)
with_version = _with_version
without_version = _without_version
