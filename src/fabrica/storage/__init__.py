"""Storage backends: the `Storage` protocol, the file backend and the SQL backend.

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
    Gone,
    Invalid,
    NotFound,
    Storage,
    StorageError,
    StoredChange,
    Unavailable,
)
from ._file import FileStorage
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

if TYPE_CHECKING:
    from ._sql import SQLStorage
    from ._sql_leases import SQLLeases
    from ._sql_migrate import MigrationRequired

__all__ = [
    "DEFAULT_CHANGE_HISTORY",
    "AlreadyExists",
    "ChangeType",
    "Conflict",
    "DatabaseURLRequired",
    "Document",
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
    "Storage",
    "StorageError",
    "StorageSetupError",
    "StoredChange",
    "Unavailable",
    "database_url_for",
    "is_database_url",
    "lease_key",
    "migrate_database",
    "open_storage",
    "prepare_storage",
    "with_timeout",
]


def __getattr__(name: str) -> Any:
    if name == "SQLStorage":
        from ._sql import SQLStorage

        return SQLStorage
    if name == "SQLLeases":
        from ._sql_leases import SQLLeases

        return SQLLeases
    if name == "MigrationRequired":
        from ._sql_migrate import MigrationRequired

        return MigrationRequired
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
