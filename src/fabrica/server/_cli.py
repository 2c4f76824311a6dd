"""``python -m PKG.server serve``: the command line of a generated service.

Every option has an environment variable ``PKGUPPER_OPTION`` (``RACK_INVENTORY_PORT``...);
the project's `.fabrica.yaml` choices arrive as `ServiceSettings` and act as defaults.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import uvicorn

from .._settings import ServiceSettings
from .._version import __version__
from ..events import NatsBus
from ..reconcile import ResourceReconciler
from ..resource import Resource
from ..storage import FileStorage, Storage, StorageError
from ._app import DEFAULT_MAX_BODY_SIZE, create_app

if TYPE_CHECKING:
    from ..storage import SQLStorage

__all__ = ["main", "service_cli"]

log = logging.getLogger("fabrica.server")
T = TypeVar("T")

# Features a project can record in .fabrica.yaml before this release implements them.
_NOT_YET = "not available yet in this release of pyfabrica"


def main(
    kinds: Sequence[type[Resource[Any, Any]]],
    settings: ServiceSettings,
    argv: Sequence[str] | None = None,
    reconcilers: Sequence[type[ResourceReconciler[Any]]] = (),
) -> None:
    """Run the service command line (``serve``) for `kinds` and their `reconcilers`."""
    args = list(argv) if argv is not None else None
    service_cli(kinds, settings, reconcilers).main(
        args=args, prog_name=f"python -m {settings.package}.server")


def service_cli(
    kinds: Sequence[type[Resource[Any, Any]]],
    settings: ServiceSettings,
    reconcilers: Sequence[type[ResourceReconciler[Any]]] = (),
) -> click.Group:
    env = settings.env_prefix

    @click.group(help=f"{settings.project}: {settings.description or 'a fabrica service'}")
    @click.version_option(__version__, prog_name="pyfabrica")
    def cli() -> None:
        pass

    @cli.command(help="Serve the REST API.")
    @click.option("--host", default="0.0.0.0", show_default=True, envvar=f"{env}_HOST")
    @click.option("--port", default=8080, type=click.IntRange(0, 65535), show_default=True,
                  envvar=f"{env}_PORT")
    @click.option("--data-dir", default="./data", show_default=True, envvar=f"{env}_DATA_DIR",
                  help="Where the file backend keeps its documents.")
    @click.option("--database-url", default=None, envvar=f"{env}_DATABASE_URL",
                  help="SQL storage URL (sqlite:///..., postgresql://..., mysql://...).")
    @click.option("--auto-migrate/--no-auto-migrate", default=None, envvar=f"{env}_AUTO_MIGRATE",
                  help="Create or upgrade the SQL schema at start "
                       "[default: on for SQLite, off otherwise].")
    @click.option("--events-bus", type=click.Choice(["memory", "nats"]),
                  default=settings.events_bus, show_default=True, envvar=f"{env}_EVENTS_BUS")
    @click.option("--nats-url", default=settings.nats_url, show_default=True,
                  envvar=f"{env}_NATS_URL")
    @click.option("--max-body-size", default=DEFAULT_MAX_BODY_SIZE, type=click.IntRange(1),
                  show_default=True, envvar=f"{env}_MAX_BODY_SIZE", help="Bytes.")
    @click.option("--log-level", default="info", show_default=True, envvar=f"{env}_LOG_LEVEL",
                  type=click.Choice(["debug", "info", "warning", "error"]))
    @click.option("--access-log/--no-access-log", default=True, show_default=True,
                  envvar=f"{env}_ACCESS_LOG")
    def serve(
        host: str,
        port: int,
        data_dir: str,
        database_url: str | None,
        auto_migrate: bool | None,
        events_bus: str,
        nats_url: str,
        max_body_size: int,
        log_level: str,
        access_log: bool,
    ) -> None:
        logging.basicConfig(level=log_level.upper(),
                            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        storage = _open_storage(settings, data_dir, database_url, auto_migrate)
        active = _active_reconcilers(settings, reconcilers)
        _report_features(settings, events_bus, nats_url, reconcilers, active)
        bus = NatsBus(nats_url, name=settings.project) if events_bus == "nats" else None
        app = create_app(kinds, storage, settings=settings, max_body_size=max_body_size,
                         reconcilers=active, bus=bus)
        log.info("serving %s: %s", settings.project,
                 ", ".join(f"/{k.resource_info.plural}" for k in kinds) or "no resources")
        log.info("listening on http://%s:%d (docs at /docs)", host, port)
        uvicorn.run(app, host=host, port=port, log_config=None, log_level=log_level,
                    access_log=access_log, server_header=False)

    @cli.command(help="Create or upgrade the SQL database schema to this release's.")
    @click.option("--data-dir", default="./data", show_default=True, envvar=f"{env}_DATA_DIR",
                  help="Where the default SQLite database lives.")
    @click.option("--database-url", default=None, envvar=f"{env}_DATABASE_URL",
                  help="SQL storage URL (sqlite:///..., postgresql://..., mysql://...).")
    def migrate(data_dir: str, database_url: str | None) -> None:
        url = _database_url(settings, data_dir, database_url)
        if url is None:
            raise click.UsageError("this project keeps its resources in files, which need no "
                                   "migration; give --database-url to migrate a SQL database")
        storage = _sql_storage(url)
        before, after = _run_on_database(storage, storage.migrate())
        if before == after:
            click.echo(f"{storage.url}: schema already at revision {after}")
        else:
            click.echo(f"{storage.url}: schema migrated from {before or 'nothing'} to {after}")

    return cli


def _open_storage(
    settings: ServiceSettings,
    data_dir: str,
    database_url: str | None,
    auto_migrate: bool | None = None,
) -> Storage:
    url = _database_url(settings, data_dir, database_url)
    if url is None:
        storage = FileStorage(data_dir)
        log.info("storage: file backend in %s", Path(data_dir).resolve())
        return storage
    sql = _sql_storage(url)
    if auto_migrate is None:
        auto_migrate = sql.database.is_sqlite
    if auto_migrate:
        before, after = _run_on_database(sql, sql.migrate())
        if before != after:
            log.info("database schema migrated from %s to %s", before or "nothing", after)
    else:
        _run_on_database(sql, sql.check_schema(f"python -m {settings.package}.server migrate"))
    log.info("storage: SQL backend (%s) at %s", sql.name, sql.url)
    return sql


def _database_url(settings: ServiceSettings, data_dir: str, database_url: str | None
                  ) -> str | None:
    """The SQL database to use, or None for the file backend."""
    if database_url:
        return database_url
    if settings.storage_type != "sql":
        return None
    if settings.db_driver != "sqlite":
        raise click.UsageError(
            f"this project keeps its resources in {settings.db_driver}: give --database-url "
            f"(or {settings.env_prefix}_DATABASE_URL), e.g. "
            + ("postgresql://user@localhost:5432/db" if settings.db_driver == "postgres"
               else "mysql://user@localhost:3306/db"))
    return f"sqlite:///{Path(data_dir).resolve() / settings.package}.db"


def _sql_storage(url: str) -> SQLStorage:
    from ..storage import SQLStorage  # loads SQLAlchemy: only services on SQL pay for it

    try:
        return SQLStorage(url)
    except ValueError as exc:
        raise click.UsageError(f"--database-url: {exc}") from None


def _run_on_database(storage: SQLStorage, work: Coroutine[Any, Any, T]) -> T:
    """Run `work` (a coroutine on `storage`) before serving, then close its connections:
    they belong to this event loop, and the server runs its own."""

    async def run() -> T:
        try:
            return await work
        finally:
            await storage.close()

    try:
        return asyncio.run(run())
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # a wrong password, a missing database...: say so, plainly
        reason = getattr(exc, "orig", None) or exc
        raise click.ClickException(
            f"cannot use the database {storage.url}: {type(reason).__name__}: {reason}"
        ) from None


def _active_reconcilers(
    settings: ServiceSettings, reconcilers: Sequence[type[ResourceReconciler[Any]]]
) -> list[type[ResourceReconciler[Any]]]:
    if not settings.reconcile:
        return []
    return [cls for cls in reconcilers if cls.is_implemented()]


def _report_features(
    settings: ServiceSettings,
    events_bus: str,
    nats_url: str,
    reconcilers: Sequence[type[ResourceReconciler[Any]]],
    active: Sequence[type[ResourceReconciler[Any]]],
) -> None:
    if settings.auth:
        raise click.UsageError(
            f"auth is enabled in .fabrica.yaml but {_NOT_YET}; refusing to serve without it"
        )
    bus = f"NATS bus at {nats_url}" if events_bus == "nats" else "memory bus"
    if settings.events or active or events_bus == "nats":
        log.info("events: %s, types %s.KIND.ACTION, stream at GET /events", bus,
                 settings.event_prefix)
    else:
        log.info("events: off")
    if not settings.reconcile:
        log.info("reconcilers: off")
        return
    names = ", ".join(cls.kind.resource_info.kind for cls in active) or "none"
    log.info("reconcilers: %s (%d workers each, requeue every %g min)", names,
             settings.reconcile_workers, settings.reconcile_requeue_minutes)
    idle = [cls.kind.resource_info.kind for cls in reconcilers if cls not in active]
    if idle:
        log.info("not reconciled (no reconcile_KIND written yet): %s", ", ".join(idle))
