"""Unique keys on files: ``PLURAL/.unique/CONSTRAINT/HASH``, a symbolic link to the
holder's document (``../../UID.json``), made with ``symlink()``, which fails when the key is
taken: the filesystem's own atomic test-and-set, shared by every process on the data dir.

A link is *live* only while the document it leads to exists and still holds its key (the
document is the truth, the link an index of it). Anything else is what a crash left behind
(a create that died before its document appeared, an update that died before or after
its document changed) and is replaced by the next claimer, so a crash never holds a value
for ever. Claims, replacements and releases of a key happen under the key's lock stripe
(space ``k``), held until the document is written, so nobody takes a link for stale while
its writer is still at work. Locks are taken in the order uid, name, key: nobody holding a
key lock waits for another kind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote, unquote

from .._base import AlreadyExists, Document, DuplicateValues
from .._unique import document_key, duplicates, key_hash
from ._io import atomic_write, fsync_dir

__all__ = ["UNIQUE_DIR", "build", "claim", "constraints_on_disk", "held_by", "release"]

UNIQUE_DIR = ".unique"
_BUILT = ".built"
_UP = f"..{os.sep}..{os.sep}"


def _constraint_dir(directory: Path, constraint: str) -> Path:
    return directory / UNIQUE_DIR / quote(constraint, safe="")


def _link(directory: Path, constraint: str, key: str) -> Path:
    return _constraint_dir(directory, constraint) / key_hash(key)


def constraints_on_disk(directory: Path) -> list[str]:
    """Every constraint with keys under `directory` (whether wanted now or not)."""
    try:
        with os.scandir(directory / UNIQUE_DIR) as entries:
            return [unquote(entry.name) for entry in entries]
    except FileNotFoundError:  # a kind without unique fields
        return []


def claim(directory: Path, collection: str, constraint: str, key: str, uid: str,
          read: Callable[[str], Document | None]) -> bool:
    """Hold `key` for `uid` (the caller holds the key's lock); False when it already did.
    `read(uid)` is the stored document of a uid, or None."""
    link = _link(directory, constraint, key)
    target = f"{_UP}{uid}.json"
    try:
        os.symlink(target, link)
        return True
    except FileNotFoundError:
        link.parent.mkdir(parents=True, exist_ok=True)
        return claim(directory, collection, constraint, key, uid, read)
    except FileExistsError:
        pass
    holder = _holder(link)
    if holder == uid:
        return False
    if holder is not None:
        held = read(holder)
        if held is not None and document_key(held, constraint) == key:
            raise AlreadyExists(collection, constraint, key, holder)
    stale = link.parent / f".tmp-{secrets.token_hex(4)}"  # left by a crash: replace it
    os.symlink(target, stale)
    os.replace(stale, link)
    return True


def held_by(directory: Path, constraint: str, key: str,
            read: Callable[[str], Document | None]) -> str | None:
    """The uid whose live link holds `key` now, or None (no link, or one a crash left)."""
    holder = _holder(_link(directory, constraint, key))
    if holder is None:
        return None
    held = read(holder)
    return holder if held is not None and document_key(held, constraint) == key else None


def release(directory: Path, constraint: str, key: str, uid: str) -> None:
    """Let `key` go if `uid` holds it (the caller holds the key's lock)."""
    link = _link(directory, constraint, key)
    if _holder(link) == uid:
        link.unlink(missing_ok=True)


def build(directory: Path, collection: str, constraints: Iterable[str],
          documents: Callable[[], list[Document]]) -> None:
    """Make `constraints` the collection's: build the keys of new ones from `documents()`
    (`DuplicateValues` when some share a key), forget the others. The caller holds the
    collection's index lock."""
    wanted = set(constraints)
    for old in set(constraints_on_disk(directory)) - wanted:
        _remove_tree(_constraint_dir(directory, old))
    stored: list[Document] | None = None
    for constraint in sorted(wanted):
        where = _constraint_dir(directory, constraint)
        if (where / _BUILT).exists():
            continue
        stored = documents() if stored is None else stored
        keys, shared = duplicates(stored, constraint)
        if shared:
            raise DuplicateValues(collection, constraint, shared)
        where.mkdir(parents=True, exist_ok=True)
        for key, uid in keys.items():
            link = _link(directory, constraint, key)
            link.unlink(missing_ok=True)
            os.symlink(f"{_UP}{uid}.json", link)
        fsync_dir(where)
        atomic_write(where / _BUILT, constraint.encode())


def _holder(link: Path) -> str | None:
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return None
    name = target.removeprefix(_UP)
    return name.removesuffix(".json") if name.endswith(".json") else None


def _remove_tree(path: Path) -> None:
    for entry in os.scandir(path):
        Path(entry.path).unlink(missing_ok=True)
    path.rmdir()
