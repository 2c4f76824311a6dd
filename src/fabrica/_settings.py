"""`ServiceSettings`: a project's `.fabrica.yaml` choices, baked into its generated code.

The generated server and client read these as defaults; command-line options and
``PKGUPPER_OPTION`` environment variables override them at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ServiceSettings"]


@dataclass(frozen=True)
class ServiceSettings:
    project: str
    package: str
    description: str = ""
    storage_type: Literal["file", "sql"] = "file"
    db_driver: Literal["sqlite", "postgres", "mysql"] = "sqlite"
    events: bool = False
    events_bus: Literal["memory", "nats", "kafka"] = "memory"
    nats_url: str = "nats://127.0.0.1:4222"
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_topic: str = ""  # empty: PREFIX.PROJECT (SPEC section 12)
    kafka_partitions: int = 6
    event_prefix: str = "io.fabrica"
    event_source: str = ""  # empty: the project name
    reconcile: bool = False
    reconcile_workers: int = 5
    reconcile_requeue_minutes: float = 5
    auth: bool = False
    validation_mode: Literal["strict", "warn", "disabled"] = "strict"

    @property
    def source(self) -> str:
        """The CloudEvents ``source`` stem: ``SOURCE/resources/KIND/UID``."""
        return self.event_source or self.project

    @property
    def topic(self) -> str:
        """The Kafka topic: `kafka_topic`, else ``PREFIX.PROJECT``
        (``io.fabrica.rack-inventory``)."""
        return self.kafka_topic or f"{self.event_prefix}.{self.project}"

    @property
    def env_prefix(self) -> str:
        """`rack_inventory` → `RACK_INVENTORY`, the prefix of every environment variable."""
        return self.package.upper()
