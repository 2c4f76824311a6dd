"""Export and import on SQL (`BulkStorage`): one snapshot read, one transaction a batch.

The export reads every collection in one read transaction, so it sees one committed state
of the whole database whatever writers do meanwhile: PostgreSQL and MariaDB at REPEATABLE
READ (a snapshot taken at its first read), SQLite in an explicit read transaction (WAL
mode: a reader keeps the state it began on). The counts and revisions come first, from the
same snapshot, so the writer can open its file with them.

A batch is written in one write transaction, so a crash or an error leaves it wholly there
or wholly absent. Creates (import's ``create`` mode, `create_many`) are set-based: each
table gets one executemany per batch, and the batch's revisions are drawn as a block, last
(`_changes.take_many`); each document still gets its labels, unique keys, revision,
change-log entry and events as a single create gives them. Updates (``update`` mode,
`update_status_many`) compare-and-swap each row (`_ops.swap_resource`), then draw their
revisions as a block the same way. Upserts and removals go through the storage's own
operations (`_ops.update_resource`, `create`, `delete_resource`), one document at a time.
Every mode commits once a batch (on SQLite one sync to disk, not one a document).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, or_, select

from .._base import Document, NotFound
from .._bulk import BatchMode, BulkItem, SnapshotWriter
from .._outbox import Outbox
from .._unique import key_hash
from . import _changes as change_log
from . import _ops as ops
from ._fields import field_rows
from ._query import decode, encode, resource_columns, with_stored_version
from ._schema import changes, field_index, labels, resources, unique_keys, versions

__all__ = ["export_snapshot", "get_many", "taken", "write_batch"]

_ROWS = 1000  # rows inserted per executemany


def export_snapshot(conn: Connection, collections: Sequence[str], writer: SnapshotWriter
                    ) -> None:
    """Everything the writer gets, read in the caller's single read transaction."""
    counts: dict[str, int] = {c: 0 for c in collections}
    revisions: dict[str, int] = {c: 0 for c in collections}
    for collection, count, newest in conn.execute(
            select(resources.c.collection, func.count(), func.max(resources.c.resource_version))
            .where(resources.c.collection.in_(collections)).group_by(resources.c.collection)):
        counts[collection], revisions[collection] = int(count), int(newest or 0)
    for collection, newest in conn.execute(
            select(changes.c.collection, func.max(changes.c.revision))
            .where(changes.c.collection.in_(collections)).group_by(changes.c.collection)):
        revisions[collection] = max(revisions[collection], int(newest or 0))
    writer.start(counts, revisions)
    for collection in collections:
        history = _histories(conn, collection)
        rows = conn.execute(select(resources.c.uid, resources.c.document,
                                   resources.c.resource_version)
                            .where(resources.c.collection == collection)
                            .order_by(resources.c.name))
        for uid, document, version in rows:
            writer.document(collection, with_stored_version(document, version),
                            history.get(uid, []))


def _histories(conn: Connection, collection: str) -> dict[str, builtins.list[Document]]:
    found: dict[str, builtins.list[Document]] = {}
    for uid, document in conn.execute(
            select(versions.c.uid, versions.c.document)
            .where(versions.c.collection == collection)
            .order_by(versions.c.uid, versions.c.number, versions.c.version_id)):
        found.setdefault(uid, []).append(decode(document))
    return found


def write_batch(conn: Connection, collection: str, items: Sequence[BulkItem], mode: BatchMode,
                remove: Sequence[str], events: Outbox | None, history: int,
                indexed: Sequence[str] = ()) -> builtins.list[Document]:
    """The batch, in the caller's write transaction. In ``create`` mode a taken uid or name
    raises the database's IntegrityError (the caller says which: `taken`)."""
    for uid in remove:
        _delete(conn, collection, uid, events, history)
    if mode == "create":
        return _create_all(conn, collection, items, events, history, indexed)
    if mode == "update":
        return _update_all(conn, collection, items, events, history, indexed)
    stored = []
    for item in items:
        stored.append(_upsert(conn, collection, item, events, history, indexed))
        conn.execute(delete(versions).where(versions.c.collection == collection,
                                            versions.c.uid == item.document["metadata"]["uid"]))
    _insert_snapshots(conn, collection, items)
    return stored


