"""``GET /metrics`` (Prometheus text format) and the HTTP request metrics in it (SPEC
section 13; the service's own parts register theirs: `fabrica.service`).

Every label set is bounded: `kind` is a served kind or ``""`` (the service's own paths, and
any path no route matched, all one value), `verb` one of a fixed few (Kubernetes' verbs for
a kind's routes, the lower-case method otherwise, ``other`` for any other method), `code`
an HTTP status. Long-running requests (watches, ``/events``) are not in flight: they would
hold the gauge up for hours.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...resource import ResourceInfo
from ._table import kind_operations

__all__ = ["HTTPMetrics", "RequestLabels", "metrics_endpoint"]

#: A kind's operations (`kind_operations` names) as Kubernetes' verbs.
_VERBS = {"list": "list", "create": "create", "get": "get", "replace": "update",
          "patch": "patch", "delete": "delete", "replace_status": "update",
          "patch_status": "patch", "list_versions": "list", "get_version": "get",
          "delete_version": "delete"}
_METHODS = {m: m.lower() for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
_METHODS["HEAD"] = "get"


class RequestLabels:
    """(kind, verb) of a request, from the route Starlette matched (set on the scope)."""

    def __init__(self, kinds: Iterable[ResourceInfo] = ()) -> None:
        self._ops: dict[tuple[str, str], tuple[str, str]] = {}
        for info in kinds:
            for op in kind_operations(info):
                self._ops[(op.path, op.method)] = (info.kind, _VERBS.get(op.name, "other"))

    def __call__(self, scope: Scope) -> tuple[str, str]:
        method = scope["method"]
        route = scope.get("route")  # set by Starlette's router on the shared scope
        path = getattr(route, "path", None)
        found = self._ops.get((path, "GET" if method == "HEAD" else method)) if path else None
        if found is None:
            return "", _METHODS.get(method, "other")
        if found[1] == "list" and _watching(scope.get("query_string", b"")):
            return found[0], "watch"
        return found

    @staticmethod
    def route(scope: Scope) -> str | None:
        """The matched route's template (``/racks/{id}``), None when none matched."""
        path = getattr(scope.get("route"), "path", None)
        return None if path is None else str(path)


def _watching(query: bytes) -> bool:
    if b"watch" not in query:
        return False
    values = [v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
              if k == "watch"]
    return any(v.lower() not in ("", "false", "0") for v in values)


_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: The ``le`` labels of the buckets, as prometheus_client writes them ("1.0", "+Inf").
_LE = tuple(floatToGoString(b) for b in (*_BUCKETS, float("inf")))  # type: ignore[no-untyped-call]


class HTTPMetrics:
    """ASGI middleware counting requests (``fabrica_http_requests_total{kind,verb,code}``),
    timing them (``fabrica_http_request_duration_seconds{kind,verb}``) and counting those
    in flight (``fabrica_http_requests_in_flight``).

    The counts are plain numbers the registry reads at a scrape (`_RequestCollector`), not
    prometheus_client metrics: a labelled `Counter` and `Histogram` take a lock and
    validate on every update, which cost a cached get 5-10% of its throughput; these are
    updated by the event loop's thread only."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry,
                 kinds: Iterable[ResourceInfo] = ()) -> None:
        self.app = app
        self.labels = RequestLabels(kinds)
        #: (kind, verb, code) -> [requests, first seen (epoch seconds)]
        self.counts: dict[tuple[str, str, int], list[float]] = {}
        #: (kind, verb) -> [sum of seconds, then the count per bucket (the last +Inf)]
        self.durations: dict[tuple[str, str], list[float]] = {}
        registry.register(_RequestCollector(self))
        self.in_flight = Gauge("fabrica_http_requests_in_flight",
                               "HTTP requests being answered (watches and /events aside)",
                               registry=registry)
        self._active = 0
        self.in_flight.set_function(lambda: self._active)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        # Before the router ran the route is unknown: a watch is known by its query.
        query = scope.get("query_string", b"")
        streaming = scope["path"] == "/events" or (b"watch" in query and _watching(query))

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        if not streaming:
            self._active += 1
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if not streaming:
                self._active -= 1
            kind, verb = self.labels(scope)
            self._record(kind, verb, status, time.perf_counter() - started)

    def _record(self, kind: str, verb: str, status: int, seconds: float) -> None:
        count = self.counts.get((kind, verb, status))
        if count is None:
            count = self.counts[(kind, verb, status)] = [0, time.time()]
        count[0] += 1
        series = self.durations.get((kind, verb))
        if series is None:
            series = self.durations[(kind, verb)] = [0.0] * (len(_BUCKETS) + 2)
        series[0] += seconds
        series[1 + bisect_left(_BUCKETS, seconds)] += 1  # "le": a bound is its own bucket's


class _RequestCollector(Collector):
    """`HTTPMetrics`' counts as the two labelled families, at a scrape."""

    def __init__(self, metrics: HTTPMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily("fabrica_http_requests_total", "HTTP requests",
                                       labels=["kind", "verb", "code"])
        for (kind, verb, code), (count, created) in list(self.metrics.counts.items()):
            requests.add_metric([kind, verb, str(code)], count, created=created)
        yield requests
        latency = HistogramMetricFamily("fabrica_http_request_duration_seconds",
                                        "HTTP latency", labels=["kind", "verb"])
        for (kind, verb), series in list(self.metrics.durations.items()):
            total, counts = series[0], series[1:]
            buckets: list[tuple[str, float]] = []
            for le, count in zip(_LE, counts, strict=True):
                buckets.append((le, (buckets[-1][1] if buckets else 0) + count))
            latency.add_metric([kind, verb], buckets, total)
        yield latency


def metrics_endpoint(registry: CollectorRegistry):  # type: ignore[no-untyped-def]
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
