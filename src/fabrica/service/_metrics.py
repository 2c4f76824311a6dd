"""The service's parts in ``/metrics``, each read from its part when Prometheus scrapes:
the process (instance, role, version), the garbage collector, the watches, and what the
event bus lost or holds back (SPEC section 6: "dropped or delayed events").

Reading the bus when scraped makes publishing cost nothing more: per handler subscription
(the reconcile controller's among them) the events it will never see (``dropped``: its
queue stayed full past the publish timeout, or the NATS client's buffer overflowed), the
events its handler raised on, and the events queued for it right now (late,
not lost); and the events the store could not hand to the bus at all (without an outbox:
the file backend with NATS down). ``GET /events`` streams count their own losses
(`fabrica_events_dropped_total`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .._version import __version__
from ..events import EventBus
from ..store import GarbageCollector, WatchCache

__all__ = ["register_bus_metrics", "register_gc_metrics", "register_process_info",
           "register_watch_metrics"]


class _BusCollector(Collector):
    def __init__(self, bus: EventBus, publish_failures: Callable[[], int]) -> None:
        self.bus = bus
        self.publish_failures = publish_failures

    def collect(self) -> Iterator[Metric]:
        dropped = CounterMetricFamily(
            "fabrica_events_handler_dropped", "Events a handler subscription will never see",
            labels=["subscriber"])
        failed = CounterMetricFamily(
            "fabrica_events_handler_failed", "Events whose handler raised",
            labels=["subscriber"])
        pending = GaugeMetricFamily(
            "fabrica_events_handler_pending", "Events queued for a handler, not handled yet",
            labels=["subscriber"])
        for stats in self.bus.stats():
            if stats.mode != "handler":
                continue  # /events streams come and go: fabrica_events_dropped_total
            dropped.add_metric([stats.name], stats.dropped)
            failed.add_metric([stats.name], stats.failed)
            pending.add_metric([stats.name], stats.pending)
        yield from (dropped, failed, pending)
        yield CounterMetricFamily(
            "fabrica_events_publish_failures",
            "Committed writes whose events could not be published (no outbox to keep them)",
            value=self.publish_failures())


def register_bus_metrics(registry: CollectorRegistry, bus: EventBus,
                         publish_failures: Callable[[], int]) -> None:
    registry.register(_BusCollector(bus, publish_failures))


class _GCCollector(Collector):
    def __init__(self, collector: GarbageCollector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        deleted = CounterMetricFamily(
            "fabrica_gc_deleted", "Dependents the garbage collector deleted: owner_deleted (a "
            "cascade), owner_gone_at_write (an owner deleted while its dependent was written), "
            "orphan_at_start (the start-up sweep, after a crash)", labels=["reason"])
        for reason, count in self.collector.counts.items():
            deleted.add_metric([reason], count)
        yield deleted


def register_gc_metrics(registry: CollectorRegistry, collector: GarbageCollector) -> None:
    """``fabrica_gc_deleted_total{reason}``, read from the collector when scraped."""
    registry.register(_GCCollector(collector))


class _WatchCollector(Collector):
    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        memory = self.cache.memory
        yield GaugeMetricFamily("fabrica_watches", "Watches open", value=self.cache.watchers)
        yield GaugeMetricFamily(
            "fabrica_watch_memory_bytes", "Bytes the watches hold for clients that have not "
            "read them yet (bounded by --watch-memory)", value=memory.used)
        yield CounterMetricFamily(
            "fabrica_watch_memory_ended", "Watches ended with ERROR 410 because the watches "
            "held more than --watch-memory", value=memory.ended)


def register_watch_metrics(registry: CollectorRegistry, cache: WatchCache) -> None:
    """``fabrica_watches``, ``fabrica_watch_memory_bytes`` and
    ``fabrica_watch_memory_ended_total``, read from the watch cache when scraped."""
    registry.register(_WatchCollector(cache))


def register_process_info(registry: CollectorRegistry, instance: str, role: str) -> None:
    info = Gauge("fabrica_process_info", "This server process: its instance name and role",
                 ["instance", "role", "version"], registry=registry)
    info.labels(instance, role, __version__).set(1)
