"""The span pipeline of a tracing service (SPEC section 13): a lean server span per HTTP
request, and one batching exporter for it and the SDK's spans.

Why not the SDK's span and `BatchSpanProcessor` for the request span: the SDK costs about
30 us CPU to make and end a span (locks, attribute cleaning, a `ReadableSpan` copy) and as
much again to turn it into protobuf objects in the exporter, three times what a cached GET
costs fabrica itself. `ServerSpan` is an OpenTelemetry API span (children, logging and
propagation see it as any other) that holds only what it exports; this module writes the
OTLP protobuf of a batch of them by hand (a few byte strings per span). The SDK's spans
(storage, publish, relay, reconcile: not per cached read) keep the SDK's encoder; the two
encodings are concatenated into one export request, as protobuf allows for a repeated field.

The batch goes out on a thread of its own, never on the request path: a bounded queue
(``OTEL_BSP_*`` as for the SDK's processor, spans beyond it dropped and counted), a batch
when it fills or every schedule delay, and what is left at shutdown. The batch and the
queue are by default four times the SDK's (2048 and 8192 spans).
"""

from __future__ import annotations

import collections
import logging
import os
import struct
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState

__all__ = ["ServerSpan", "SpanPipeline", "encode_server_spans"]

log = logging.getLogger("fabrica.service")

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


