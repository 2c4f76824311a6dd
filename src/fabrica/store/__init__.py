"""Typed resource access on top of a storage backend: `ResourceStore` (the one write path),
its change notifications, the `ChangePublisher` that turns them into events, and the
garbage collector that deletes the dependents of deleted owners."""

from ._actor import (
    ANONYMOUS,
    SYSTEM_CONTROLLER,
    acting_as,
    current_actor,
    reset_actor,
    set_actor,
)
from ._changes import Action, Change, ChangeListener, Emission, EmissionListener, UpdateType
from ._gc import GarbageCollector
from ._publisher import ChangePublisher
from ._store import DEFAULT_ATTEMPTS, Part, ResourceStore, UnknownKind

__all__ = [
    "ANONYMOUS",
    "DEFAULT_ATTEMPTS",
    "SYSTEM_CONTROLLER",
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
    "acting_as",
    "current_actor",
    "reset_actor",
    "set_actor",
]
