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

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._observe import RequestLabels

if TYPE_CHECKING:
    from ...service._tracing import Tracing

__all__ = ["TraceRequests"]

_UNTRACED = frozenset({"/health", "/ready", "/metrics"})


class TraceRequests:
    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracer = tracing.tracer
        self.context_of = tracing.context_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNTRACED:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"traceparent", b"tracestate")}
        with self.tracer.start_as_current_span(
                method, context=self.context_of(headers), kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": scope["path"]}
        ) as span:
            status = 500

            async def send_wrapper(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                _finish(span, scope, method, status)


def _finish(span: trace.Span, scope: Scope, method: str, status: int) -> None:
    route = RequestLabels.route(scope)
    if route is not None:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
