"""`ServiceOptions`: every ``serve`` option in one typed, frozen value, checked in one place.

The command line reads its options (and their environment variables) into one
`ServiceOptions`; `create_app`'s keywords build one too. A value no service could run with is
refused when the options are made (`OptionError`, naming the option), before anything opens.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .._settings import ServiceSettings
from ..events import JetStream, NatsBus, compile_pattern
from ..storage import DEFAULT_CHANGE_HISTORY
from ..store import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_VERSION_WAIT,
    DEFAULT_WATCH_MEMORY,
    Encryption,
)

if TYPE_CHECKING:
    from ..events import KafkaBus

__all__ = ["DEFAULT_MAX_BODY_SIZE", "DEFAULT_STORAGE_TIMEOUT", "ROLES", "OptionError", "Role",
           "ServiceOptions", "default_instance"]

DEFAULT_MAX_BODY_SIZE = 1024 * 1024
DEFAULT_STORAGE_TIMEOUT = 10.0
Role = Literal["all", "api", "controller"]
ROLES: tuple[Role, ...] = ("all", "api", "controller")
EventsBus = Literal["memory", "nats", "kafka"]
LogFormat = Literal["text", "json"]
AuthMode = Literal["enforce", "shadow"]
#: The buses several processes share (SPEC sections 6 and 12).
SHARED_BUSES = ("nats", "kafka")


class OptionError(ValueError):
    """Options no service can run with. `option` names the one at fault (``--event-prefix``)
    when one alone is; None when it is a combination."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