def _create_all(conn: Connection, collection: str, items: Sequence[BulkItem],
                events: Outbox | None, history: int, indexed: Sequence[str] = ()
                ) -> builtins.list[Document]:
    """The creates of a batch, set-based: one executemany per table (resources, labels,
    unique keys, spec snapshots), then the revisions of the whole batch as a block, last
    before the change log and the outbox (see `_changes.take_many`). What one create does
    (`_ops.create`), for many: the rows go in with a pending version no reader sees; a
    taken uid, name or unique key fails an INSERT before any revision is drawn."""
    if not items:
        return []
    bodies = [encode(ops.without_version(item.document)) for item in items]
    _insert_rows(conn, resources, [
        {"collection": collection, "uid": item.document["metadata"]["uid"],
         "name": item.document["metadata"]["name"], "resource_version": ops.PENDING,
         "document": body, **resource_columns(item.document)}
        for item, body in zip(items, bodies, strict=True)])
    _insert_rows(conn, labels, [
        {"collection": collection, "uid": item.document["metadata"]["uid"], "key": key,
         "value": value}
        for item in items for key, value in (item.document["metadata"].get("labels")
                                             or {}).items()])
    _insert_rows(conn, unique_keys, [
        {"collection": collection, "constraint_name": constraint, "key_hash": key_hash(key),
         "uid": item.document["metadata"]["uid"]}
        for item in items for constraint, key in sorted((item.unique or {}).items())
        if key is not None])
    _insert_rows(conn, field_index, [
        row for item in items
        for row in field_rows(collection, item.document["metadata"]["uid"], item.document,
                              indexed)])
    _insert_snapshots(conn, collection, items)
    revisions = change_log.take_many(conn, collection, "ADDED", [
        (item.document["metadata"]["uid"], item.document["metadata"]["name"], body)
        for item, body in zip(items, bodies, strict=True)], history)
    stored = [ops.with_version(item.document, revision)
              for item, revision in zip(items, revisions, strict=True)]
    if events is not None:
        ops.record_events_of(conn, collection, stored, events)
    return stored


def _update_all(conn: Connection, collection: str, items: Sequence[BulkItem],
                events: Outbox | None, history: int, indexed: Sequence[str] = ()
                ) -> builtins.list[Document]:
    """The compare-and-swaps of a batch (a swap that fails raises, and the transaction rolls
    back), then their revisions as a block, last, as `_create_all` draws them: one statement
    for all on PostgreSQL and SQLite (not three round trips and an advisory lock each), and
    the collection's row locked after every resource row, as by a single write."""
    entries = []
    for item in items:
        meta = item.document["metadata"]
        entries.append((meta["uid"], meta["name"], ops.swap_resource(
            conn, collection, item.document, meta["resourceVersion"], None, item.unique,
            indexed)))
    revisions = change_log.take_many(conn, collection, "MODIFIED", entries, history)
    stored = [ops.with_version(item.document, revision)
              for item, revision in zip(items, revisions, strict=True)]
    if events is not None:
        ops.record_events_of(conn, collection, stored, events)
    return stored


def _insert_rows(conn: Connection, table: Table, rows: builtins.list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), _ROWS):
        conn.execute(insert(table), rows[start:start + _ROWS])


def _insert_snapshots(conn: Connection, collection: str, items: Sequence[BulkItem]) -> None:
    _insert_rows(conn, versions, [
        {"collection": collection, "uid": item.document["metadata"]["uid"],
         "version_id": s["versionId"], "number": int(s["versionId"][1:]),
         "document": encode(s)} for item in items for s in item.history])


def _upsert(conn: Connection, collection: str, item: BulkItem, events: Outbox | None,
            history: int, indexed: Sequence[str]) -> Document:
    """Overwrite the resource of the same uid (same name: an update, so watchers see it
    modified), else remove whatever holds the uid or the name and create."""
    doc = item.document
    meta = doc["metadata"]
    holders = conn.execute(select(resources.c.uid, resources.c.name,
                                  resources.c.resource_version).where(
        resources.c.collection == collection,
        or_(resources.c.uid == meta["uid"], resources.c.name == meta["name"]))).all()
    for uid, name, version in holders:
        if uid == meta["uid"] and name == meta["name"]:
            return ops.update_resource(conn, collection, doc, str(version), None, events,
                                       history, item.unique, indexed)
    for uid, _, _ in holders:
        _delete(conn, collection, uid, events, history)
    return ops.create(conn, collection, doc, None, events, history, item.unique, indexed)


def _delete(conn: Connection, collection: str, uid: str, events: Outbox | None,
            history: int) -> None:
    try:
        ops.delete_resource(conn, collection, uid, None, events, history)
    except NotFound:
        pass  # gone meanwhile: what `remove` wants


def taken(conn: Connection, collection: str, uids: Sequence[str], names: Sequence[str]
          ) -> tuple[str, str] | None:
    """("uid", value) or ("name", value) of the first of `uids`/`names` already stored."""
    for start in range(0, max(len(uids), len(names)), 500):
        chunk_uids, chunk_names = uids[start:start + 500], names[start:start + 500]
        row = conn.execute(select(resources.c.uid, resources.c.name).where(
            resources.c.collection == collection,
            or_(resources.c.uid.in_(chunk_uids), resources.c.name.in_(chunk_names)))).first()
        if row is not None:
            return ("uid", row.uid) if row.uid in chunk_uids else ("name", row.name)
    return None


def get_many(conn: Connection, collection: str, uids: Sequence[str]
             ) -> builtins.dict[str, Document]:
    found: builtins.dict[str, Document] = {}
    for start in range(0, len(uids), 500):
        for uid, document, version in conn.execute(
                select(resources.c.uid, resources.c.document, resources.c.resource_version)
                .where(resources.c.collection == collection,
                       resources.c.uid.in_(uids[start:start + 500]))):
            found[uid] = with_stored_version(document, version)
    return found
