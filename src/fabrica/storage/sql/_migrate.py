"""Running the alembic migrations in ``migrations/`` on a connection.

The migrations ship inside the package, so a service upgrades its database with nothing but
pyfabrica installed: ``python -m PKG.server migrate``, or at start with ``--auto-migrate``.
`SQLStorage` runs these functions in one transaction of its own. Two processes migrating at
once are serialised by a database lock (PostgreSQL advisory lock, MySQL ``GET_LOCK``,
SQLite's write lock), and the second finds nothing left to do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from .._base import StorageError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "MigrationRequired",
    "current_revision",
    "downgrade",
    "head_revision",
    "require_up_to_date",
    "upgrade",
]

VERSION_TABLE = "fabrica_alembic_version"
_LOCK_KEY = 0x6661627269636121  # "fabrica!": an arbitrary, fixed advisory lock id

# Alembic announces each of its autogenerate plugins at INFO when imported; a service log
# wants "Running upgrade 0001 -> 0002" (alembic.runtime.migration), not those. Hence this
# line first, and alembic imported inside the functions below.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


class MigrationRequired(StorageError):
    """The database schema is missing or not the one this release of pyfabrica needs."""


def _config() -> Config:
    """A new one each time: a run keeps its connection in it."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "fabrica.storage.sql:migrations")
    config.set_main_option("path_separator", "os")
    return config


@cache
def head_revision() -> str:
    """The newest schema revision this release ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "fabrica ships at least one migration"
    return head


@cache
def _known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config())
    return frozenset(rev.revision for rev in scripts.walk_revisions())


def current_revision(conn: Connection) -> str | None:
    """The database's schema revision; None when it has no fabrica schema."""
    from alembic.runtime.migration import MigrationContext

    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(conn: Connection, target: str = "head") -> tuple[str | None, str]:
    """Migrate to `target`; return the revisions before and after."""
    with _locked(conn):
        before = current_revision(conn)
        _command(conn, "upgrade", target)
        after = current_revision(conn)
    assert after is not None
    return before, after


def downgrade(conn: Connection, target: str) -> None:
    """Step back to `target` ("base" removes every fabrica table)."""
    with _locked(conn):
        _command(conn, "downgrade", target)


def require_up_to_date(current: str | None, where: str, migrate_command: str) -> None:
    """Raise `MigrationRequired` saying what to do, unless `current` is the head."""
    head = head_revision()
    if current == head:
        return
    run = f"run `{migrate_command}`"
    if current is None:
        raise MigrationRequired(f"{where} has no fabrica schema yet: {run}")
    if current not in _known_revisions():
        raise MigrationRequired(
            f"{where} has schema revision {current}, newer than this pyfabrica knows "
            f"(its newest is {head}): upgrade pyfabrica"
        )
    raise MigrationRequired(
        f"{where} has schema revision {current}, this pyfabrica needs {head}: {run}"
    )


def _command(conn: Connection, action: str, target: str) -> None:
    from alembic import command

    config = _config()
    config.attributes["connection"] = conn
    try:
        getattr(command, action)(config, target)
    finally:
        config.attributes.pop("connection", None)


@contextmanager
def _locked(conn: Connection) -> Iterator[None]:
    """PostgreSQL: an advisory lock until the transaction ends; MySQL: a named lock."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    if dialect not in ("mysql", "mariadb"):
        yield
        return
    name = f"fabrica-migrate-{conn.execute(text('SELECT DATABASE()')).scalar()}"[:64]
    if conn.execute(text("SELECT GET_LOCK(:name, 60)"), {"name": name}).scalar() != 1:
        raise MigrationRequired("another process has been migrating this database for 60 s")
    try:
        yield
    finally:
        try:
            conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
        except DBAPIError:  # the connection is gone, and its lock with it
            pass
