"""Export and import on files (`BulkStorage`): a consistent cut through the change log, and
batches of whole-document writes.

The cut. A collection's files are read one by one while writers go on, so the files read
are no single state by themselves. The change log makes them one:

1. R1, the readable end of the log before reading: every write numbered up to R1 has its
   document in place (a writer publishes its change only after its document's rename);
2. read every document;
3. R2 = `FileStorage.latest` after reading: it waits for the writers in flight, so every
   write whose document the read may have met is numbered at most R2;
4. the changes (R1, R2] from the log, replayed over what was read: for a resource they
   touch, its last change up to R2 is its state at R2 (a document, or gone); a resource
   they do not touch was left alone throughout the read, so what was read is its state.

So the export is the collection exactly at revision R2. Should the log be compacted past R1
meanwhile (`Gone`: more than its history of writes during one read), the cut starts again.
Spec snapshots are not in the log: they are read after the cut, keeping those up to the
document's own ``status.version`` (a later snapshot belongs to a write after R2).

A batch of creates is one batched durable write (`FileStorage._create_many_sync`): all
temp files, one shared sync, all renames, one shared sync; so is a batch of updates of
distinct resources without unique keys (`FileStorage._update_many_sync`), each still
checked against its own version. Other updates, upserts and removals use the storage's own
update/delete, many at once on its I/O threads. Either way each document is
whole or absent after a crash (the backend's atomic writes), and its change is in the log
with it. A document's earlier spec snapshots are
written before it, its newest with it.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._base import AlreadyExists, Document, Gone, NotFound
from .._bulk import BatchMode, BulkItem, SnapshotWriter
from .._checks import check_new

if TYPE_CHECKING:
    from ._storage import FileStorage

__all__ = ["export_snapshot", "write_batch"]

_CUT_ATTEMPTS = 5
_LOG_PAGE = 10_000


async def export_snapshot(storage: FileStorage, collections: Sequence[str],
                          writer: SnapshotWriter) -> None:
    cuts = {c: await _cut(storage, c) for c in collections}
    writer.start({c: len(docs) for c, (_, docs) in cuts.items()},
                 {c: revision for c, (revision, _) in cuts.items()})
    for collection, (_, docs) in cuts.items():
        await storage._read(_write_collection, storage, collection, docs, writer)


async def _cut(storage: FileStorage, collection: str) -> tuple[int, dict[str, Document]]:
    """The collection's documents at one revision, and that revision."""
    for _ in range(_CUT_ATTEMPTS):
        directory = storage._ready_dir(collection)
        before = storage._changes.latest(directory)
        docs = {d["metadata"]["uid"]: d
                for d in await storage._read(storage._read_all, collection)}
        after = await storage.latest(collection)
        try:
            _replay(docs, await _changes_between(storage, collection, before, after))
        except Gone:
            continue  # compacted past `before` while reading: cut again
        return after, docs
    raise RuntimeError(f"no consistent cut of {collection} after {_CUT_ATTEMPTS} tries: "
                       "writers outran the change log's history; raise --watch-history")


async def _changes_between(storage: FileStorage, collection: str, start: int, end: int
                           ) -> builtins.list[tuple[str, str, Document]]:
    found: builtins.list[tuple[str, str, Document]] = []
    while start < end:
        page = await storage.changes(collection, start, _LOG_PAGE)
        if not page:
            break
        for change in page:
            if change.revision > end:
                return found
            found.append((change.type, change.document["metadata"]["uid"], change.document))
        start = page[-1].revision
    return found


def _replay(docs: dict[str, Document], changes: builtins.list[tuple[str, str, Document]]
            ) -> None:
    for kind, uid, document in changes:
        if kind == "DELETED":
            docs.pop(uid, None)
        else:
            docs[uid] = document


def _write_collection(storage: FileStorage, collection: str, docs: dict[str, Document],
                      writer: SnapshotWriter) -> None:
    versions_dir = storage._collection_dir(collection) / ".versions"
    with_history = set(os.listdir(versions_dir)) if versions_dir.is_dir() else set()
    for doc in sorted(docs.values(), key=lambda d: str(d["metadata"]["name"])):
        uid = doc["metadata"]["uid"]
        history: builtins.list[Document] = []
        if uid in with_history:
            try:
                history = storage._list_versions_sync(collection, uid)
            except NotFound:
                history = []  # deleted since the cut: its snapshots went with it
            current = _version_number((doc.get("status") or {}).get("version"))
            history = [s for s in history if _version_number(s.get("versionId")) <= current]
        writer.document(collection, doc, history)


