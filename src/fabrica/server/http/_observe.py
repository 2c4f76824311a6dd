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
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
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


class HTTPMetrics:
    """ASGI middleware counting requests (``fabrica_http_requests_total{kind,verb,code}``),
    timing them (``fabrica_http_request_duration_seconds{kind,verb}``) and counting those
    in flight (``fabrica_http_requests_in_flight``)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry,
                 kinds: Iterable[ResourceInfo] = ()) -> None:
        self.app = app
        self.labels = RequestLabels(kinds)
        self.requests = Counter("fabrica_http_requests_total", "HTTP requests",
                                ["kind", "verb", "code"], registry=registry)
        self.latency = Histogram("fabrica_http_request_duration_seconds", "HTTP latency",
                                 ["kind", "verb"], registry=registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5, 1, 2.5, 5, 10))
        self.in_flight = Gauge("fabrica_http_requests_in_flight",
                               "HTTP requests being answered (watches and /events aside)",
                               registry=registry)
        self._active = 0
        self.in_flight.set_function(lambda: self._active)
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
        # Before the router ran the route is unknown: a watch is known by its query.
        streaming = scope["path"] == "/events" or _watching(scope.get("query_string", b""))

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
        counter = self._counters.get((kind, verb, status))
        if counter is None:
            counter = self.requests.labels(kind, verb, str(status))
            self._counters[(kind, verb, status)] = counter
        counter.inc()
        timer = self._timers.get((kind, verb))
        if timer is None:
            timer = self._timers[(kind, verb)] = self.latency.labels(kind, verb)
        timer.observe(seconds)


def metrics_endpoint(registry: CollectorRegistry):  # type: ignore[no-untyped-def]
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
