"""`fabrica init NAME`: a new project, its `.fabrica.yaml`, and a first `generate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from .. import codegen
from .._settings import ServiceSettings
from ._output import console, report_files, report_pending, user_errors

__all__ = ["init"]

_DEFAULTS = ServiceSettings(project="", package="")


@click.command()
@click.argument("name")
@click.option("--module", metavar="PKG", help="Python package name [default: NAME, '-' → '_'].")
@click.option("--description", default="", help="One line about the service.")
@click.option(
    "--storage-type",
    type=click.Choice(["file", "sql", "ent"]),
    help="Storage backend; ent is an alias of sql.  [default: file]",
)
@click.option(
    "--db",
    "db_driver",
    type=click.Choice(["sqlite", "postgres", "mysql"]),
    default=_DEFAULTS.db_driver,
    show_default=True,
    help="SQL database; postgres and mysql imply --storage-type sql.",
)
@click.option("--events", is_flag=True, help="Publish a CloudEvent on every write.")
@click.option(
    "--events-bus",
    type=click.Choice(["memory", "nats", "kafka"]),
    default=_DEFAULTS.events_bus,
    show_default=True,
)
@click.option("--nats-url", default=_DEFAULTS.nats_url, show_default=True, metavar="URL")
@click.option("--kafka-bootstrap", default=_DEFAULTS.kafka_bootstrap, show_default=True,
              metavar="HOST:PORT[,HOST:PORT]", help="Kafka's bootstrap servers (bus kafka).")
@click.option("--kafka-topic", default="", metavar="NAME",
              help="The Kafka topic of the events (bus kafka)  [default: PREFIX.PROJECT].")
@click.option("--kafka-partitions", type=click.IntRange(min=1),
              default=_DEFAULTS.kafka_partitions, show_default=True, metavar="N",
              help="Partitions of the Kafka topic when it is created.")
@click.option("--reconcile", is_flag=True, help="Run reconcilers on events (needs --events).")
@click.option(
    "--reconcile-workers",
    type=click.IntRange(min=1),
    default=_DEFAULTS.reconcile_workers,
    show_default=True,
    metavar="N",
)
@click.option(
    "--reconcile-requeue",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULTS.reconcile_requeue_minutes,
    show_default=True,
    metavar="MINUTES",
)
@click.option("--auth", is_flag=True, help="Require authentication.")
@click.option(
    "--validation-mode",
    type=click.Choice(["strict", "warn", "disabled"]),
    default=_DEFAULTS.validation_mode,
    show_default=True,
)
def init(
    name: str,
    module: str | None,
    description: str,
    storage_type: str | None,
    db_driver: str,
    events: bool,
    events_bus: str,
    nats_url: str,
    kafka_bootstrap: str,
    kafka_topic: str,
    kafka_partitions: int,
    reconcile: bool,
    reconcile_workers: int,
    reconcile_requeue: float,
    auth: bool,
    validation_mode: str,
) -> None:
    """Create a new project in directory NAME ('.' for the current directory)."""
    if reconcile and not events:
        raise click.UsageError("--reconcile needs --events: reconcilers run on resource events")
    root = Path.cwd() if name == "." else Path(name)
    project = root.resolve().name
    fields: dict[str, Any] = {
        "description": description,
        "storage_type": _storage_type(storage_type, db_driver),
        "db_driver": db_driver,
        "events": events,
        "events_bus": events_bus,
        "nats_url": nats_url,
        "kafka_bootstrap": kafka_bootstrap,
        "kafka_topic": kafka_topic,
        "kafka_partitions": kafka_partitions,
        "reconcile": reconcile,
        "reconcile_workers": reconcile_workers,
        "reconcile_requeue_minutes": _whole(reconcile_requeue),
        "auth": auth,
        "validation_mode": validation_mode,
    }
    with user_errors():
        codegen.check_project_name(project)
        package = codegen.derive_module_name(module or project)
        settings = ServiceSettings(project=project, package=package, **fields)
        result = codegen.init_project(root, settings)
    _report(root, name, settings, result)


def _storage_type(storage_type: str | None, db_driver: str) -> str:
    if storage_type == "file" and db_driver != "sqlite":
        raise click.UsageError(f"--db {db_driver} needs --storage-type sql, not file")
    if storage_type in ("sql", "ent") or db_driver != "sqlite":
        return "sql"
    return "file"


def _whole(minutes: float) -> float:
    """5.0 → 5, so `.fabrica.yaml` and the generated settings read `5`."""
    return int(minutes) if float(minutes).is_integer() else minutes


def _report(
    root: Path, name: str, settings: ServiceSettings, result: codegen.GenerateResult
) -> None:
    out = console()
    where = "the current directory" if name == "." else escape(str(root))
    out.print(
        f"Created project [bold]{settings.project}[/] (package {settings.package}) in {where}"
    )
    report_files(result)
    report_pending(result)
    out.print("Next:")
    if name != ".":
        out.print(f"  cd {escape(str(root))}")
    out.print("  fabrica add resource Device")
    out.print("  fabrica generate")
    out.print(f"  python -m {settings.package}.server serve")
