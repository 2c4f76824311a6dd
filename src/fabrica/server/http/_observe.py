"""``GET /metrics`` (Prometheus text format) and the HTTP request metrics in it (SPEC
section 13; the service's own parts register theirs: `fabrica.service`).

Every label set is bounded: `kind` is a served kind or ``""`` (the service's own paths, and
any path no route matched, all one value), `verb` one of a fixed few (Kubernetes' verbs for
a kind's routes, the lower-case method otherwise, ``other`` for any other method), `code`
an HTTP status. Long-running requests (watches, ``/events``) are not in flight: they would
hold the gauge up for hours.
"""

from __future__ import annotations

import functools
import inspect
import time
from bisect import bisect_left
from collections.abc import Awaitable, Iterable
from time import perf_counter
from typing import Any, cast
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...resource import ResourceInfo
from ._table import kind_operations

__all__ = ["FabricaApp", "HTTPMetrics", "MeteredServerErrors", "RequestLabels",
           "metrics_endpoint"]

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
        # The route is set by Starlette's router on the shared scope.
        found = self.of(getattr(scope.get("route"), "path", None), scope["method"])
        if found[1] == "list" and _watching(scope.get("query_string", b"")):
            return found[0], "watch"
        return found

    def of(self, path: str | None, method: str) -> tuple[str, str]:
        """(kind, verb) of a request the route of template `path` answered (None: none
        matched)."""
        found = self._ops.get((path, "GET" if method == "HEAD" else method)) if path else None
        return ("", _METHODS.get(method, "other")) if found is None else found

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
_SLOTS = range(len(_BUCKETS) + 1)


class HTTPMetrics:
    """ASGI middleware counting requests (``fabrica_http_requests_total{kind,verb,code}``),
    timing them (``fabrica_http_request_duration_seconds{kind,verb}``) and counting those
    in flight (``fabrica_http_requests_in_flight``).

    Why not prometheus_client's labelled `Counter` and `Histogram`: they take a lock and
    check their labels at every update, and the labels themselves take a few look-ups; all
    that cost a cached get 8-13% of its throughput. A request appends its route, method,
    status and duration to a list; every `_PENDING` requests those are added to plain
    series, one per route template (a bounded set), method and status, and a scrape turns
    those into the labelled series (`_RequestCollector`).
    Only the event loop's thread updates them."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry,
                 kinds: Iterable[ResourceInfo] = ()) -> None:
        self.app = app
        self.labels = RequestLabels(kinds)
        #: (route template, method, status) -> a series: [requests, seconds, per bucket (the last
        #: +Inf) ..., first seen]; `_WATCH` as the method: a watch of the route's list.
        self.series: dict[tuple[str | None, str, int], list[float]] = {}
        #: The requests not yet added to a series: (route, method, status, seconds).
        self.pending: list[tuple[object, str, int, float]] = []
        registry.register(_RequestCollector(self))
        self.in_flight = Gauge("fabrica_http_requests_in_flight",
                               "HTTP requests being answered (watches and /events aside)",
                               registry=registry)
        self._active = 0
        self.in_flight.set_function(lambda: self._active)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Before the router ran the route is unknown: a watch is known by its query.
        if (scope["type"] != "http" or scope["path"] == "/events"
                or b"watch" in scope.get("query_string", b"")):
            await self._other(scope, receive, send)
            return
        status = 500

        def send_status(message: Message) -> Awaitable[None]:
            # Not a coroutine of its own: the caller awaits `send`'s.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        self._active += 1
        started = perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = perf_counter() - started
            self._active -= 1
            pending = self.pending
            pending.append((scope.get("route"), scope["method"], status, seconds))
            if len(pending) >= _PENDING:
                self._fold()

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Not HTTP, or HTTP that may be a watch or ``/events`` (counted and timed as any,
        not in flight): `__call__`'s work, the general way."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streaming = scope["path"] == "/events" or _watching(scope.get("query_string", b""))
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        if not streaming:
            self._active += 1
        started = perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = perf_counter() - started
            if not streaming:
                self._active -= 1
            method = _WATCH if self.labels(scope)[1] == "watch" else scope["method"]
            self._add(getattr(scope.get("route"), "path", None), method, status, seconds)

    def _fold(self) -> None:
        """The pending requests into their series (on the event loop's thread only)."""
        pending, self.pending = self.pending, []
        for route, method, status, seconds in pending:
            self._add(getattr(route, "path", None), method, status, seconds)

    def _add(self, path: str | None, method: str, status: int, seconds: float) -> None:
        series = self.series.get((path, method, status))
        if series is None:
            series = self._series(path, method, status)
        series[0] += 1
        series[1] += seconds
        series[2 + bisect_left(_BUCKETS, seconds)] += 1  # "le": a bound is its own bucket's

    def _series(self, path: str | None, method: str, status: int) -> list[float]:
        """The series of a new (route template, method, status); an unknown method is kept as one,
        whatever its name, so that the keys stay a bounded set."""
        if method not in _METHODS and method != _WATCH:
            method = _OTHER
        key = (path, method, status)
        found = self.series.get(key)
        if found is None:
            found = self.series[key] = [0, 0.0, *([0] * (len(_BUCKETS) + 1)), time.time()]
        return found


class MeteredServerErrors(ServerErrorMiddleware):
    """Starlette's outermost layer (a 500 for an exception nothing else answered) and
    `HTTPMetrics`' work on the commonest requests, in one (`FabricaApp` builds it).

    Why not `HTTPMetrics` as a middleware of its own: every layer costs each request its
    coroutine and its wrapper of ``send``, about 5% of a cached get, as much as the metrics
    themselves; this layer wraps ``send`` anyway. The error answer is Starlette's own
    (`ServerErrorMiddleware`'s handler, debug page or plain 500); a request that may stream
    (a watch, ``/events``) and anything not HTTP go through `metrics` as a layer of its
    own around a plain `ServerErrorMiddleware`."""

    def __init__(self, app: ASGIApp, metrics: HTTPMetrics, handler: Any = None,
                 debug: bool = False) -> None:
        super().__init__(app, handler=handler, debug=debug)
        metrics.app = ServerErrorMiddleware(app, handler=handler, debug=debug)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] == "/events"
                or b"watch" in scope.get("query_string", b"")):
            await self.metrics(scope, receive, send)
            return
        status = 0

        def send_status(message: Message) -> Awaitable[None]:
            # Not a coroutine of its own: the caller awaits `send`'s.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        metrics = self.metrics
        metrics._active += 1
        started = perf_counter()
        try:
            await self.app(scope, receive, send_status)
        except Exception as exc:
            response = await self._answer(Request(scope), exc)
            if not status:  # as Starlette's: an answer unless one was started
                status = response.status_code
                await response(scope, receive, send)
            raise exc
        finally:
            seconds = perf_counter() - started
            metrics._active -= 1
            pending = metrics.pending
            pending.append((scope.get("route"), scope["method"], status or 500, seconds))
            if len(pending) >= _PENDING:
                metrics._fold()

    async def _answer(self, request: Request, exc: Exception) -> Response:
        """`ServerErrorMiddleware`'s answer to an exception."""
        if self.debug:
            return await run_in_threadpool(self.debug_response, request, exc)
        if self.handler is None:
            return self.error_response(request, exc)
        if _is_async(self.handler):
            return cast(Response, await self.handler(request, exc))  # type: ignore[arg-type,misc]
        return cast(Response, await run_in_threadpool(self.handler, request, exc))  # type: ignore[arg-type]


