"""`TracedHTTPMetrics`: the request metrics and one server span per HTTP request (SPEC
section 13), in place of `HTTPMetrics` when the service traces.

The span is named by the route template Starlette matched (``GET /racks/{id}``), never by
the concrete path, and is the parent of everything the request does (storage, hooks,
publishing, its log lines' ``trace_id``); auth runs inside it. An incoming ``traceparent``
is honoured: the span continues the caller's trace and follows its sampling decision. The
probes (``/health``, ``/ready``, ``/metrics``) are not traced: a kubelet asks every few
seconds.

Why one middleware for both: every request pays for a layer (its coroutine, its wrapper of
``send``, its clock reads), and a cached get is cheap enough for a second layer to show;
here the span's start and end times are the duration the metrics record. `FabricaApp`
folds even that into Starlette's outermost layer (`TracedServerErrors`); the middleware
remains the general way (watches, ``/events``, the probes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from time import time_ns
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...resource import ResourceInfo
from ._observe import _PENDING, HTTPMetrics, MeteredServerErrors

if TYPE_CHECKING:
    from ...service._otlp import ServerSpan
    from ...service._tracing import Tracing

__all__ = ["TracedHTTPMetrics", "TracedServerErrors"]

_UNTRACED = frozenset({"/health", "/ready", "/metrics"})


class TracedHTTPMetrics(HTTPMetrics):
    def __init__(self, app: ASGIApp, registry: CollectorRegistry, tracing: Tracing,
                 kinds: Iterable[ResourceInfo] = ()) -> None:
        super().__init__(app, registry, kinds)
        self.start = tracing.server_span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if (scope["type"] != "http" or path in _UNTRACED or path == "/events"
                or b"watch" in scope.get("query_string", b"")):
            await self._traced_other(scope, receive, send)
            return
        traceparent, tracestate = _trace_headers(scope)
        method = scope["method"]
        span = self.start(method, path, traceparent, tracestate)
        token = otel_context.attach(trace.set_span_in_context(span))
        status = 500

        def send_status(message: Message) -> Awaitable[None]:
            # Not a coroutine of its own: the caller awaits `send`'s.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        self._active += 1
        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            end = time_ns()
            otel_context.detach(token)
            self._active -= 1
            route = scope.get("route")
            pending = self.pending
            pending.append((route, method, status, (end - span.start) / 1e9))
            if len(pending) >= _PENDING:
                self._fold()
            _finish(span, getattr(route, "path", None), status, end)

    async def _traced_other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`HTTPMetrics`' general way (not HTTP, a watch, ``/events``) in a span, the
        probes aside."""
        if scope["type"] != "http" or scope["path"] in _UNTRACED:
            await self._other(scope, receive, send)
            return
        traceparent, tracestate = _trace_headers(scope)
        span = self.start(scope["method"], scope["path"], traceparent, tracestate)
        token = otel_context.attach(trace.set_span_in_context(span))
        status = 500

        def send_status(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self._other(scope, receive, send_status)
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            _finish(span, getattr(scope.get("route"), "path", None), status, None)


class TracedServerErrors(MeteredServerErrors):
    """`TracedHTTPMetrics`' work on the commonest requests folded into Starlette's
    outermost layer, as `MeteredServerErrors` folds the metrics (one layer fewer: about 5%
    of a cached get). The span covers the error answer too."""

    metrics: TracedHTTPMetrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.metrics(scope, receive, send)
            return
        path = scope["path"]
        if path in _UNTRACED or path == "/events" or b"watch" in scope.get("query_string", b""):
            await self.metrics(scope, receive, send)
            return
        traceparent, tracestate = _trace_headers(scope)
        metrics = self.metrics
        method = scope["method"]
        span = metrics.start(method, path, traceparent, tracestate)
        token = otel_context.attach(trace.set_span_in_context(span))
        status = 0

        def send_status(message: Message) -> Awaitable[None]:
            # Not a coroutine of its own: the caller awaits `send`'s.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        metrics._active += 1
        try:
            await self.app(scope, receive, send_status)
        except Exception as exc:
            _failed(span, exc)
            response = await self._answer(Request(scope), exc)
            if not status:  # as Starlette's: an answer unless one was started
                status = response.status_code
                await response(scope, receive, send)
            raise exc
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            end = time_ns()
            otel_context.detach(token)
            metrics._active -= 1
            route = scope.get("route")
            pending = metrics.pending
            pending.append((route, method, status or 500, (end - span.start) / 1e9))
            if len(pending) >= _PENDING:
                metrics._fold()
            _finish(span, getattr(route, "path", None), status or 500, end)


def _failed(span: ServerSpan, exc: BaseException) -> None:
    """As the SDK's `start_as_current_span` records an exception that ends its span."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _finish(span: ServerSpan, route: str | None, status: int, end: int | None) -> None:
    """The route (the span is named by it when exported), the status, the end."""
    span.route = route
    span.status = status
    if status >= 500 and span.error is None:
        span.error = ""
    span.end(end)


def _trace_headers(scope: Scope) -> tuple[bytes | None, bytes | None]:
    """The request's ``traceparent`` and ``tracestate`` headers (None when absent)."""
    traceparent = tracestate = None
    for key, value in scope["headers"]:
        if key == b"traceparent":
            traceparent = value
        elif key == b"tracestate":
            tracestate = value
    return traceparent, tracestate
