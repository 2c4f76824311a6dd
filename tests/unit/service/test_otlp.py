"""The request span's own OTLP encoding (`fabrica.service._otlp`): the bytes it writes by
hand decode to what the SDK's encoder makes of the same span, and the span behaves as the
SDK's would for sampling, parents and errors."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from fabrica.service._otlp import encode_server_spans
from fabrica.service._tracing import Tracing

CALLER = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Kept(SpanExporter):
    """An exporter without an HTTP client: the pipeline hands it SDK spans."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


@pytest.fixture
def tracing():  # type: ignore[no-untyped-def]
    tracing = Tracing(service_name="racks", instance="i-1", endpoint="http://127.0.0.1:9",
                      sample_ratio=1.0)
    yield tracing
    tracing.pipeline._queue.clear()
    tracing.pipeline.exporter = Kept()
    tracing.shutdown()


def _decoded(data: bytes) -> list[Any]:
    request = ExportTraceServiceRequest.FromString(data)
    found = []
    for resource_spans in request.resource_spans:
        resource = sorted((a.key, str(a.value)) for a in resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = sorted((a.key, str(a.value)) for a in span.attributes)
                span.ClearField("attributes")
                events = [(e.name, e.time_unix_nano,
                           sorted((a.key, str(a.value)) for a in e.attributes))
                          for e in span.events]
                span.ClearField("events")
                found.append((resource, scope_spans.scope.name, scope_spans.scope.version,
                              span.SerializeToString(deterministic=True), attributes, events))
    return found


@pytest.mark.parametrize("traceparent", [None, CALLER])
def test_hand_encoding_decodes_as_the_sdk_encoding(tracing: Tracing,
                                                   traceparent: bytes | None) -> None:
    plain = tracing.server_span("GET", "/racks/rack-1", traceparent, b"vendor=x")
    plain.route, plain.status = "/racks/{id}", 200  # named by them: "GET /racks/{id}"
    plain.end()
    busy = tracing.server_span("POST", "/racks/ñ", traceparent, None)
    busy.set_attributes({"a.str": "ü", "a.int": -3, "a.float": 0.5, "a.bool": True,
                         "a.list": ["x", "y"], "a.ints": (1, 2)})
    busy.add_event("checked", {"n": 2}, timestamp=busy.start + 5)
    busy.record_exception(ValueError("bad rack"))
    busy.set_status(Status(StatusCode.ERROR, "boom"))
    busy.status = 500
    busy.end()
    spans = [plain, busy]
    ours = encode_server_spans(tracing.pipeline._head, spans)
    sdk = encode_spans([tracing.pipeline._readable(s) for s in spans]).SerializeToString()
    assert _decoded(ours) == _decoded(sdk)
    assert len(_decoded(ours)) == 2


def test_a_caller_s_context_is_continued_and_its_choice_followed() -> None:
    tracing = Tracing(service_name="racks", instance="i-1", endpoint="http://127.0.0.1:9",
                      sample_ratio=0.0)
    try:
        fresh = tracing.server_span("GET", "/racks", None, None)
        assert not fresh.get_span_context().trace_flags.sampled
        assert not fresh.is_recording()
        followed = tracing.server_span("GET", "/racks", CALLER, b"vendor=x")
        context = followed.get_span_context()
        assert context.trace_flags.sampled and followed.is_recording()
        assert format(context.trace_id, "032x") == CALLER[3:35].decode()
        assert followed.parent is not None and followed.parent.is_remote
        assert context.trace_state.to_header() == "vendor=x"
        refused = tracing.server_span("GET", "/racks", CALLER[:-2] + b"00", None)
        assert not refused.get_span_context().trace_flags.sampled
        garbage = tracing.server_span("GET", "/racks", b"00-zz", None)
        assert garbage.parent is None
    finally:
        tracing.pipeline._queue.clear()
        tracing.pipeline.exporter = Kept()
        tracing.shutdown()


def test_children_of_the_request_span_are_sdk_spans_in_its_trace(tracing: Tracing) -> None:
    kept = Kept()
    tracing.pipeline.exporter, tracing.pipeline._send = kept, None
    span = tracing.server_span("GET", "/racks", None, None)
    with trace.use_span(span, end_on_exit=True):
        with tracing.tracer.start_as_current_span("storage get"):
            pass
    tracing.pipeline.force_flush()
    child, parent = kept.spans  # ended in this order
    assert child.name == "storage get" and parent.name == "GET"
    assert child.parent.span_id == parent.context.span_id
    assert child.context.trace_id == parent.context.trace_id


async def test_an_unhandled_error_ends_the_request_span_as_an_error(tracing: Tracing) -> None:
    import httpx
    from prometheus_client import CollectorRegistry, generate_latest
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from fabrica.server.http._observe import FabricaApp
    from fabrica.server.http._tracing import TracedHTTPMetrics, TracedServerErrors

    async def broken(request: Request) -> JSONResponse:
        raise RuntimeError("boom")

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"reason": "InternalError"}, status_code=500)

    kept = Kept()
    tracing.pipeline.exporter, tracing.pipeline._send = kept, None
    registry = CollectorRegistry()
    app = FabricaApp(routes=[Route("/racks/{id}", broken)],
                     exception_handlers={Exception: unexpected})
    app.request_metrics = TracedHTTPMetrics(broken, registry=registry,  # type: ignore[arg-type]
                                            tracing=tracing)
    app.metered_errors = TracedServerErrors
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/racks/r1", headers={"traceparent": CALLER.decode()})
    assert (answer.status_code, answer.json()) == (500, {"reason": "InternalError"})
    assert isinstance(app.middleware_stack, TracedServerErrors)
    tracing.pipeline.force_flush()
    (span,) = kept.spans
    assert span.name == "GET /racks/{id}" and span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 500
    assert [e.name for e in span.events] == ["exception"]
    assert format(span.context.trace_id, "032x") == CALLER[3:35].decode()
    assert 'fabrica_http_requests_total{code="500",kind="",verb="get"} 1.0' in \
        generate_latest(registry).decode()
