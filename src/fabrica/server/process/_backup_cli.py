"""``python -m PKG.server export`` and ``import`` (SPEC section 11).

Both open the storage as ``serve`` does (``--data-dir``, ``--database-url``) and run one
`fabrica.store` step: `export_resources`, or `read_export` + `check_target` +
`import_resources`. On a terminal they show a rich progress bar per kind on stderr; they
end with the count of each kind (on stderr for an export, whose data may be on stdout).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..._settings import ServiceSettings
from ...resource import ApiVersionTable, Resource, ServedVersion
from ...service import OptionError, ServiceOptions
from ...storage import BulkStorage, Storage, StorageSetupError, prepare_storage
from ...store import (
    BadExport,
    ChangePublisher,
    ImportMode,
    check_target,
    export_resources,
    import_resources,
    publishing,
    read_export,
)

__all__ = ["backup_commands"]

AnyResource = Resource[Any, Any]
StorageOpener = Callable[[str, str | None], Storage]


def backup_commands(kinds: Sequence[type[AnyResource]], settings: ServiceSettings,
                    versions: Sequence[type[ServedVersion[Any, Any]]],
                    open_storage: StorageOpener) -> list[click.Command]:
    """The ``export`` and ``import`` commands; `open_storage(data_dir, database_url)` opens
    the storage as ``serve`` would."""
    return [_export_command(kinds, settings, open_storage),
            _import_command(kinds, settings, versions, open_storage)]


def _storage_options(settings: ServiceSettings) -> Callable[[Any], Any]:
    env = settings.env_prefix

    def decorate(command: Any) -> Any:
        command = click.option("--database-url", default=None, envvar=f"{env}_DATABASE_URL",
                               help="SQL storage URL (sqlite:///..., postgresql://..., "
                                    "mysql://...).")(command)
        return click.option("--data-dir", default="./data", show_default=True,
                            envvar=f"{env}_DATA_DIR",
                            help="Where the file backend (or the default SQLite database) "
                                 "keeps its documents.")(command)
    return decorate


def _export_command(kinds: Sequence[type[AnyResource]], settings: ServiceSettings,
                    open_storage: StorageOpener) -> click.Command:
    @click.command("export", help="Write a consistent snapshot of every resource as NDJSON.")
    @click.option("--output", "-o", default="-", show_default=True, metavar="FILE|-",
                  help="Where to write the snapshot (-: standard output).")
    @click.option("--kinds", "kinds_option", default="", metavar="K,K",
                  help="Only these kinds (kind names, e.g. Device,Rack) [default: all].")
    @_storage_options(settings)
    def export(output: str, kinds_option: str, data_dir: str, database_url: str | None
               ) -> None:
        chosen = _chosen_kinds(kinds, kinds_option)
        storage = _bulk(open_storage(data_dir, database_url))
        console = Console(stderr=True)
        with _output(output) as out, _progress(console) as progress:
            counts = asyncio.run(_closing(storage, export_resources(
                storage, chosen, settings.project, out, progress)))
        _summary(console, "exported", counts)

    return export


def _import_command(kinds: Sequence[type[AnyResource]], settings: ServiceSettings,
                    versions: Sequence[type[ServedVersion[Any, Any]]],
                    open_storage: StorageOpener) -> click.Command:
    env = settings.env_prefix

    @click.command("import", help="Check an export file whole, then write it in batches.")
    @click.option("--input", "-i", "source", default="-", show_default=True,
                  metavar="FILE|-", help="The export file (-: standard input).")
    @click.option("--mode", type=click.Choice(["create", "upsert", "replace"]),
                  default="create", show_default=True,
                  help="create: refuse a uid or name that exists; upsert: overwrite it; "
                       "replace: also remove the resources of the file's kinds it does "
                       "not hold.")
    @click.option("--dry-run", is_flag=True, help="Check everything, write nothing.")
    @click.option("--publish-events", is_flag=True,
                  help="Publish a created event per imported resource (needs --events-bus "
                       "nats or kafka); by default none, and controllers pick imported "
                       "resources up on start.")
    @click.option("--batch-size", default=1000, type=click.IntRange(1), show_default=True,
                  help="Resources written per batch (one transaction on SQL).")
    @click.option("--events-bus", type=click.Choice(["memory", "nats", "kafka"]),
                  default=settings.events_bus, show_default=True, envvar=f"{env}_EVENTS_BUS")
    @click.option("--nats-url", default=settings.nats_url, show_default=True,
                  envvar=f"{env}_NATS_URL")
    @click.option("--nats-stream", default=settings.env_prefix, show_default=True,
                  envvar=f"{env}_NATS_STREAM")
    @click.option("--kafka-bootstrap", default=settings.kafka_bootstrap, show_default=True,
                  envvar=f"{env}_KAFKA_BOOTSTRAP")
    @click.option("--kafka-topic", default=settings.kafka_topic or None,
                  envvar=f"{env}_KAFKA_TOPIC")
    @click.option("--event-prefix", default=settings.event_prefix, show_default=True,
                  envvar=f"{env}_EVENT_PREFIX")
    @_storage_options(settings)
    def import_(source: str, mode: ImportMode, dry_run: bool, publish_events: bool,
                batch_size: int, data_dir: str, database_url: str | None,
                **bus: Any) -> None:
        console = Console(stderr=True)
        table = ApiVersionTable(kinds, versions)
        with _input(source) as lines:
            try:
                plan = read_export(lines, kinds, settings.project, table)
            except BadExport as exc:
                raise click.ClickException(f"{_name(source)}: {exc}; nothing was "
                                           "imported") from None
        publisher = _publisher(settings, bus) if publish_events and not dry_run else None
        storage = _bulk(open_storage(data_dir, database_url))

        async def run() -> dict[str, int]:
            try:
                remove = await check_target(storage, plan, mode)
            except BadExport as exc:
                raise click.ClickException(f"{_name(source)}: {exc}; nothing was "
                                           "imported") from None
            if dry_run:
                counts = {cls.resource_info.kind: len(items)
                          for cls, items in plan.items.items()}
                counts.update({f"{cls.resource_info.kind} removed": len(uids)
                               for cls, uids in remove.items() if uids})
                return counts
            written = None
            if publisher is not None:
                await publisher.bus.start()
                written = publishing(publisher, table)
            try:
                with _progress(console) as progress:
                    return await import_resources(storage, plan, mode, remove=remove,
                                                  batch_size=batch_size, progress=progress,
                                                  written=written)
            finally:
                if publisher is not None:
                    await publisher.bus.close()

        counts = asyncio.run(_closing(storage, run()))
        _summary(Console(), "would import" if dry_run else "imported", counts)

    return import_


def _chosen_kinds(kinds: Sequence[type[AnyResource]], option: str
                  ) -> list[type[AnyResource]]:
    if not option.strip():
        return list(kinds)
    by_name = {cls.resource_info.kind.lower(): cls for cls in kinds}
    by_name.update({cls.resource_info.plural: cls for cls in kinds})
    chosen = []
    for name in (n.strip() for n in option.split(",") if n.strip()):
        cls = by_name.get(name.lower())
        if cls is None:
            raise click.BadParameter(f"unknown kind {name!r} (this service has "
                                     f"{', '.join(c.resource_info.kind for c in kinds)})",
                                     param_hint="--kinds")
        if cls not in chosen:
            chosen.append(cls)
    return chosen


def _publisher(settings: ServiceSettings, bus: dict[str, Any]) -> ChangePublisher:
    if bus["events_bus"] not in ("nats", "kafka"):
        raise click.UsageError("--publish-events needs --events-bus nats or kafka: a memory "
                               "bus ends with this command")
    try:
        options = ServiceOptions(settings=settings, **bus)
    except OptionError as exc:
        raise click.UsageError(str(exc)) from None
    events = options.nats_bus() if options.events_bus == "nats" else options.kafka_bus()
    return ChangePublisher(events, prefix=options.event_prefix or settings.event_prefix,
                           source=settings.source)


def _bulk(storage: Storage) -> BulkStorage:
    if not isinstance(storage, BulkStorage):  # pragma: no cover (every backend is one)
        raise click.ClickException(f"the {storage.name} storage cannot export or import")
    return storage


async def _closing(storage: Storage, work: Any) -> Any:
    try:
        return await work
    finally:
        await storage.close()


def _name(source: str) -> str:
    return "standard input" if source == "-" else source


@contextlib.contextmanager
def _output(target: str) -> Iterator[IO[str]]:
    if target == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with open(target, "w", encoding="utf-8") as out:
        yield out


@contextlib.contextmanager
def _input(source: str) -> Iterator[IO[str]]:
    if source == "-":
        yield sys.stdin
        return
    try:
        file = open(source, encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise click.ClickException(f"{source}: {exc.strerror}") from None
    with file:
        yield file


@contextlib.contextmanager
def _progress(console: Console) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar per kind on a terminal; nothing elsewhere (logs, pipes)."""
    if not console.is_terminal:
        yield None
        return
    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        def update(kind: str, done: int, total: int) -> None:
            if kind not in tasks:
                tasks[kind] = bar.add_task(kind, total=total)
            if done == total or done % 500 == 0:  # refreshing per line costs more
                bar.update(tasks[kind], completed=done, total=total)
        yield update


def _summary(console: Console, verb: str, counts: dict[str, int]) -> None:
    total = sum(v for k, v in counts.items() if not k.endswith(" removed"))
    console.print(f"{verb} {total} resources", highlight=False)
    for kind, count in counts.items():
        console.print(f"  {kind}: {count}", highlight=False)


def storage_opener(settings: ServiceSettings, database_url_for: Callable[[str, str | None],
                   str | None], migrate_command: str) -> StorageOpener:
    """How the commands open storage: `database_url_for(data_dir, database_url)` says
    which SQL database, if any; an empty database gets its schema as at ``serve``."""
    def open_storage(data_dir: str, database_url: str | None) -> Storage:
        url = database_url_for(data_dir, database_url)
        try:
            return prepare_storage(data_dir, url, migrate_command=migrate_command)
        except StorageSetupError as exc:
            if exc.usage:
                raise click.UsageError(f"--database-url: {exc}") from None
            raise click.ClickException(str(exc)) from None
    return open_storage
