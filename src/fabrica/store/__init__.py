"""Typed resource access on top of a storage backend: `ResourceStore` (the one write path),
its change notifications, the `ChangePublisher` that turns them into events, the
garbage collector that deletes the dependents of deleted owners, and the `WatchCache`
(watches, and reads from memory kept current by the storage's change log)."""

from ._actor import (
    ANONYMOUS,
    SYSTEM_CONTROLLER,
    acting_as,
    current_actor,
    current_roles,
    reset_actor,
    reset_roles,
    set_actor,
    set_roles,
)
from ._changes import Action, Change, ChangeListener, Emission, EmissionListener, UpdateType
from ._create_many import CreateManyError, NewResource
from ._export import EXPORT_FORMAT, export_resources
from ._fields import ImmutableFieldError, prepare_fields, prepare_unique
from ._gc import GarbageCollector
from ._hooks import Actor, HookFailed, Hooks, Operation, Reject, WriteContext
from ._import import (
    BadExport,
    ImportMode,
    ImportPlan,
    check_target,
    import_resources,
    publishing,
    read_export,
)
from ._owners import OwnerReferenceError
from ._publisher import ChangePublisher
from ._secrets import Encryption, EncryptionError, check_storage_key
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
    "prepare_fields",
    "prepare_unique",
    "ANONYMOUS",
    "DEFAULT_ATTEMPTS",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_WATCH_MEMORY",
    "DEFAULT_VERSION_WAIT",
    "EXPORT_FORMAT",
    "SYSTEM_CONTROLLER",
    "Action",
    "Actor",
    "BadExport",
    "CachedRead",
    "Change",
    "CreateManyError",
    "ChangeListener",
    "ChangePublisher",
    "Emission",
    "EmissionListener",
    "Encryption",
    "EncryptionError",
    "GarbageCollector",
    "HookFailed",
    "Hooks",
    "Operation",
    "ImportMode",
    "ImportPlan",
    "NewResource",
    "OwnerReferenceError",
    "Part",
    "Reject",
    "ResourceStore",
    "ResourceVersionTooLarge",
    "UnknownKind",
    "UpdateType",
    "WatchCache",
    "Watcher",
    "WriteContext",
    "acting_as",
    "check_storage_key",
    "check_target",
    "current_actor",
    "current_roles",
    "error_line",
    "export_resources",
    "import_resources",
    "publishing",
    "read_export",
    "reset_actor",
    "reset_roles",
    "set_actor",
    "set_roles",
]