def _is_async(handler: Any) -> bool:
    """As Starlette tells an async handler (a coroutine function, or a partial of one, or
    an object whose ``__call__`` is one)."""
    while isinstance(handler, functools.partial):
        handler = handler.func
    call = type(handler).__call__ if not inspect.isroutine(handler) else None
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


class FabricaApp(Starlette):
    """A Starlette app whose outermost layer also counts requests, when `request_metrics`
    is set (before the first request): `MeteredServerErrors`."""

    request_metrics: HTTPMetrics | None = None
    #: The layer that does both (a tracing service's traces too).
    metered_errors: type[MeteredServerErrors] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.request_metrics is None or type(stack) is not ServerErrorMiddleware:
            return stack
        return (self.metered_errors or MeteredServerErrors)(
            stack.app, self.request_metrics, handler=stack.handler, debug=stack.debug)


#: Not HTTP methods (no method holds parentheses): the key of a watch, of any other method.
_WATCH, _OTHER = "(watch)", "(other)"
#: How many requests wait to be added to their series: a request only appends to a list
#: (in a service's whole request path, the look-up and the additions cost a cached get 3%
#: of its throughput, about as much as in a loop of many).
_PENDING = 256


class _RequestCollector(Collector):
    """`HTTPMetrics`' series, labelled, at a scrape."""

    def __init__(self, metrics: HTTPMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        counts: dict[tuple[str, str, str], list[float]] = {}
        durations: dict[tuple[str, str], list[float]] = {}
        # The pending requests too, as series of one, without folding them: a scrape may
        # come from another thread (a registry served by prometheus_client's server).
        now = time.time()
        everything = list(self.metrics.series.items()) + [
            ((getattr(route, "path", None), method, status),
             [1, seconds, *(int(i == bisect_left(_BUCKETS, seconds)) for i in _SLOTS), now])
            for route, method, status, seconds in list(self.metrics.pending)]
        for (path, method, status), series in everything:
            if method == _WATCH:
                kind, verb = self.metrics.labels.of(path, "GET")[0], "watch"
            else:
                kind, verb = self.metrics.labels.of(path, method)
            count = counts.setdefault((kind, verb, str(status)), [0, series[-1]])
            count[0] += series[0]
            count[1] = min(count[1], series[-1])
            summed = durations.setdefault((kind, verb), [0.0] * (len(series) - 2))
            for i, value in enumerate(series[1:-1]):
                summed[i] += value
        requests = CounterMetricFamily("fabrica_http_requests_total", "HTTP requests",
                                       labels=["kind", "verb", "code"])
        for code_labels, (requests_count, created) in counts.items():
            requests.add_metric(code_labels, requests_count, created=created)
        yield requests
        latency = HistogramMetricFamily("fabrica_http_request_duration_seconds",
                                        "HTTP latency", labels=["kind", "verb"])
        for labels, (seconds, *per_bucket) in durations.items():
            buckets: list[tuple[str, float]] = []
            for le, in_bucket in zip(_LE, per_bucket, strict=True):
                buckets.append((le, (buckets[-1][1] if buckets else 0) + in_bucket))
            latency.add_metric(labels, buckets, seconds)
        yield latency


def metrics_endpoint(registry: CollectorRegistry):  # type: ignore[no-untyped-def]
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
