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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..resource import is_dns1123_subdomain, is_valid_plural
from ._base import AlreadyExists, Conflict, Document, NotFound

__all__ = ["FileStorage"]

_UID = re.compile(r"^[a-z][a-z0-9]*-[0-9a-f]{8,64}$")
_STALE_TEMP_SECONDS = 300


class FileStorage:
    """Documents as files under `data_dir`; safe across threads and processes."""

    name = "file"

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._ready: set[str] = set()

    # -- async API -----------------------------------------------------------------------

    async def create(self, collection: str, doc: Document) -> Document:
        return await asyncio.to_thread(self.create_sync, collection, doc)

    async def get(self, collection: str, uid: str) -> Document:
        # A single small read is faster inline than a thread hop.
        return self.get_sync(collection, uid)

    async def get_by_name(self, collection: str, name: str) -> Document:
        return self.get_by_name_sync(collection, name)

    async def list(self, collection: str) -> list[Document]:
        return await asyncio.to_thread(self.list_sync, collection)

    async def update(self, collection: str, doc: Document, expected_version: str) -> Document:
        return await asyncio.to_thread(self.update_sync, collection, doc, expected_version)

    async def delete(
        self, collection: str, uid: str, expected_version: str | None = None
    ) -> Document:
        return await asyncio.to_thread(self.delete_sync, collection, uid, expected_version)

    async def close(self) -> None:
        return None

    # -- synchronous implementation ------------------------------------------------------

    def create_sync(self, collection: str, doc: Document) -> Document:
        meta = doc["metadata"]
        uid, name = meta["uid"], meta["name"]
        path = self._doc_path(collection, uid)
        with self._locked(collection):
            if path.exists():
                raise AlreadyExists(collection, "uid", uid)
            if self._lookup_name(collection, name) is not None:
                raise AlreadyExists(collection, "name", name)
            stored = _with_version(doc, "1")
            _atomic_write(self._name_path(collection, name), uid.encode())
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

    def list_sync(self, collection: str) -> list[Document]:
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
        docs.sort(key=lambda d: d["metadata"]["name"])
        return docs

    def update_sync(self, collection: str, doc: Document, expected_version: str) -> Document:
        uid = doc["metadata"]["uid"]
        path = self._doc_path(collection, uid, must_exist=True)
        with self._locked(collection):
            current = self._read_or_404(collection, path, uid)
            actual = current["metadata"]["resourceVersion"]
            if actual != expected_version:
                raise Conflict(collection, uid, expected_version, actual)
            if doc["metadata"]["name"] != current["metadata"]["name"]:
                raise ValueError("metadata.name is immutable")
            stored = _with_version(doc, _next_version(actual))
            _atomic_write(path, _encode(stored))
        return stored

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


def _next_version(version: str) -> str:
    return str(int(version) + 1) if version.isdigit() else "1"


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


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.parent / f".tmp-{path.name}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
