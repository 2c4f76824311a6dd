"""`TraceRequests`: one server span per HTTP request (SPEC section 13), mounted only when the
service traces.

The span is named by the route template Starlette matched (``GET /racks/{id}``), never by
the concrete path, and is the parent of everything the request does (storage, publishing,
its log lines' ``trace_id``). An incoming ``traceparent`` is honoured: the span continues the
caller's trace and follows its sampling decision. The probes (``/health``, ``/ready``,
``/metrics``) are not traced: a kubelet asks every few seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._observe import RequestLabels

if TYPE_CHECKING:
    from ...service._otlp import ServerSpan
    from ...service._tracing import Tracing

__all__ = ["TraceRequests"]

_UNTRACED = frozenset({"/health", "/ready", "/metrics"})


class TraceRequests:
    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.start = tracing.server_span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNTRACED:
            await self.app(scope, receive, send)
            return
        traceparent = tracestate = None
        for key, value in scope["headers"]:
            if key == b"traceparent":
                traceparent = value
            elif key == b"tracestate":
                tracestate = value
        method = scope["method"]
        span = self.start(method, scope["path"], traceparent, tracestate)
        token = otel_context.attach(trace.set_span_in_context(span))
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:  # as the SDK's `start_as_current_span` does
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            otel_context.detach(token)
            _finish(span, scope, method, status)


def _finish(span: ServerSpan, scope: Scope, method: str, status: int) -> None:
    route = RequestLabels.route(scope)
    if route is not None:
        span.name = f"{method} {route}"
        span.route = route
    span.status = status
    if status >= 500 and span.error is None:
        span.set_status(Status(StatusCode.ERROR))
    span.end()
