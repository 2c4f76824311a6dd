"""`.fabrica.yaml`: a project's settings on disk, read into a `ServiceSettings` and back.

The layout follows Go Fabrica's (`project:` and `features:`), so readers of either project's
docs recognize it. Keys this release does not know are ignored on reading, so a file that a
newer fabrica wrote still loads; a known key with a wrong value is a clear error.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any, Final

import yaml

from .._settings import ServiceSettings
from ._errors import CodegenError
from ._names import check_module_name, check_project_name

__all__ = [
    "CONFIG_FILE",
    "ProjectConfig",
    "config_from_yaml",
    "config_to_yaml",
    "load_config",
    "save_config",
    "validate_settings",
]

CONFIG_FILE: Final = ".fabrica.yaml"
#: The event buses a project may choose (``features.events.bus_type``).
_EVENT_BUSES: Final = ("memory", "nats", "kafka")

_HEADER = (
    "# fabrica project settings, written by `fabrica init`.\n"
    "# `fabrica generate` reads them into the generated code: edit, then run it again.\n"
)
_DEFAULTS = ServiceSettings(project="", package="")
_MISSING: Final = object()


@dataclasses.dataclass(frozen=True)
class ProjectConfig:
    """Everything `.fabrica.yaml` holds: the service settings and the day the project began."""

    settings: ServiceSettings
    created: datetime.date | None = None


def load_config(root: Path) -> ProjectConfig:
    path = root / CONFIG_FILE
    if not path.is_file():
        raise CodegenError(f"no {CONFIG_FILE} here: run fabrica init first")
    return config_from_yaml(path.read_text(encoding="utf-8"))


def save_config(root: Path, config: ProjectConfig) -> Path:
    path = root / CONFIG_FILE
    path.write_bytes(config_to_yaml(config).encode("utf-8"))
    return path


def config_to_yaml(config: ProjectConfig) -> str:
    s = config.settings
    project: dict[str, Any] = {"name": s.project, "module": s.package, "description": s.description}
    if config.created:
        project["created"] = config.created
    features = {
        "validation": {"enabled": s.validation_mode != "disabled", "mode": s.validation_mode},
        "events": _events_yaml(s),
        "reconciliation": {
            "enabled": s.reconcile,
            "worker_count": s.reconcile_workers,
            "requeue_delay": s.reconcile_requeue_minutes,
        },
        "storage": {"enabled": True, "type": s.storage_type, "db_driver": s.db_driver},
        "auth": {"enabled": s.auth},
    }
    body: str = yaml.safe_dump(
        {"project": project, "features": features}, sort_keys=False, allow_unicode=True
    )
    return _HEADER + body


def _events_yaml(s: ServiceSettings) -> dict[str, Any]:
    events: dict[str, Any] = {"enabled": s.events, "bus_type": s.events_bus,
                              "nats_url": s.nats_url}
    if s.event_prefix != _DEFAULTS.event_prefix:
        events["prefix"] = s.event_prefix
    events.update(_kafka_yaml(s))
    return events


def _kafka_yaml(s: ServiceSettings) -> dict[str, Any]:
    """The Kafka keys, written when Kafka is the bus or one of them was chosen (older
    projects' files stay as they were)."""
    kafka: dict[str, Any] = {}
    if s.events_bus == "kafka" or s.kafka_bootstrap != _DEFAULTS.kafka_bootstrap:
        kafka["kafka_bootstrap"] = s.kafka_bootstrap
    if s.kafka_topic:
        kafka["kafka_topic"] = s.kafka_topic
    if s.events_bus == "kafka" or s.kafka_partitions != _DEFAULTS.kafka_partitions:
        kafka["kafka_partitions"] = s.kafka_partitions
    return kafka


def config_from_yaml(text: str) -> ProjectConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CodegenError(f"{CONFIG_FILE} is not valid YAML: {exc}") from None
    r = _Reader(data if data is not None else {})
    fields: dict[str, Any] = {
        "project": r.string("project.name", ""),
        "package": r.string("project.module", ""),
        "description": r.string("project.description", ""),
        "storage_type": r.choice("features.storage.type", ("file", "sql", "ent"), "file"),
        "db_driver": r.choice(
            "features.storage.db_driver", ("sqlite", "postgres", "mysql"), "sqlite"
        ),
        "events": r.boolean("features.events.enabled", False),
        "events_bus": r.choice("features.events.bus_type", _EVENT_BUSES, "memory"),
        "nats_url": r.string("features.events.nats_url", _DEFAULTS.nats_url),
        "kafka_bootstrap": r.string("features.events.kafka_bootstrap",
                                    _DEFAULTS.kafka_bootstrap),
        "kafka_topic": r.string("features.events.kafka_topic", ""),
        "kafka_partitions": r.integer("features.events.kafka_partitions",
                                      _DEFAULTS.kafka_partitions),
        "event_prefix": r.string("features.events.prefix", _DEFAULTS.event_prefix),
        "reconcile": r.boolean("features.reconciliation.enabled", False),
        "reconcile_workers": r.integer(
            "features.reconciliation.worker_count", _DEFAULTS.reconcile_workers
        ),
        "reconcile_requeue_minutes": r.number(
            "features.reconciliation.requeue_delay", _DEFAULTS.reconcile_requeue_minutes
        ),
        "auth": r.boolean("features.auth.enabled", False),
        "validation_mode": r.choice(
            "features.validation.mode", ("strict", "warn", "disabled"), "strict"
        ),
    }
    if fields["storage_type"] == "ent":  # Go Fabrica's name for SQL storage
        fields["storage_type"] = "sql"
    if not r.boolean("features.validation.enabled", True):
        fields["validation_mode"] = "disabled"
    settings = ServiceSettings(**fields)
    validate_settings(settings)
    return ProjectConfig(settings=settings, created=r.date("project.created"))


def validate_settings(settings: ServiceSettings) -> None:
    """The checks that need more than one setting, shared by `init` and by loading."""
    if not settings.project:
        raise CodegenError(f"{CONFIG_FILE}: project.name is missing")
    if not settings.package:
        raise CodegenError(f"{CONFIG_FILE}: project.module is missing")
    check_project_name(settings.project)
    check_module_name(settings.package)
    if settings.reconcile and not settings.events:
        raise CodegenError(
            "reconciliation needs events: reconcilers run on resource events",
            "turn events on too (fabrica init --events --reconcile)",
        )
    if settings.storage_type == "file" and settings.db_driver != "sqlite":
        raise CodegenError(
            f"database {settings.db_driver!r} needs SQL storage, not file storage",
            "use storage type sql (fabrica init --storage-type sql)",
        )
    prefix = settings.event_prefix.split(".")
    if "" in prefix or any(c in settings.event_prefix for c in " \t\r\n*>"):
        raise CodegenError(
            f"{CONFIG_FILE}: features.events.prefix {settings.event_prefix!r} is not a valid "
            "event type prefix", "use dot-separated words, e.g. io.fabrica or acme.dcim")
    if settings.kafka_partitions < 1:
        raise CodegenError(f"{CONFIG_FILE}: features.events.kafka_partitions must be at least 1")
    if settings.reconcile_workers < 1:
        raise CodegenError("reconciliation needs at least one worker")
    if settings.reconcile_requeue_minutes <= 0:
        raise CodegenError("the reconciliation requeue delay must be more than 0 minutes")


class _Reader:
    """Typed look-ups of dotted keys, with errors that name the key."""

    def __init__(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise CodegenError(f"{CONFIG_FILE} must be a mapping (project:, features:)")
        self._data = data

    def _get(self, key: str) -> Any:
        node: Any = self._data
        for part in key.split("."):
            if not isinstance(node, dict):
                raise CodegenError(f"{CONFIG_FILE}: {key.rsplit('.', 1)[0]} must be a mapping")
            node = node.get(part, _MISSING)
            if node is _MISSING or node is None:
                return _MISSING
        return node

    def _bad(self, key: str, wanted: str, value: Any) -> CodegenError:
        return CodegenError(f"{CONFIG_FILE}: {key} must be {wanted}, not {value!r}")

    def string(self, key: str, default: str) -> str:
        value = self._get(key)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self._bad(key, "a string", value)
        return str(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise self._bad(key, "true or false", value)
        return value

    def integer(self, key: str, default: int) -> int:
        value = self._get(key)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "a whole number", value)
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._bad(key, "a number", value)
        return int(value) if float(value).is_integer() else float(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(key, default)
        if value not in choices:
            raise self._bad(key, " or ".join(choices), value)
        return value

    def date(self, key: str) -> datetime.date | None:
        value = self._get(key)
        if isinstance(value, datetime.datetime):
            return value.date()
        if isinstance(value, datetime.date):
            return value
        try:
            return datetime.date.fromisoformat(str(value)[:10])
        except ValueError:
            return None