def default_instance() -> str:
    """This process's name where none is given: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _default_settings() -> ServiceSettings:
    return ServiceSettings(project="fabrica", package="fabrica_service")


@dataclass(frozen=True, kw_only=True)
class ServiceOptions:
    """How to run a service (SPEC section 6 and the ``serve`` options).

    `settings`: the project's `.fabrica.yaml` choices. `role` (SPEC section 6): ``all``
    serves the API and runs the reconcilers; ``api`` runs no reconciler; ``controller`` runs
    them and serves only ``/health``, ``/ready`` and ``/metrics``. `instance` names this
    process in logs and metrics (default host-pid). A storage operation that takes longer
    than `storage_timeout` seconds answers 503 (None or 0: wait).

    Events: `events_bus` ``nats`` publishes to the JetStream stream `nats_stream` (default
    the package's upper-cased name) at `nats_url`, keeping events `nats_stream_max_age`
    seconds and `nats_stream_max_bytes` bytes (0: no limit); ``kafka`` (SPEC section 12)
    appends them to the topic `kafka_topic` (default the settings', else ``PREFIX.PROJECT``)
    at `kafka_bootstrap`, created with `kafka_partitions` partitions when missing (None:
    the settings' choices); ``memory`` keeps them in this
    process; None (the in-process default): the bus given to the `Service`, else a memory
    bus when events or reconcilers are on. `event_prefix` overrides the settings' PREFIX.

    Watches (SPEC section 8) and cached reads: gets and lists are answered from a per-kind
    cache of at most `watch_cache_size` resources while it is current (a larger kind is
    read from storage); a watcher with more than `watch_queue_size` changes waiting ends
    with ERROR 410; other processes' writes are read from the storage's change log every
    `watch_poll_interval` seconds while a kind is watched or read; bookmarks go out every
    `watch_bookmark_interval` seconds; all watchers together hold at most `watch_memory`
    bytes for their clients (past it, the one holding most ends with ERROR 410); a watch
    from a resourceVersion the change log has not reached waits up to `watch_version_wait`
    seconds for it, then answers 504. The storage keeps `watch_history` changes per kind.

    The process: `host`, `port`, `workers` API processes, storage at `database_url` or in
    `data_dir`, `auto_migrate` (None: the backend's default), `log_level`, `access_log`.

    `encryption_key` (SPEC section 10): Fernet keys, comma-separated, that encrypt sensitive
    values at rest; the first encrypts, all decrypt (rotation). None: stored as written.

    Observability (SPEC section 13): spans go over OTLP/HTTP to `otlp_endpoint` (the base
    URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT``; None: that variable, or no tracing), a share
    `trace_sample_ratio` of new traces sampled (parent-based). `log_format` ``json``: one
    JSON object per log line. `auth_mode` ``shadow`` decides and counts every request but
    serves the ones ``enforce`` would refuse (403); a missing or bad token is 401 in both.
    """

    settings: ServiceSettings = field(default_factory=_default_settings)
    role: Role = "all"
    instance: str | None = None
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    storage_timeout: float | None = DEFAULT_STORAGE_TIMEOUT
    events_bus: EventsBus | None = None
    nats_url: str | None = None
    event_prefix: str | None = None
    nats_stream: str | None = None
    nats_stream_max_age: float = 7 * 86400.0
    nats_stream_max_bytes: int = 1 << 30
    kafka_bootstrap: str | None = None
    kafka_topic: str | None = None
    kafka_partitions: int | None = None
    watch_cache_size: int = DEFAULT_CACHE_SIZE
    watch_queue_size: int = DEFAULT_QUEUE_SIZE
    watch_poll_interval: float = 0.2
    watch_bookmark_interval: float = 30.0
    watch_memory: int = DEFAULT_WATCH_MEMORY
    watch_version_wait: float = DEFAULT_VERSION_WAIT
    watch_history: int = DEFAULT_CHANGE_HISTORY
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    data_dir: str = "./data"
    database_url: str | None = None
    auto_migrate: bool | None = None
    log_level: str = "info"
    access_log: bool = True
    encryption_key: str | None = field(default=None, repr=False)
    # Observability (SPEC section 13)
    otlp_endpoint: str | None = None
    trace_sample_ratio: float = 1.0
    log_format: LogFormat = "text"
    auth_mode: AuthMode = "enforce"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise OptionError(f"role must be one of {', '.join(ROLES)}, not {self.role!r}",
                              "--role")
        self._check_processes()
        if self.event_prefix is not None:
            _check_prefix(self.event_prefix)
        if self.events_bus == "nats":
            self.jetstream()
        self._check_kafka()
        self.encryption()
        self._check_observability()

    def encryption(self) -> Encryption | None:
        """The keys of `encryption_key`, or None without any."""
        try:
            return Encryption.from_option(self.encryption_key)
        except ValueError as exc:
            raise OptionError(str(exc), "--encryption-key") from None

    @property
    def service_settings(self) -> ServiceSettings:
        """`settings` with `event_prefix` applied."""
        if self.event_prefix is None or self.event_prefix == self.settings.event_prefix:
            return self.settings
        return dataclasses.replace(self.settings, event_prefix=self.event_prefix)

    @property
    def instance_name(self) -> str:
        return self.instance or default_instance()

    def replace(self, **changes: object) -> ServiceOptions:
        """These options with `changes` (checked again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def jetstream(self) -> JetStream:
        """The stream the NATS bus keeps the events in."""
        settings = self.service_settings
        try:
            return JetStream.for_prefix(self.nats_stream or settings.env_prefix,
                                        settings.event_prefix,
                                        max_age=self.nats_stream_max_age,
                                        max_bytes=self.nats_stream_max_bytes)
        except ValueError as exc:
            raise OptionError(str(exc), "--nats-stream") from None

    def nats_bus(self) -> NatsBus:
        """A NATS bus (``events_bus`` nats) named for this process."""
        return NatsBus(self.nats_url or self.settings.nats_url,
                       name=f"{self.settings.project} {self.instance_name}",
                       jetstream=self.jetstream())

    @property
    def kafka_topic_name(self) -> str:
        """The topic the Kafka bus uses: `kafka_topic`, else the settings' (SPEC section
        12: ``PREFIX.PROJECT`` with this process's PREFIX)."""
        return self.kafka_topic or self.service_settings.topic

    def kafka_bus(self) -> KafkaBus:
        """A Kafka bus (``events_bus`` kafka) named for this process (needs aiokafka)."""
        from ..events import KafkaBus

        settings = self.settings
        return KafkaBus(self.kafka_bootstrap or settings.kafka_bootstrap,
                        topic=self.kafka_topic_name,
                        partitions=self.kafka_partitions or settings.kafka_partitions,
                        client_id=f"{settings.project} {self.instance_name}")

    def _check_kafka(self) -> None:
        if self.kafka_partitions is not None and self.kafka_partitions < 1:
            raise OptionError("a Kafka topic needs at least one partition",
                              "--kafka-partitions")
        if self.kafka_bootstrap is not None and not self.kafka_bootstrap.strip(" ,"):
            raise OptionError("a Kafka bootstrap server is required", "--kafka-bootstrap")
        if self.events_bus != "kafka":
            return
        if importlib.util.find_spec("aiokafka") is None:
            raise OptionError("the Kafka event bus needs aiokafka: pip install "
                              "'pyfabrica[kafka]'", "--events-bus")
        if not _valid_topic(self.kafka_topic_name):
            raise OptionError(f"{self.kafka_topic_name!r} is not a Kafka topic name (at most "
                              "249 of the letters, digits, '.', '_' and '-')", "--kafka-topic")

    @property
    def tracing(self) -> bool:
        """Spans are exported: an endpoint is given here or in the standard variables, and
        ``OTEL_SDK_DISABLED`` does not turn the SDK off."""
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return False
        return bool(self.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                    or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))

    def _check_observability(self) -> None:
        if not 0.0 <= self.trace_sample_ratio <= 1.0:
            raise OptionError("the trace sample ratio is a number from 0 to 1",
                              "--trace-sample-ratio")
        if self.log_format not in ("text", "json"):
            raise OptionError("the log format is text or json", "--log-format")
        if self.auth_mode not in ("enforce", "shadow"):
            raise OptionError("the auth mode is enforce or shadow", "--auth-mode")
        if self.tracing and importlib.util.find_spec("opentelemetry.sdk") is None:
            raise OptionError("tracing needs OpenTelemetry: pip install opentelemetry-sdk "
                              "opentelemetry-exporter-otlp-proto-http", "--otlp-endpoint")

    def _check_processes(self) -> None:
        """Several processes need a bus they share: the memory bus stays in one process."""
        settings = self.settings
        if self.events_bus != "memory" or not (settings.events or settings.reconcile):
            return
        if self.workers > 1:
            raise OptionError(
                f"--workers {self.workers} needs --events-bus nats or kafka: with the memory "
                "bus each worker would see only its own events (reconcilers and /events would miss "
                "the others')")
        if self.role != "all":
            raise OptionError(
                f"--role {self.role} needs --events-bus nats or kafka: with the memory bus the "
                "API's events never reach a controller in another process")


def _valid_topic(name: str) -> bool:
    """Kafka's rule for topic names."""
    return (0 < len(name) <= 249 and name not in (".", "..")
            and all(c.isascii() and (c.isalnum() or c in "._-") for c in name))


def _check_prefix(prefix: str) -> None:
    try:
        NatsBus.subject(prefix)
        compile_pattern(f"{prefix}.**")
    except ValueError as exc:
        raise OptionError(str(exc), "--event-prefix") from None
