"""Typed resource access on top of a storage backend: `ResourceStore`, its change
notifications and the garbage collector that deletes the dependents of deleted owners."""

from ._changes import Action, Change, ChangeListener, UpdateType
from ._gc import GarbageCollector
from ._store import ResourceStore, UnknownKind

__all__ = [
    "Action",
    "Change",
    "ChangeListener",
    "GarbageCollector",
    "ResourceStore",
    "UnknownKind",
    "UpdateType",
]
