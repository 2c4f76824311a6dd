"""Unique keys as both backends keep them: a constraint's name says which fields it
combines, a key is hashed to a fixed size (a 64 KiB value is a 64-character key), and the
keys of stored documents are computed the way the store computes a write's.

The store hands a write its keys (`UniqueKeys`); the backends recompute a stored document's
keys only to tell a live holder from a stale record (the file backend after a crash) and to
build a new constraint's keys from what is stored (`duplicates`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from ..resource import field_value, unique_key
from ._base import Document

__all__ = ["constraint_paths", "document_key", "duplicates", "key_hash"]


def constraint_paths(constraint: str) -> tuple[str, ...]:
    """``"spec.rackUID+spec.slot"`` → its fields' JSON paths."""
    return tuple(constraint.split("+"))


def document_key(document: Mapping[str, object], constraint: str) -> str | None:
    """The key `document` holds for `constraint`, as the store computes it (None: none)."""
    return unique_key([field_value(document, path) for path in constraint_paths(constraint)])


def key_hash(key: str) -> str:
    """A key as stored: its SHA-256, hex (fixed size whatever the value's length)."""
    return hashlib.sha256(key.encode()).hexdigest()


def duplicates(documents: Iterable[Document], constraint: str) -> tuple[
        dict[str, str], dict[str, list[str]]]:
    """The documents' keys of `constraint` (key → uid) and the keys more than one of them
    holds (key → every holder's uid)."""
    holders: dict[str, list[str]] = {}
    for document in documents:
        key = document_key(document, constraint)
        if key is not None:
            holders.setdefault(key, []).append(document["metadata"]["uid"])
    shared = {key: sorted(uids) for key, uids in holders.items() if len(uids) > 1}
    return {key: uids[0] for key, uids in holders.items()}, shared
