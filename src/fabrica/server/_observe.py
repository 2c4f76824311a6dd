"""``GET /metrics`` (Prometheus text format), the HTTP request metrics behind it, the
garbage collector's and the watches'."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..store import GarbageCollector, WatchCache

__all__ = ["HTTPMetrics", "metrics_endpoint", "register_gc_metrics", "register_watch_metrics"]


class HTTPMetrics:
    """ASGI middleware counting requests and timing them, labelled by route template (so
    ``/devices/{id}`` is one series, not one per device)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter("fabrica_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("fabrica_http_request_duration_seconds", "HTTP latency",
                                 ["method", "route"], registry=registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5, 1, 2.5, 5, 10))
        # The labelled series, looked up once each: `labels()` validates and hashes its
        # arguments under a lock on every call, a tenth of a cached get's own cost.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._record(scope["method"], _route_template(scope), status,
                         time.perf_counter() - started)

    def _record(self, method: str, route: str, status: int, seconds: float) -> None:
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self.requests.labels(method, route, str(status))
            self._counters[(method, route, status)] = counter
        counter.inc()
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[(method, route)] = self.latency.labels(method, route)
        timer.observe(seconds)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")  # set by Starlette's router on the shared scope when it matched
    return str(getattr(route, "path", "unmatched"))


def metrics_endpoint(registry: CollectorRegistry):  # type: ignore[no-untyped-def]
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics


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