class ServerSpan(trace.Span):
    """The span of one HTTP request: its ids, times, method, path, route and status, and
    whatever else code inside the request sets on the current span (attributes, events,
    status). Not sampled: only a context for the request's children (all unsampled).

    Made with as little work as can be (every request makes one): what most requests
    never set are class defaults, the `SpanContext` is made when first asked for, the
    name (``METHOD ROUTE``) when exported."""

    name: str | None = None  # None: the method and the route (`display_name`)
    route: str | None = None
    status = 0
    end_time = 0
    attributes: dict[str, Any] | None = None
    events: list[tuple[int, str, Mapping[str, Any]]] | None = None
    error: str | None = None  # the ERROR status's description ("" for none)
    trace_state: TraceState | None = None
    parent: SpanContext | None = None
    _context: SpanContext | None = None

    def __init__(self, trace_id: int, span_id: int, method: str, path: str,
                 pipeline: SpanPipeline | None) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.method = method
        self.path = path
        self._pipeline = pipeline  # None when not sampled: nothing to export
        self.start = time_ns()

    @property
    def display_name(self) -> str:
        if self.name is not None:
            return self.name
        return self.method if self.route is None else f"{self.method} {self.route}"

    def get_span_context(self) -> SpanContext:
        context = self._context
        if context is None:
            context = self._context = SpanContext(
                self.trace_id, self.span_id, is_remote=False,
                trace_flags=_UNSAMPLED if self._pipeline is None else _SAMPLED,
                trace_state=self.trace_state or DEFAULT_TRACE_STATE)
        return context

    def is_recording(self) -> bool:
        return self._pipeline is not None and not self.end_time

    def end(self, end_time: int | None = None) -> None:
        if self.end_time:
            return
        self.end_time = end_time or time_ns()
        if self._pipeline is not None:
            self._pipeline.add(self)

    def update_name(self, name: str) -> None:
        self.name = name

    def set_attribute(self, key: str, value: Any) -> None:
        if self.is_recording():
            if self.attributes is None:
                self.attributes = {}
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None,
                  timestamp: int | None = None) -> None:
        if self.is_recording():
            if self.events is None:
                self.events = []
            self.events.append((timestamp or time_ns(), name, dict(attributes or {})))

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        code = status.status_code if isinstance(status, Status) else status
        if isinstance(status, Status):
            description = status.description
        if code is StatusCode.ERROR and self.is_recording():
            self.error = description or ""

    def record_exception(self, exception: BaseException,
                         attributes: Mapping[str, Any] | None = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        self.add_event("exception", {"exception.type": type(exception).__qualname__,
                                     "exception.message": str(exception),
                                     **(attributes or {})}, timestamp)


# -- the exporter ----------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


class SpanPipeline(SpanProcessor):
    """A span processor for the SDK's spans that also takes `ServerSpan` s, and exports
    both in batches from a thread of its own."""

    def __init__(self, exporter: SpanExporter, resource: Resource, scope: tuple[str, str]
                 ) -> None:
        self.exporter = exporter
        self.delay = _env_int("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1e3
        # Four times the SDK's defaults: each export request costs the process about 1 ms
        # CPU in the HTTP client whatever it holds, 2 us a span in batches of 512.
        self.batch = max(1, _env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 2048))
        self.limit = max(self.batch, _env_int("OTEL_BSP_MAX_QUEUE_SIZE", 8192))
        self.dropped = 0
        self._queue: collections.deque[ServerSpan | ReadableSpan] = collections.deque()
        self._head = _resource_head(resource, scope)
        # The exporter's own HTTP client sends the bytes (its endpoint, headers, TLS,
        # compression and retries); an exporter without one gets SDK spans (slower).
        send = getattr(getattr(exporter, "_client", None), "export", None)
        self._send: Callable[[bytes], bool] | None = (
            (lambda data: bool(getattr(send(data), "success", True))) if callable(send)
            else None)
        self._resource = resource
        self._scope = InstrumentationScope(*scope)
        self._stopped = False
        self._start()
        if hasattr(os, "register_at_fork"):  # a forked child has no thread: its own
            restart = weakref.WeakMethod(self._start)
            os.register_at_fork(after_in_child=lambda: (r := restart()) and r())

    def _start(self) -> None:
        self._queue.clear()  # the parent's spans are the parent's to export
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one export at a time (worker, flush, shutdown)
        self._worker = threading.Thread(target=self._work, name="fabrica-otlp", daemon=True)
        self._worker.start()

    # -- in: any thread ------------------------------------------------------------------

    def add(self, span: ServerSpan | ReadableSpan) -> None:
        queue = self._queue
        if len(queue) >= self.limit or self._stopped:
            self.dropped += 1
            return
        queue.append(span)
        if len(queue) >= self.batch and not self._wake.is_set():
            self._wake.set()

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self.add(span)

    # -- out -----------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopped:
            self._wake.wait(self.delay)
            self._wake.clear()
            self._export(everything=False)

    def _export(self, *, everything: bool) -> None:
        with self._lock:
            queue = self._queue
            while queue:
                batch = [queue.popleft() for _ in range(min(self.batch, len(queue)))]
                try:
                    self._export_batch(batch)
                except Exception:  # noqa: BLE001 - the next batch may go: keep the thread
                    log.exception("exporting %d spans failed", len(batch))
                if not everything and len(queue) < self.batch:
                    break

    def _export_batch(self, batch: Sequence[ServerSpan | ReadableSpan]) -> None:
        ours = [s for s in batch if isinstance(s, ServerSpan)]
        sdk = [s for s in batch if not isinstance(s, ServerSpan)]
        if self._send is None:
            self.exporter.export([*sdk, *(self._readable(s) for s in ours)])
            return
        data = encode_spans(sdk).SerializePartialToString() if sdk else b""
        if ours:
            data += encode_server_spans(self._head, ours)
        if not self._send(data):
            log.warning("the OTLP endpoint refused %d spans", len(batch))

    def _readable(self, span: ServerSpan) -> ReadableSpan:
        status = Status(StatusCode.ERROR, span.error or None) if span.error is not None \
            else Status(StatusCode.UNSET)
        return ReadableSpan(
            span.display_name, span.get_span_context(), parent=span.parent, resource=self._resource,
            attributes=_attributes(span), kind=SpanKind.SERVER, status=status,
            events=[Event(name, attributes, timestamp)
                    for timestamp, name, attributes in span.events or ()],
            start_time=span.start, end_time=span.end_time, instrumentation_scope=self._scope)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._export(everything=True)
        return True

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._worker.join(10)
        self._export(everything=True)
        if self.dropped:
            log.warning("dropped %d spans: the export queue (%d) was full",
                        self.dropped, self.limit)
        self.exporter.shutdown()


def _attributes(span: ServerSpan) -> dict[str, Any]:
    found: dict[str, Any] = {"http.request.method": span.method, "url.path": span.path}
    if span.route is not None:
        found["http.route"] = span.route
    if span.status:
        found["http.response.status_code"] = span.status
    if span.attributes:
        found.update(span.attributes)
    return found


# -- OTLP protobuf, by hand (opentelemetry/proto/trace/v1/trace.proto) -----------------------

_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_pack_i = struct.Struct("<I").pack
_SERVER = b"\x30\x02"  # kind = SPAN_KIND_SERVER
_FLAGS = b"\x85\x01" + _pack_i(0x100)  # flags (fixed32): has-is-remote, the parent local
_REMOTE_FLAGS = b"\x85\x01" + _pack_i(0x300)  # ... and remote


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: `tag`, the length, `payload`."""
    return tag + _varint(len(payload)) + payload


def _any(value: Any) -> bytes:
    """An AnyValue's payload."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode("utf-8", "replace"))
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, (list, tuple)):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any(v)) for v in value))
    return _field(b"\x0a", str(value).encode("utf-8", "replace"))


_KEYS: dict[str, bytes] = {}


def _kv(tag: bytes, key: str, value: Any) -> bytes:
    """A KeyValue field under `tag`."""
    head = _KEYS.get(key)
    if head is None:
        head = _field(b"\x0a", key.encode())
        if len(_KEYS) < 1024:  # keys are a few names; a bound all the same
            _KEYS[key] = head
    return _field(tag, head + _field(b"\x12", _any(value)))


