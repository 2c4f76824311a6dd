"""What the event bus lost or holds back, in ``/metrics`` (SPEC section 6: "dropped or
delayed events").

Read from the bus when Prometheus scrapes, so publishing costs nothing more: per handler
subscription (the reconcile controller's among them) the events it will never see
(``dropped``: its queue stayed full past the publish timeout, or the NATS client's buffer
overflowed), the events its handler raised on, and the events queued for it right now (late,
not lost); and the events the store could not hand to the bus at all (without an outbox:
the file backend with NATS down). ``GET /events`` streams count their own losses
(`fabrica_events_dropped_total`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..events import EventBus

__all__ = ["register_bus_metrics"]


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
