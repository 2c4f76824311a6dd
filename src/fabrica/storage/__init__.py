"""Storage backends: the `Storage` protocol, the file backend (`file/`) and the SQL backend
(`sql/`), which do not import each other; what both use (the contract, its checks, leases,
the outbox, timeouts, opening a backend from options) is here.

`SQLStorage` (SQLite, PostgreSQL, MariaDB/MySQL) and `MigrationRequired` load SQLAlchemy on
first use, so a service on the file backend (and every client) starts without it.
"""

from typing import TYPE_CHECKING, Any

from ._base import (
    DEFAULT_CHANGE_HISTORY,
    AlreadyExists,
    ChangeType,
    Conflict,
    Document,
    DuplicateValues,
    Gone,
    Invalid,
    NotFound,
    Storage,
    StorageError,
    StoredChange,
    Unavailable,
    UniqueKeys,
)
from ._bulk import BatchMode, BulkItem, BulkStorage, SnapshotWriter
from ._leases import Leases, LocalLeases, lease_key
from ._open import (
    DatabaseURLRequired,
    StorageSetupError,
    database_url_for,
    is_database_url,
    migrate_database,
    open_storage,
    prepare_storage,
)
from ._outbox import Outbox, OutboxEntry, OutboxMessage, OutboxStats
from ._timeout import with_timeout
from .file import FileStorage

if TYPE_CHECKING:
    from .sql import MigrationRequired, SQLLeases, SQLStorage

__all__ = [
    "DEFAULT_CHANGE_HISTORY",
    "AlreadyExists",
    "BatchMode",
    "BulkItem",
    "BulkStorage",
    "ChangeType",
    "Conflict",
    "DatabaseURLRequired",
    "Document",
    "DuplicateValues",
    "FileStorage",
    "Gone",
    "Invalid",
    "Leases",
    "LocalLeases",
    "MigrationRequired",
    "NotFound",
    "Outbox",
    "OutboxEntry",
    "OutboxMessage",
    "OutboxStats",
    "SQLLeases",
    "SQLStorage",
    "SnapshotWriter",
    "Storage",
    "StorageError",
    "StorageSetupError",
    "StoredChange",
    "Unavailable",
    "UniqueKeys",
    "database_url_for",
    "is_database_url",
    "lease_key",
    "migrate_database",
    "open_storage",
    "prepare_storage",
    "with_timeout",
]


_SQL_NAMES = frozenset({"MigrationRequired", "SQLLeases", "SQLStorage"})


def __getattr__(name: str) -> Any:
    if name in _SQL_NAMES:
        from . import sql  # loads SQLAlchemy: only on first use of a SQL name

        return getattr(sql, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