def _kvs(tag: bytes, attributes: Iterable[tuple[str, Any]]) -> bytes:
    return b"".join(_kv(tag, k, v) for k, v in attributes)


def _resource_head(resource: Resource, scope: tuple[str, str]) -> tuple[bytes, bytes]:
    """The encoded Resource and InstrumentationScope a batch goes out under."""
    encoded_resource = _kvs(b"\x0a", resource.attributes.items())
    encoded_scope = _field(b"\x0a", scope[0].encode()) + _field(b"\x12", scope[1].encode())
    return encoded_resource, encoded_scope


_EVENTS_CAP = 128


#: The encoded fields most spans share (name, kind, method, route, status), by those.
_COMMON: dict[tuple[str | None, str, str | None, int], bytes] = {}
_times = struct.Struct("<BQBQ").pack  # start_time_unix_nano = 7, end = 8 (fixed64)


def _common(span: ServerSpan) -> bytes:
    key = (span.name, span.method, span.route, span.status)
    found = _COMMON.get(key)
    if found is None:
        found = (_field(b"\x2a", span.display_name.encode("utf-8", "replace")) + _SERVER
                 + _kv(b"\x4a", "http.request.method", span.method))
        if span.route is not None:
            found += _kv(b"\x4a", "http.route", span.route)
        if span.status:
            found += _kv(b"\x4a", "http.response.status_code", span.status)
        if len(_COMMON) < 4096:  # routes x methods x statuses: a bound all the same
            _COMMON[key] = found
    return found


_BYTE = [bytes((n,)) for n in range(128)]
_TAILS: dict[tuple[str | None, str, str | None, int, str | None], bytes] = {}


def _encode_span(span: ServerSpan) -> bytes:
    """A span (ScopeSpans.spans, field 2). The commonest, a request's own span with no
    more than its ids, times and path of its own, is a join of a few parts."""
    if (span.parent is None and span.trace_state is None and span.attributes is None
            and span.events is None):
        path = span.path.encode("utf-8", "replace")
        n = len(path)
        if n < 110:  # each length below is then one byte
            key = (span.name, span.method, span.route, span.status, span.error)
            tail = _TAILS.get(key)
            if tail is None:  # the fields that are the same for many: name, kind...
                tail = _common(span) + _status(span.error) + _FLAGS
                if len(_TAILS) < 4096:
                    _TAILS[key] = tail
            body = b"".join((b"\x0a\x10", span.trace_id.to_bytes(16, "big"),
                             b"\x12\x08", span.span_id.to_bytes(8, "big"),
                             _times(0x39, span.start, 0x41, span.end_time),
                             b"\x4a", _BYTE[n + 14], _URL_PATH, b"\x12", _BYTE[n + 2],
                             b"\x0a", _BYTE[n], path, tail))
            return b"\x12" + _varint(len(body)) + body
    return _field(b"\x12", _encode_any_span(span))


def _status(error: str | None) -> bytes:
    """Status{message = 2, code = 3 (ERROR = 2)}; unset written empty, as the SDK does."""
    if error is None:
        return b"\x7a\x00"
    message = _field(b"\x12", error.encode("utf-8", "replace")) if error else b""
    return _field(b"\x7a", message + b"\x18\x02")


def _encode_any_span(span: ServerSpan) -> bytes:
    parent = span.parent
    path = span.path.encode("utf-8", "replace")
    value = b"\x0a" + _varint(len(path)) + path
    parts = [b"\x0a\x10", span.trace_id.to_bytes(16, "big"),
             b"\x12\x08", span.span_id.to_bytes(8, "big"), _common(span),
             _times(0x39, span.start, 0x41, span.end_time),
             _field(b"\x4a", _URL_PATH + b"\x12" + _varint(len(value)) + value)]
    if span.trace_state:
        parts.append(_field(b"\x1a", span.trace_state.to_header().encode()))
    if parent is not None:
        parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
    if span.attributes:
        parts.append(_kvs(b"\x4a", span.attributes.items()))
    for timestamp, name, attributes in (span.events or ())[:_EVENTS_CAP]:
        parts.append(_field(b"\x5a", b"\x09" + _pack_q(timestamp)
                            + _field(b"\x12", name.encode("utf-8", "replace"))
                            + _kvs(b"\x1a", attributes.items())))
    parts.append(_status(span.error))
    parts.append(_REMOTE_FLAGS if parent is not None and parent.is_remote else _FLAGS)
    return b"".join(parts)


_URL_PATH = _field(b"\x0a", b"url.path")


def encode_server_spans(head: tuple[bytes, bytes], spans: Sequence[ServerSpan]) -> bytes:
    """An ExportTraceServiceRequest (its ``resource_spans``) holding `spans`."""
    resource, scope = head
    scope_spans = _field(b"\x0a", scope) + b"".join(map(_encode_span, spans))
    return _field(b"\x0a", _field(b"\x0a", resource) + _field(b"\x12", scope_spans))
