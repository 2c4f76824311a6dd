"""Typed resource access on top of a storage backend: `ResourceStore` (the one write path),
its change notifications, the `ChangePublisher` that turns them into events, the
garbage collector that deletes the dependents of deleted owners, and the `WatchCache`
(watches, and reads from memory kept current by the storage's change log)."""

from ._actor import (
    ANONYMOUS,
    SYSTEM_CONTROLLER,
    acting_as,
    current_actor,
    reset_actor,
    set_actor,
)
from ._changes import Action, Change, ChangeListener, Emission, EmissionListener, UpdateType
from ._fields import ImmutableFieldError, prepare_unique
from ._gc import GarbageCollector
from ._owners import OwnerReferenceError
from ._publisher import ChangePublisher
from ._store import DEFAULT_ATTEMPTS, Part, ResourceStore, UnknownKind
from ._watch_cache import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_VERSION_WAIT,
    DEFAULT_WATCH_MEMORY,
    CachedRead,
    ResourceVersionTooLarge,
    WatchCache,
)
from ._watchers import Watcher, error_line

__all__ = [
    "ImmutableFieldError",
    "prepare_unique",
    "ANONYMOUS",
    "DEFAULT_ATTEMPTS",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_WATCH_MEMORY",
    "DEFAULT_VERSION_WAIT",
    "SYSTEM_CONTROLLER",
    "Action",
    "CachedRead",
    "Change",
    "ChangeListener",
    "ChangePublisher",
    "Emission",
    "EmissionListener",
    "GarbageCollector",
    "OwnerReferenceError",
    "Part",
    "ResourceStore",
    "ResourceVersionTooLarge",
    "UnknownKind",
    "UpdateType",
    "WatchCache",
    "Watcher",
    "acting_as",
    "current_actor",
    "error_line",
    "reset_actor",
    "set_actor",
]
