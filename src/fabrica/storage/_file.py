"""File storage: one JSON document per resource, ``DATA_DIR/PLURAL/UID.json``.

Durability: every write goes to a temporary file in the same directory, is fsynced, renamed
over the target and the directory is fsynced, so a crash leaves the old or the new document,
never a torn one. Concurrency: writers of one collection hold an exclusive ``flock`` on
``PLURAL/.lock`` for their check-and-write, which serialises threads of this process and
other processes sharing the data dir alike; readers take no lock (rename is atomic).

Names are unique per collection through an index of small files, ``PLURAL/.names/NAME``,
each holding a uid. The index entry is written before the document and removed after it,
so a crash can only leave an entry that points at nothing, which the next writer of that
name recognises as stale and replaces. A collection without an index (documents copied in
by hand) gets one rebuilt on first use.

Every write of a collection takes the next number of its revision counter,
``PLURAL/.revision``, as the document's ``resourceVersion``. The counter is written without
fsync: should a crash roll it back, an update still takes a number above the document's own,
so a resource never sees a version twice. Spec snapshots of versioned kinds live in
``PLURAL/.versions/UID/VERSION.json`` and are written before the document they belong to.

Ids never reach the filesystem unchecked: uids must look like ``prefix-hex`` and names like
DNS-1123 subdomains, so no id can address a path outside the data dir.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..resource import Selector, is_dns1123_subdomain, is_valid_plural
from ._base import AlreadyExists, Conflict, Document, NotFound

__all__ = ["FileStorage"]

_UID = re.compile(r"^[a-z][a-z0-9]*-[0-9a-f]{8,64}$")
_VERSION_ID = re.compile(r"^v[0-9]{1,12}$")
_STALE_TEMP_SECONDS = 300


class FileStorage:
    """Documents as files under `data_dir`; safe across threads and processes."""

    name = "file"

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._ready: set[str] = set()

    # -- async API -----------------------------------------------------------------------

    async def create(
        self, collection: str, doc: Document, snapshot: Document | None = None
    ) -> Document:
        return await asyncio.to_thread(self.create_sync, collection, doc, snapshot)

    async def get(self, collection: str, uid: str) -> Document:
        # A single small read is faster inline than a thread hop.
        return self.get_sync(collection, uid)

    async def get_by_name(self, collection: str, name: str) -> Document:
        return self.get_by_name_sync(collection, name)

    async def list(
        self,
        collection: str,
        *,
        selector: Selector | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Document]:
        return await asyncio.to_thread(self.list_sync, collection, selector, limit, after)

    async def update(
        self,
        collection: str,
        doc: Document,
        expected_version: str,
        snapshot: Document | None = None,
    ) -> Document:
        return await asyncio.to_thread(
            self.update_sync, collection, doc, expected_version, snapshot
        )

    async def list_versions(self, collection: str, uid: str) -> list[Document]:
        return await asyncio.to_thread(self.list_versions_sync, collection, uid)

    async def get_version(self, collection: str, uid: str, version_id: str) -> Document:
        return self.get_version_sync(collection, uid, version_id)

    async def delete_version(self, collection: str, uid: str, version_id: str) -> None:
        await asyncio.to_thread(self.delete_version_sync, collection, uid, version_id)

    async def delete(
        self, collection: str, uid: str, expected_version: str | None = None
    ) -> Document:
        return await asyncio.to_thread(self.delete_sync, collection, uid, expected_version)

    async def close(self) -> None:
        return None

    # -- synchronous implementation ------------------------------------------------------

    def create_sync(
        self, collection: str, doc: Document, snapshot: Document | None = None
    ) -> Document:
        meta = doc["metadata"]
        uid, name = meta["uid"], meta["name"]
        path = self._doc_path(collection, uid)
        with self._locked(collection):
            if path.exists():
                raise AlreadyExists(collection, "uid", uid)
            if self._lookup_name(collection, name) is not None:
                raise AlreadyExists(collection, "name", name)
            stored = _with_version(doc, self._next_revision(collection, "0"))
            _atomic_write(self._name_path(collection, name), uid.encode())
            if snapshot is not None:
                self._write_snapshot(collection, uid, snapshot)
            _atomic_write(path, _encode(stored))
        return stored

    def get_sync(self, collection: str, uid: str) -> Document:
        path = self._doc_path(collection, uid, must_exist=True)
        try:
            return _decode(path.read_bytes())
        except FileNotFoundError:
            raise NotFound(collection, uid) from None

    def get_by_name_sync(self, collection: str, name: str) -> Document:
        self._ensure_collection(collection)
        found = self._lookup_name(collection, name)
        if found is None:
            raise NotFound(collection, name)
        return found

    def list_sync(
        self,
        collection: str,
        selector: Selector | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Document]:
        docs = [
            doc
            for doc in self._read_all(collection)
            if (after is None or doc["metadata"]["name"] > after)
            and (not selector or selector.matches(doc["metadata"].get("labels", {})))
        ]
        docs.sort(key=lambda d: d["metadata"]["name"])
        return docs if limit is None else docs[:limit]

    def _read_all(self, collection: str) -> list[Document]:
        directory = self._collection_dir(collection)
        if not directory.is_dir():
            return []
        docs = []
        for entry in os.scandir(directory):
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                try:
                    with open(entry.path, "rb") as fh:
                        docs.append(_decode(fh.read()))
                except FileNotFoundError:
                    continue  # deleted between scandir and open
        return docs

    def update_sync(
        self,
        collection: str,
        doc: Document,
        expected_version: str,
        snapshot: Document | None = None,
    ) -> Document:
        uid = doc["metadata"]["uid"]
        path = self._doc_path(collection, uid, must_exist=True)
        with self._locked(collection):
            current = self._read_or_404(collection, path, uid)
            actual = current["metadata"]["resourceVersion"]
            if actual != expected_version:
                raise Conflict(collection, uid, expected_version, actual)
            if doc["metadata"]["name"] != current["metadata"]["name"]:
                raise ValueError("metadata.name is immutable")
            stored = _with_version(doc, self._next_revision(collection, actual))
            if snapshot is not None:
                self._write_snapshot(collection, uid, snapshot)
            _atomic_write(path, _encode(stored))
        return stored

    def list_versions_sync(self, collection: str, uid: str) -> list[Document]:
        self.get_sync(collection, uid)
        directory = self._versions_dir(collection, uid)
        if not directory.is_dir():
            return []
        ids = [n[:-5] for n in os.listdir(directory)
               if n.endswith(".json") and _VERSION_ID.match(n[:-5])]
        ids.sort(key=lambda v: int(v[1:]))
        return [self.get_version_sync(collection, uid, v) for v in ids]

    def get_version_sync(self, collection: str, uid: str, version_id: str) -> Document:
        path = self._version_path(collection, uid, version_id)
        try:
            return _decode(path.read_bytes())
        except FileNotFoundError:
            raise NotFound(collection, f"{uid}/versions/{version_id}") from None

    def delete_version_sync(self, collection: str, uid: str, version_id: str) -> None:
        path = self._version_path(collection, uid, version_id)
        with self._locked(collection):
            try:
                path.unlink()
            except FileNotFoundError:
                raise NotFound(collection, f"{uid}/versions/{version_id}") from None
            _fsync_dir(path.parent)

    def delete_sync(
        self, collection: str, uid: str, expected_version: str | None = None
    ) -> Document:
        path = self._doc_path(collection, uid, must_exist=True)
        with self._locked(collection):
            current = self._read_or_404(collection, path, uid)
            actual = current["metadata"]["resourceVersion"]
            if expected_version is not None and actual != expected_version:
                raise Conflict(collection, uid, expected_version, actual)
            path.unlink()
            _fsync_dir(path.parent)
            shutil.rmtree(self._versions_dir(collection, uid), ignore_errors=True)
            name_path = self._name_path(collection, current["metadata"]["name"])
            if _read_text(name_path) == uid:
                name_path.unlink()
                _fsync_dir(name_path.parent)
        return current

    # -- helpers -------------------------------------------------------------------------

    def _collection_dir(self, collection: str) -> Path:
        if not is_valid_plural(collection):
            raise ValueError(f"invalid collection name {collection!r}")
        return self.data_dir / collection

    def _doc_path(self, collection: str, uid: str, must_exist: bool = False) -> Path:
        if not _UID.match(uid):
            if must_exist:
                raise NotFound(collection, uid)
            raise ValueError(f"invalid uid {uid!r}")
        return self._collection_dir(collection) / f"{uid}.json"

    def _name_path(self, collection: str, name: str) -> Path:
        if not is_dns1123_subdomain(name):
            raise ValueError(f"invalid name {name!r}")
        return self._collection_dir(collection) / ".names" / name

    def _versions_dir(self, collection: str, uid: str) -> Path:
        if not _UID.match(uid):
            raise NotFound(collection, uid)
        return self._collection_dir(collection) / ".versions" / uid

    def _version_path(self, collection: str, uid: str, version_id: str) -> Path:
        if not _VERSION_ID.match(version_id):
            raise NotFound(collection, f"{uid}/versions/{version_id}")
        return self._versions_dir(collection, uid) / f"{version_id}.json"

    def _write_snapshot(self, collection: str, uid: str, snapshot: Document) -> None:
        path = self._version_path(collection, uid, snapshot["versionId"])
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, _encode(snapshot))

    def _next_revision(self, collection: str, current: str) -> str:
        """Caller holds the collection lock."""
        counter = self._collection_dir(collection) / ".revision"
        stored = _read_text(counter) or "0"
        base = max(int(stored) if stored.isdigit() else 0, int(current) if current.isdigit() else 0)
        revision = str(base + 1)
        _atomic_write(counter, revision.encode(), durable=False)
        return revision

    def _lookup_name(self, collection: str, name: str) -> Document | None:
        """The live document called `name`, ignoring stale index entries."""
        if not is_dns1123_subdomain(name):
            return None
        uid = _read_text(self._name_path(collection, name))
        if uid is None or not _UID.match(uid):
            return None
        try:
            doc = _decode(self._doc_path(collection, uid).read_bytes())
        except FileNotFoundError:
            return None
        return doc if doc["metadata"]["name"] == name else None

    def _read_or_404(self, collection: str, path: Path, uid: str) -> Document:
        try:
            return _decode(path.read_bytes())
        except FileNotFoundError:
            raise NotFound(collection, uid) from None

    @contextmanager
    def _locked(self, collection: str) -> Iterator[None]:
        self._ensure_collection(collection)
        with _flock(self._collection_dir(collection) / ".lock"):
            yield

    def _ensure_collection(self, collection: str) -> None:
        if collection in self._ready:
            return
        directory = self._collection_dir(collection)
        (directory / ".names").mkdir(parents=True, exist_ok=True)
        with _flock(directory / ".lock"):
            marker = directory / ".names" / ".complete"
            if not marker.exists():
                self._rebuild_name_index(directory)
                _atomic_write(marker, b"")
            _remove_stale_temp_files(directory)
        self._ready.add(collection)

    def _rebuild_name_index(self, directory: Path) -> None:
        for entry in os.scandir(directory):
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                meta = _decode(Path(entry.path).read_bytes())["metadata"]
                if is_dns1123_subdomain(meta["name"]):
                    _atomic_write(directory / ".names" / meta["name"], meta["uid"].encode())


def _with_version(doc: Document, version: str) -> Document:
    return {**doc, "metadata": {**doc["metadata"], "resourceVersion": version}}


def _encode(doc: Document) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _decode(data: bytes) -> Document:
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("stored document is not a JSON object")
    return doc


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    tmp = path.parent / f".tmp-{path.name}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _remove_stale_temp_files(directory: Path) -> None:
    """Temp files a crashed writer left behind; young ones may belong to a live writer."""
    cutoff = time.time() - _STALE_TEMP_SECONDS
    for sub in (directory, directory / ".names"):
        for entry in os.scandir(sub):
            if entry.name.startswith(".tmp-") and entry.stat().st_mtime < cutoff:
                Path(entry.path).unlink(missing_ok=True)
