"""Opening storage as a service is configured: which backend, and whether to migrate.

`open_storage` picks the backend for what a user typed (a data directory or a database
URL). A service start goes through `database_url_for` (the project's storage settings and
the command line decide between files and a database) and `prepare_storage` (open it,
then migrate the schema or check it is current), and ``migrate`` through
`migrate_database`. Command lines only translate `StorageSetupError` into their own words.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._base import DEFAULT_CHANGE_HISTORY, Storage, StorageError
from .file import FileStorage

if TYPE_CHECKING:
    from .sql import SQLStorage

__all__ = [
    "DatabaseURLRequired",
    "StorageSetupError",
    "database_url_for",
    "is_database_url",
    "migrate_database",
    "open_storage",
    "prepare_storage",
]

log = logging.getLogger("fabrica.storage")
T = TypeVar("T")

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^file:")
_EXAMPLE_URLS = {"postgres": "postgresql://user@localhost:5432/db",
                 "mysql": "mysql://user@localhost:3306/db"}


class StorageSetupError(StorageError):
    """Storage cannot be opened as configured. `usage` is true when what was given is wrong
    (a malformed URL), false when the database refused or failed."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


class DatabaseURLRequired(StorageSetupError):
    """The project keeps its resources in a database server and no URL was given."""

    def __init__(self, driver: str) -> None:
        self.driver = driver
        self.example = _EXAMPLE_URLS.get(driver, "postgresql://user@localhost:5432/db")
        super().__init__(f"this project keeps its resources in {driver}: give a database URL, "
                         f"e.g. {self.example}", usage=True)


def is_database_url(target: str | os.PathLike[str]) -> bool:
    """``sqlite:///x.db``, ``postgresql://...``, ``file:app.db``: anything but a plain path."""
    return isinstance(target, str) and bool(_URL.match(target))


def open_storage(target: str | os.PathLike[str], *,
                 change_history: int = DEFAULT_CHANGE_HISTORY,
                 **engine_options: object) -> Storage:
    """`SQLStorage` for a database URL, `FileStorage` for a directory; either keeps the last
    `change_history` changes of each collection for watchers.

    A SQL schema is not migrated here: call ``await storage.migrate()`` (or
    ``check_schema()``) first, or use `prepare_storage`.
    """
    if not is_database_url(target):
        return FileStorage(target, change_history=change_history)
    from .sql import SQLStorage  # SQLAlchemy costs import time the file backend never pays

    return SQLStorage(str(target), change_history=change_history, **engine_options)


def database_url_for(
    *,
    storage_type: str,
    db_driver: str,
    data_dir: str | os.PathLike[str],
    database_url: str | None,
    sqlite_name: str,
) -> str | None:
    """The SQL database a service uses, or None for the file backend in `data_dir`.

    A given URL wins; a project on SQL storage without one uses SQLite in
    ``DATA_DIR/SQLITE_NAME.db``, and a project on a database server needs a URL.
    """
    if database_url:
        return database_url
    if storage_type != "sql":
        return None
    if db_driver != "sqlite":
        raise DatabaseURLRequired(db_driver)
    return f"sqlite:///{Path(data_dir).resolve() / sqlite_name}.db"


def prepare_storage(
    data_dir: str | os.PathLike[str],
    database_url: str | None,
    *,
    auto_migrate: bool | None = None,
    migrate_command: str = "migrate",
    change_history: int = DEFAULT_CHANGE_HISTORY,
) -> Storage:
    """Storage ready to serve: files in `data_dir`, or the database at `database_url`.

    An empty database gets its schema; an older schema is upgraded only with `auto_migrate`
    (by default: only SQLite), else refused saying to run `migrate_command`; with
    `auto_migrate` False the schema is never touched, only checked. Runs its own event loop
    briefly, so call it before the server starts its own. `change_history`: changes kept
    per collection for watchers (``--watch-history``).
    """
    if database_url is None:
        log.info("storage: file backend in %s", Path(data_dir).resolve())
        return FileStorage(data_dir, change_history=change_history)
    sql = _sql_storage(database_url, change_history)
    if auto_migrate is False:
        _run_on_database(sql, sql.check_schema(migrate_command))
    else:
        upgrade = sql.database.is_sqlite if auto_migrate is None else True
        changed = _run_on_database(sql, sql.prepare_schema(migrate_command, upgrade=upgrade))
        if changed is not None and changed[0] is None:
            log.info("database schema created (revision %s): the database had none",
                     changed[1])
        elif changed is not None:
            log.info("database schema migrated from %s to %s", *changed)
    log.info("storage: SQL backend (%s) at %s", sql.name, sql.url)
    return sql


def migrate_database(database_url: str) -> tuple[str, str | None, str]:
    """Create or upgrade the schema: (the redacted URL, revision before, revision after)."""
    sql = _sql_storage(database_url)
    before, after = _run_on_database(sql, sql.migrate())
    return sql.url, before, after


def _sql_storage(url: str, change_history: int = DEFAULT_CHANGE_HISTORY) -> SQLStorage:
    from .sql import SQLStorage  # loads SQLAlchemy: only services on SQL pay for it

    try:
        return SQLStorage(url, change_history=change_history)
    except ValueError as exc:
        raise StorageSetupError(str(exc), usage=True) from None


def _run_on_database(storage: SQLStorage, work: Coroutine[Any, Any, T]) -> T:
    """Run `work` (a coroutine on `storage`) on a loop of its own, then close its
    connections: they belong to that loop, and the server runs another."""

    async def run() -> T:
        try:
            return await work
        finally:
            await storage.close()

    try:
        return asyncio.run(run())
    except StorageError as exc:
        raise StorageSetupError(str(exc)) from None
    except Exception as exc:  # a wrong password, a missing database...: say so, plainly
        reason = getattr(exc, "orig", None) or exc
        raise StorageSetupError(
            f"cannot use the database {storage.url}: {type(reason).__name__}: {reason}"
        ) from None
