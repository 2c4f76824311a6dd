"""``python -m PKG.server serve``: the command line of a generated service.

Every option has an environment variable ``PKGUPPER_OPTION`` (``RACK_INVENTORY_PORT``...);
the project's `.fabrica.yaml` choices arrive as `ServiceSettings` and act as defaults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

from ..._settings import ServiceSettings
from ..._version import __version__
from ...reconcile import ResourceReconciler
from ...resource import ApiVersionTable, Resource, ServedVersion
from ...service import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_STORAGE_TIMEOUT,
    ROLES,
    OptionError,
    Role,
    Service,
    ServiceOptions,
    default_instance,
)
from ...storage import (
    DEFAULT_CHANGE_HISTORY,
    DatabaseURLRequired,
    Storage,
    StorageSetupError,
    database_url_for,
    migrate_database,
    prepare_storage,
)
from ...store import DEFAULT_CACHE_SIZE, Hooks
from ..http._app import create_app
from ._auth_cli import auth_from_options, auth_options, reload_policy_on_sighup, token_command
from ._backup_cli import backup_commands, storage_opener
from ._logging import configure_logging
from ._probes import probe_app
from ._units import as_byte_size, as_duration, as_positive_byte_size
from ._workers import run_app, serve_workers

if TYPE_CHECKING:
    from ...auth import Auth

__all__ = ["main", "service_cli"]


log = logging.getLogger("fabrica.server")


def main(
    kinds: Sequence[type[Resource[Any, Any]]],
    settings: ServiceSettings,
    argv: Sequence[str] | None = None,
    reconcilers: Sequence[type[ResourceReconciler[Any]]] = (),
    versions: Sequence[type[ServedVersion[Any, Any]]] = (),
    hooks: Sequence[type[Hooks[Any]]] = (),
) -> None:
    """Run the service command line (``serve``) for `kinds`, their `reconcilers`, the
    other API `versions` they serve and their admission `hooks`."""
    args = list(argv) if argv is not None else None
    service_cli(kinds, settings, reconcilers, versions, hooks).main(
        args=args, prog_name=f"python -m {settings.package}.server")


def service_cli(
    kinds: Sequence[type[Resource[Any, Any]]],
    settings: ServiceSettings,
    reconcilers: Sequence[type[ResourceReconciler[Any]]] = (),
    versions: Sequence[type[ServedVersion[Any, Any]]] = (),
    hooks: Sequence[type[Hooks[Any]]] = (),
) -> click.Group:
    """The ``serve``, ``token``, ``migrate``, ``export`` and ``import`` commands of a
    generated service."""
    parts = _Parts(kinds, settings, reconcilers, versions, hooks)
    cli = click.Group(help=f"{settings.project}: {settings.description or 'a fabrica service'}")
    cli = click.version_option(__version__, prog_name="pyfabrica")(cli)
    serve = _serve_options(settings)(functools.partial(_serve, parts))
    cli.add_command(click.command("serve", help="Serve the REST API.")(serve))
    cli.add_command(token_command(settings))
    cli.add_command(_migrate_command(settings))
    opener = storage_opener(settings, functools.partial(_database_url, settings),
                            f"python -m {settings.package}.server migrate")
    for command in backup_commands(kinds, settings, versions, opener):
        cli.add_command(command)
    return cli


@dataclasses.dataclass(frozen=True)
class _Parts:
    """What the generated project gives the command line: its kinds and their code."""

    kinds: Sequence[type[Resource[Any, Any]]]
    settings: ServiceSettings
    reconcilers: Sequence[type[ResourceReconciler[Any]]]
    versions: Sequence[type[ServedVersion[Any, Any]]]
    hooks: Sequence[type[Hooks[Any]]] = ()


def _serve_options(settings: ServiceSettings) -> Callable[[Callable[..., None]], Any]:
    """``serve``'s options, each with its environment variable (`ServiceOptions`' fields, and
    the auth options)."""
    env = settings.env_prefix
    options = [
        click.option("--host", default="0.0.0.0", show_default=True, envvar=f"{env}_HOST"),
        click.option("--port", default=8080, type=click.IntRange(0, 65535), show_default=True,
                     envvar=f"{env}_PORT"),
        click.option("--data-dir", default="./data", show_default=True,
                     envvar=f"{env}_DATA_DIR", help="Where the file backend keeps its documents."),
        _database_url_option(env),
        click.option("--auto-migrate/--no-auto-migrate", default=None,
                     envvar=f"{env}_AUTO_MIGRATE",
                     help="Upgrade an older SQL schema at start [default: on for SQLite; "
                          "otherwise an empty database gets its schema, an older one is "
                          "refused until `migrate`]. --no-auto-migrate never touches the "
                          "schema."),
        click.option("--events-bus", type=click.Choice(["memory", "nats", "kafka"]),
                     default=settings.events_bus, show_default=True,
                     envvar=f"{env}_EVENTS_BUS"),
        click.option("--nats-url", default=settings.nats_url, show_default=True,
                     envvar=f"{env}_NATS_URL"),
        click.option("--event-prefix", default=settings.event_prefix, show_default=True,
                     envvar=f"{env}_EVENT_PREFIX",
                     help="PREFIX of the event types PREFIX.KIND.ACTION; services that share "
                          "one NATS need prefixes of their own."),
        click.option("--nats-stream", default=settings.env_prefix, show_default=True,
                     envvar=f"{env}_NATS_STREAM",
                     help="The JetStream stream that keeps the events (bus nats)."),
        click.option("--nats-stream-max-age", callback=as_duration, default="7d",
                     show_default=True, envvar=f"{env}_NATS_STREAM_MAX_AGE",
                     help="Events older than this leave the stream (0: never)."),
        click.option("--nats-stream-max-bytes", callback=as_byte_size, default="1GiB",
                     show_default=True, envvar=f"{env}_NATS_STREAM_MAX_BYTES",
                     help="Beyond this size the oldest events leave the stream (0: no limit)."),
        *_kafka_options(settings),
        click.option("--role", type=click.Choice(ROLES), default="all", show_default=True,
                     envvar=f"{env}_ROLE",
                     help="api: the HTTP API only; controller: the reconcilers (serving only "
                          "/health, /ready and /metrics); all: both."),
        click.option("--workers", default=1, type=click.IntRange(1, 64), show_default=True,
                     envvar=f"{env}_WORKERS",
                     help="API processes on the port (needs --events-bus nats or kafka when events "
                          "are on); with --role all the first one also runs the reconcilers."),
        click.option("--instance", default=None, envvar=f"{env}_INSTANCE",
                     help="This process's name in logs and metrics [default: host-pid]."),
        click.option("--max-body-size", default=DEFAULT_MAX_BODY_SIZE, type=click.IntRange(1),
                     show_default=True, envvar=f"{env}_MAX_BODY_SIZE", help="Bytes."),
        click.option("--storage-timeout", default=DEFAULT_STORAGE_TIMEOUT, show_default=True,
                     type=click.FloatRange(0), envvar=f"{env}_STORAGE_TIMEOUT",
                     help="Seconds a storage operation may take before the request answers "
                          "503 with Retry-After (a frozen or unreachable database); 0: no "
                          "limit."),
        click.option("--watch-cache-size", default=DEFAULT_CACHE_SIZE, type=click.IntRange(0),
                     show_default=True, envvar=f"{env}_WATCH_CACHE_SIZE",
                     help="Resources per kind kept in memory to answer gets, lists and "
                          "watches; a kind with more is read from storage (0: no cache)."),
        click.option("--watch-memory", callback=as_positive_byte_size, default="256MiB",
                     show_default=True, envvar=f"{env}_WATCH_MEMORY",
                     help="Bytes all watches together may hold for clients that have not "
                          "read them yet; past it the watch holding most ends with ERROR 410."),
        click.option("--watch-history", default=DEFAULT_CHANGE_HISTORY, type=click.IntRange(1),
                     show_default=True, envvar=f"{env}_WATCH_HISTORY",
                     help="Changes per kind the storage keeps for watches to resume from; a "
                          "watch from an older resourceVersion gets ERROR 410."),
        click.option("--log-level", default="info", show_default=True,
                     envvar=f"{env}_LOG_LEVEL",
                     type=click.Choice(["debug", "info", "warning", "error"])),
        click.option("--access-log/--no-access-log", default=True, show_default=True,
                     envvar=f"{env}_ACCESS_LOG"),
        *_observability_options(env),
        click.option("--encryption-key", default=None, envvar=f"{env}_ENCRYPTION_KEY",
                     help="Fernet keys, comma-separated, that encrypt sensitive fields at "
                          "rest: the first encrypts, all decrypt (rotation)."),
        auth_options(env),
    ]

    def decorate(serve: Callable[..., None]) -> Any:
        for option in reversed(options):
            serve = option(serve)
        return serve

    return decorate


def _observability_options(env: str) -> list[Callable[[Any], Any]]:
    """``--log-format``, ``--otlp-endpoint``, ``--trace-sample-ratio`` and ``--auth-mode``
    (SPEC section 13)."""
    return [
        click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
                     show_default=True, envvar=f"{env}_LOG_FORMAT",
                     help="json: one JSON object per line, with trace_id and span_id."),
        click.option("--otlp-endpoint", default=None, metavar="URL",
                     envvar=f"{env}_OTLP_ENDPOINT",
                     help="Export OpenTelemetry spans over OTLP/HTTP to this collector (its "
                          "base URL, e.g. http://localhost:4318) [default: "
                          "OTEL_EXPORTER_OTLP_ENDPOINT; neither: no tracing]. The other "
                          "OTEL_* variables apply."),
        click.option("--trace-sample-ratio", default=1.0, type=click.FloatRange(0, 1),
                     show_default=True, envvar=f"{env}_TRACE_SAMPLE_RATIO",
                     help="Share of new traces sampled; a request that comes with a "
                          "traceparent follows its caller's choice."),
        click.option("--auth-mode", type=click.Choice(["enforce", "shadow"]),
                     default="enforce", show_default=True, envvar=f"{env}_AUTH_MODE",
                     help="shadow: decide, log and count every request "
                          "(fabrica_authz_decisions_total) but serve the denied ones; a "
                          "missing or invalid token is still 401."),
    ]


def _kafka_options(settings: ServiceSettings) -> list[Callable[[Any], Any]]:
    """``--kafka-bootstrap``, ``--kafka-topic`` and ``--kafka-partitions`` (SPEC section 12)."""
    env = settings.env_prefix
    return [
        click.option("--kafka-bootstrap", default=settings.kafka_bootstrap, show_default=True,
                     envvar=f"{env}_KAFKA_BOOTSTRAP", metavar="HOST:PORT[,HOST:PORT]",
                     help="Kafka's bootstrap servers (bus kafka)."),
        click.option("--kafka-topic", default=settings.kafka_topic or None,
                     show_default=settings.kafka_topic or f"PREFIX.{settings.project}",
                     envvar=f"{env}_KAFKA_TOPIC", metavar="NAME",
                     help="The Kafka topic that keeps the events, created when missing."),
        click.option("--kafka-partitions", default=settings.kafka_partitions,
                     type=click.IntRange(1), show_default=True,
                     envvar=f"{env}_KAFKA_PARTITIONS",
                     help="Partitions of the Kafka topic when it is created (a topic that "
                          "exists is used as it is)."),
    ]


def _database_url_option(env: str) -> Callable[[Any], Any]:
    return click.option("--database-url", default=None, envvar=f"{env}_DATABASE_URL",
                        help="SQL storage URL (sqlite:///..., postgresql://..., mysql://...).")


_OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(ServiceOptions))


def _serve(parts: _Parts, **values: Any) -> None:
    """``serve``: read the options, open the storage, serve in one process or several."""
    settings = parts.settings
    configure_logging(values["instance"] or default_instance(), values["log_level"],
                      values["log_format"])
    options = _read_options(settings, values)  # what is left: the auth options
    auth = auth_from_options(settings, values)
    if auth is not None:
        log.info("authorization: %s mode%s", options.auth_mode,
                 " (every decision logged, denied requests served)"
                 if options.auth_mode == "shadow" else "")
    elif options.auth_mode == "shadow":
        log.warning("--auth-mode shadow: this project has auth off, nothing to decide")
    if options.tracing:
        log.info("tracing: OTLP/HTTP to %s, sample ratio %g (parent-based)",
                 options.otlp_endpoint or "the OTEL_EXPORTER_OTLP_* endpoint",
                 options.trace_sample_ratio)
    storage = _open_storage(settings, options)
    active = _active_reconcilers(settings, parts.reconcilers)
    _log_features(options, parts.reconcilers, active if options.role != "api" else [])
    if auth is not None:
        reload_policy_on_sighup(auth)
    log.info("serving %s as %s: %s", settings.project, options.role,
             _served(parts.kinds, parts.versions))
    log.info("listening on http://%s:%d (docs at /docs)", options.host, options.port)
    served: dict[str, Any] = {"log_config": None, "log_level": options.log_level,
                              "access_log": options.access_log, "server_header": False}
    if options.workers == 1:
        run_app(_app(parts, options, storage, active, auth), host=options.host,
                port=options.port, **served)
        return
    serve_workers(lambda index: _app(parts, _worker(options, index),
                                     _open_storage(settings, options, auto_migrate=False),
                                     active, auth),
                  host=options.host, port=options.port, workers=options.workers, **served)


def _read_options(settings: ServiceSettings, values: dict[str, Any]) -> ServiceOptions:
    """`ServiceOptions` from `values` (popped from it); a refused option is a usage error."""
    chosen = {name: values.pop(name) for name in list(values) if name in _OPTION_NAMES}
    try:
        return ServiceOptions(settings=settings, **chosen)
    except OptionError as exc:
        if exc.option is not None:
            raise click.BadParameter(str(exc), param_hint=exc.option) from None
        raise click.UsageError(str(exc)) from None


def _worker(options: ServiceOptions, index: int) -> ServiceOptions:
    """Worker `index`'s options (in the worker, after the fork): its own name, and the
    reconcilers in the first one only, the others serving the API."""
    name = f"{options.instance}-{index}" if options.instance else default_instance()
    configure_logging(name, options.log_level, options.log_format)
    role: Role = options.role if index == 0 or options.role == "api" else "api"
    return options.replace(instance=name, role=role)


def _app(parts: _Parts, options: ServiceOptions, storage: Storage,
         reconcilers: Sequence[type[ResourceReconciler[Any]]], auth: Auth | None) -> Any:
    """The process's ASGI app: the API, or a controller's probes alone."""
    service = Service(parts.kinds, storage, options, reconcilers=reconcilers,
                      versions=parts.versions, auth=auth, hooks=parts.hooks)
    if options.role == "controller":
        return probe_app(service)
    return create_app(service)


def _migrate_command(settings: ServiceSettings) -> click.Command:
    env = settings.env_prefix

    @click.command(help="Create or upgrade the SQL database schema to this release's.")
    @click.option("--data-dir", default="./data", show_default=True, envvar=f"{env}_DATA_DIR",
                  help="Where the default SQLite database lives.")
    @_database_url_option(env)
    def migrate(data_dir: str, database_url: str | None) -> None:
        url = _database_url(settings, data_dir, database_url)
        if url is None:
            raise click.UsageError("this project keeps its resources in files, which need no "
                                   "migration; give --database-url to migrate a SQL database")
        with _storage_errors():
            shown, before, after = migrate_database(url)
        if before == after:
            click.echo(f"{shown}: schema already at revision {after}")
        else:
            click.echo(f"{shown}: schema migrated from {before or 'nothing'} to {after}")

    return migrate


def _open_storage(settings: ServiceSettings, options: ServiceOptions,
                  auto_migrate: bool | None = None) -> Storage:
    url = _database_url(settings, options.data_dir, options.database_url)
    with _storage_errors():
        return prepare_storage(options.data_dir, url,
                               auto_migrate=auto_migrate if auto_migrate is not None
                               else options.auto_migrate,
                               migrate_command=f"python -m {settings.package}.server migrate",
                               change_history=options.watch_history)

def _database_url(settings: ServiceSettings, data_dir: str, database_url: str | None
                  ) -> str | None:
    """The SQL database to use, or None for the file backend (`database_url_for` decides)."""
    try:
        return database_url_for(storage_type=settings.storage_type,
                                db_driver=settings.db_driver, data_dir=data_dir,
                                database_url=database_url, sqlite_name=settings.package)
    except DatabaseURLRequired as exc:
        raise click.UsageError(
            f"this project keeps its resources in {exc.driver}: give --database-url "
            f"(or {settings.env_prefix}_DATABASE_URL), e.g. {exc.example}") from None


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    """`StorageSetupError` in command-line terms: a usage error (exit 2) or a failure (1)."""
    try:
        yield
    except StorageSetupError as exc:
        if exc.usage:
            raise click.UsageError(f"--database-url: {exc}") from None
        raise click.ClickException(str(exc)) from None


def _served(kinds: Sequence[type[Resource[Any, Any]]],
            versions: Sequence[type[ServedVersion[Any, Any]]]) -> str:
    """``/devices (v2, v1 deprecated), /racks (v1)``: each kind's path and API versions."""
    table = ApiVersionTable(kinds, versions)
    parts = []
    for cls in kinds:
        table_of = table.of(cls)
        names = [v + (" deprecated" if table_of.deprecated(v) else "") for v in table_of.names]
        parts.append(f"/{cls.resource_info.plural} ({', '.join(names)})")
    return ", ".join(parts) or "no resources"


def _active_reconcilers(
    settings: ServiceSettings, reconcilers: Sequence[type[ResourceReconciler[Any]]]
) -> list[type[ResourceReconciler[Any]]]:
    if not settings.reconcile:
        return []
    return [cls for cls in reconcilers if cls.is_implemented()]


def _log_features(
    options: ServiceOptions,
    reconcilers: Sequence[type[ResourceReconciler[Any]]],
    active: Sequence[type[ResourceReconciler[Any]]],
) -> None:
    settings = options.service_settings
    if options.events_bus == "nats":
        bus = (f"NATS bus, JetStream stream {options.nats_stream} on NATS at "
               f"{options.nats_url}")
    elif options.events_bus == "kafka":
        bus = f"Kafka bus, topic {options.kafka_topic_name} at {options.kafka_bootstrap}"
    else:
        bus = "memory bus"
    if settings.events or active or options.events_bus in ("nats", "kafka"):
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