def _version_number(version: object) -> int:
    text = str(version or "")
    return int(text[1:]) if text[:1] == "v" and text[1:].isdigit() else 1 << 62


async def write_batch(storage: FileStorage, collection: str, items: Sequence[BulkItem],
                      mode: BatchMode, remove: Sequence[str]) -> builtins.list[Document]:
    for item in items:
        if mode != "update":  # (an update checks its document as `update` does)
            check_new(item.document)
    await asyncio.gather(*(storage._run(_remove, storage, collection, uid) for uid in remove))
    if mode == "update" and _batchable(storage, items):
        results = await storage._run(storage._update_many_sync, collection,
                                     [item.document for item in items])
        written = [r for r in results if not isinstance(r, BaseException)]
        if len(written) < len(results):
            raise next(r for r in results if isinstance(r, BaseException))
        return written
    if mode == "update":  # each swapped on its own: files have no transaction
        return list(await asyncio.gather(*(storage._run(
            storage._update_sync, collection, item.document,
            item.document["metadata"]["resourceVersion"], None, item.unique)
            for item in items)))
    if mode == "upsert":
        return list(await asyncio.gather(*(storage._run(_upsert, storage, collection, item)
                                           for item in items)))
    await storage._run(_refuse_taken_names, storage, collection, items)
    return await storage._run(_create_all, storage, collection, items)


def _batchable(storage: FileStorage, items: Sequence[BulkItem]) -> bool:
    """Whether updates can share their syncs (`FileStorage._update_many_sync`): distinct
    resources (one's second write would be checked against its first's old version),
    no unique keys (their locks are taken one document at a time), and a group sync that
    covers file data. Otherwise each is written on its own."""
    uids = {item.document["metadata"]["uid"] for item in items}
    return (len(items) > 1 and len(uids) == len(items) and storage._group.covers_files
            and not any(item.unique for item in items))


def _create_all(storage: FileStorage, collection: str, items: Sequence[BulkItem]
                ) -> builtins.list[Document]:
    """One batched durable write (`FileStorage._create_many_sync`): every temp file, one
    sync, every rename, one sync. Refused midway (a name or unique value taken since the
    check), what this batch wrote goes again, so the caller finds none of it, as on SQL
    (watchers saw it come and go: files have no transaction to hide it in)."""
    for item in items:
        for snapshot in item.history[:-1]:
            storage._write_snapshot(collection, item.document["metadata"]["uid"], snapshot)
    return storage._create_many_sync(
        collection, [(item.document, item.history[-1] if item.history else None, item.unique)
                     for item in items])


def _refuse_taken_names(storage: FileStorage, collection: str, items: Sequence[BulkItem]
                        ) -> None:
    """`AlreadyExists` for the first name of `items` a resource holds, before any write."""
    storage._ensure_collection(collection)
    for item in items:
        name = item.document["metadata"]["name"]
        if os.path.lexists(storage._name_link(collection, name)) and \
                storage._lookup_name(collection, name) is not None:
            raise AlreadyExists(collection, "name", name)


def _create(storage: FileStorage, collection: str, item: BulkItem) -> Document:
    uid = item.document["metadata"]["uid"]
    for snapshot in item.history[:-1]:
        storage._write_snapshot(collection, uid, snapshot)
    return storage._create_sync(collection, item.document,
                                item.history[-1] if item.history else None, item.unique)


def _upsert(storage: FileStorage, collection: str, item: BulkItem) -> Document:
    """An update when the same uid holds the same name; else whatever holds the uid or the
    name goes, and the document is created."""
    meta = item.document["metadata"]
    uid, name = meta["uid"], meta["name"]
    current = _find(storage, collection, uid)
    if current is not None and current["metadata"]["name"] == name:
        shutil.rmtree(storage._versions_dir(collection, uid), ignore_errors=True)
        for snapshot in item.history[:-1]:
            storage._write_snapshot(collection, uid, snapshot)
        return storage._update_sync(collection, item.document,
                                    current["metadata"]["resourceVersion"],
                                    item.history[-1] if item.history else None,
                                    item.unique)
    if current is not None:
        _remove(storage, collection, uid)
    holder = storage._lookup_name(collection, name)
    if holder is not None:
        _remove(storage, collection, holder["metadata"]["uid"])
    return _create(storage, collection, item)


def _find(storage: FileStorage, collection: str, uid: str) -> Document | None:
    try:
        return storage._get_sync(collection, uid)
    except NotFound:
        return None


def _remove(storage: FileStorage, collection: str, uid: str) -> None:
    try:
        storage._delete_sync(collection, uid)
    except NotFound:
        pass  # gone meanwhile: what a removal wants
