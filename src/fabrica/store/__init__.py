"""Typed resource access on top of a storage backend: `ResourceStore`."""

from ._store import ResourceStore, UnknownKind

__all__ = ["ResourceStore", "UnknownKind"]
