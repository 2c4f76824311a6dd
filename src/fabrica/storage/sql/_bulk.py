"""Export and import on SQL (`BulkStorage`): one snapshot read, one transaction a batch.

The export reads every collection in one read transaction, so it sees one committed state
of the whole database whatever writers do meanwhile: PostgreSQL and MariaDB at REPEATABLE
READ (a snapshot taken at its first read), SQLite in an explicit read transaction (WAL
mode: a reader keeps the state it began on). The counts and revisions come first, from the
same snapshot, so the writer can open its file with them.

A batch is written by the storage's own operations (`_ops.create`, `update_resource`,
`delete_resource`) in one write transaction: each document gets its labels, revision,
change-log entry and events exactly as a single write would, and a crash or an error
leaves the batch wholly there or wholly absent.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select

from .._base import Document, NotFound
from .._bulk import BatchMode, BulkItem, SnapshotWriter
from .._outbox import Outbox
from . import _ops as ops
from ._query import decode, encode, with_stored_version
from ._schema import changes, resources, versions

__all__ = ["export_snapshot", "taken", "write_batch"]

_VERSION_ROWS = 1000  # spec snapshots inserted per statement


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
    stored = []
    snapshots: list[dict[str, Any]] = []
    for item in items:
        doc = item.document
        meta = doc["metadata"]
        if mode == "upsert":
            stored.append(_upsert(conn, collection, doc, events, history, indexed))
            conn.execute(delete(versions).where(versions.c.collection == collection,
                                                versions.c.uid == meta["uid"]))
        else:
            stored.append(ops.create(conn, collection, doc, None, events, history,
                                     indexed=indexed))
        snapshots.extend({"collection": collection, "uid": meta["uid"],
                          "version_id": s["versionId"], "number": int(s["versionId"][1:]),
                          "document": encode(s)} for s in item.history)
    for start in range(0, len(snapshots), _VERSION_ROWS):
        conn.execute(insert(versions), snapshots[start:start + _VERSION_ROWS])
    return stored


def _upsert(conn: Connection, collection: str, doc: Document, events: Outbox | None,
            history: int, indexed: Sequence[str]) -> Document:
    """Overwrite the resource of the same uid (same name: an update, so watchers see it
    modified), else remove whatever holds the uid or the name and create."""
    meta = doc["metadata"]
    holders = conn.execute(select(resources.c.uid, resources.c.name,
                                  resources.c.resource_version).where(
        resources.c.collection == collection,
        or_(resources.c.uid == meta["uid"], resources.c.name == meta["name"]))).all()
    for uid, name, version in holders:
        if uid == meta["uid"] and name == meta["name"]:
            return ops.update_resource(conn, collection, doc, str(version), None, events,
                                       history, indexed=indexed)
    for uid, _, _ in holders:
        _delete(conn, collection, uid, events, history)
    return ops.create(conn, collection, doc, None, events, history, indexed=indexed)


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
