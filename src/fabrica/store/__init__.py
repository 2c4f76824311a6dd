"""Typed resource access on top of a storage backend: `ResourceStore` (the one write path),
its change notifications, the `ChangePublisher` that turns them into events, and the
garbage collector that deletes the dependents of deleted owners."""

from ._changes import Action, Change, ChangeListener, Emission, EmissionListener, UpdateType
from ._gc import GarbageCollector
from ._publisher import ChangePublisher
from ._store import DEFAULT_ATTEMPTS, Part, ResourceStore, UnknownKind

__all__ = [
    "DEFAULT_ATTEMPTS",
    "Action",
    "Change",
    "ChangeListener",
    "ChangePublisher",
    "Emission",
    "EmissionListener",
    "GarbageCollector",
    "Part",
    "ResourceStore",
    "UnknownKind",
    "UpdateType",
]
