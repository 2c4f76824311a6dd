"""`Tracing`: a service's OpenTelemetry spans, exported over OTLP/HTTP (SPEC section 13).

Imported only by a service that traces (`ServiceOptions.tracing`), so a service without it
loads no OpenTelemetry. Each service has its own `TracerProvider` (not the process-global
one: tests and benchmarks run several services in one process), sampling a share of new
traces and following the caller's choice for the rest (parent-based).

Spans and where they come from: the HTTP server span (`fabrica.server.http`; a lean span of
its own, `fabrica.service._otlp`, as the commonest one), storage
operations (`traced_storage`: only inside a trace, so the relay's and the watch cache's
background polls start none), event publishes (`traced_bus`: a child of the event's own
``traceparent`` when it has one, as the relay's events do), an outbox batch (a trace of its
own, linked to the writes it relays), and per reconcile the queue wait and the reconcile
(children of the write that queued the key; a key several writes queued, or a resync,
starts a trace of its own linked to them). Span names never hold a uid: route templates,
storage method names, event types and kinds. Each call of a kind's admission hook is a span
too (``hook admit Rack``), a child of the write it admits.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from random import getrandbits
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource as OtelResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._version import __version__
from ..events import CloudEvent, EventBus
from ..storage import OutboxEntry, Storage
from ..store import Reject, WriteContext
from ._otlp import ServerSpan, SpanPipeline

__all__ = ["Tracing"]

T = TypeVar("T")
_PROPAGATOR = TraceContextTextMapPropagator()
#: The bits of a trace id `TraceIdRatioBased` compares with its bound.
_RATIO_MASK = TraceIdRatioBased.TRACE_ID_LIMIT


class Tracing:
    """The tracer of one service, and the wrappers that put its parts in spans."""

    def __init__(self, *, service_name: str, instance: str, endpoint: str | None,
                 sample_ratio: float) -> None:
        attributes: dict[str, str] = {"service.instance.id": instance,
                                      "service.version": __version__}
        if not os.environ.get("OTEL_SERVICE_NAME"):
            attributes["service.name"] = service_name
        self.provider = TracerProvider(resource=OtelResource.create(attributes),
                                       sampler=ParentBased(TraceIdRatioBased(sample_ratio)))
        exporter = OTLPSpanExporter(endpoint=_traces_url(endpoint) if endpoint else None)
        self.pipeline = SpanPipeline(exporter, self.provider.resource, ("fabrica", __version__))
        self.provider.add_span_processor(self.pipeline)
        self.tracer = self.provider.get_tracer("fabrica", __version__)
        self._bound = TraceIdRatioBased(sample_ratio).bound

    def server_span(self, method: str, path: str, traceparent: bytes | None,
                    tracestate: bytes | None) -> ServerSpan:
        """A started (not yet current) span for an HTTP request, sampled as the provider's
        sampler would (parent-based, the ratio for a new trace), its parent the caller's
        ``traceparent`` when valid. (The ids as the SDK's `RandomIdGenerator` makes them.)"""
        if traceparent is not None:
            return self._continued(method, path, traceparent, tracestate)
        trace_id = getrandbits(128) or getrandbits(128)
        return ServerSpan(trace_id, getrandbits(64) or getrandbits(64), method, path,
                          self.pipeline if trace_id & _RATIO_MASK < self._bound else None)

    def _continued(self, method: str, path: str, traceparent: bytes,
                   tracestate: bytes | None) -> ServerSpan:
        headers = {"traceparent": traceparent.decode("latin-1")}
        if tracestate is not None:
            headers["tracestate"] = tracestate.decode("latin-1")
        parent = trace.get_current_span(_PROPAGATOR.extract(headers)).get_span_context()
        if not parent.is_valid:
            return self.server_span(method, path, None, None)
        span = ServerSpan(parent.trace_id, getrandbits(64) or getrandbits(64), method, path,
                          self.pipeline if parent.trace_flags.sampled else None)
        span.parent = parent
        if parent.trace_state:
            span.trace_state = parent.trace_state
        return span

    def shutdown(self) -> None:
        """Export what is left and stop."""
        self.provider.shutdown()

    # -- contexts ------------------------------------------------------------------------

    @staticmethod
    def traceparent() -> str | None:
        """The current span as a W3C ``traceparent``, None outside a span."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    @staticmethod
    def context_of(headers: dict[str, str]) -> otel_context.Context:
        """The caller's context from ``traceparent``/``tracestate`` (empty when absent)."""
        return _PROPAGATOR.extract(headers)

    @staticmethod
    def _link(traceparent: str) -> Link | None:
        span = trace.get_current_span(_PROPAGATOR.extract({"traceparent": traceparent}))
        context = span.get_span_context()
        return Link(context) if context.is_valid else None

    # -- the parts -----------------------------------------------------------------------

    def storage(self, storage: Storage) -> Storage:
        """`storage` with each operation a span, when it runs inside a trace."""
        return cast(Storage, _TracedStorage(storage, self.tracer))

    def bus(self, bus: EventBus) -> EventBus:
        """`bus` with each publish a span, a child of the event's ``traceparent``."""
        return cast(EventBus, _TracedBus(bus, self.tracer))

    @contextlib.contextmanager
    def relay_batch(self, entries: Sequence[OutboxEntry]) -> Iterator[object]:
        links = [link for link in map(self._link, _traceparents(entries)) if link]
        with self.tracer.start_as_current_span(
                "outbox relay", context=otel_context.Context(), kind=SpanKind.PRODUCER,
                links=links, attributes={"messaging.batch.message_count": len(entries)}
        ) as span:
            yield span

    @contextlib.contextmanager
    def hook(self, phase: str, kind: str, hook: str, ctx: WriteContext) -> Iterator[object]:
        """A span ``hook PHASE KIND`` around one call of a kind's admission hook, inside a
        trace only (as storage's: the garbage collector's deletes start none). A `Reject`
        is the hook's answer, not an error: an attribute; anything else is an error."""
        if not _in_trace():
            yield None
            return
        with self.tracer.start_as_current_span(
                f"hook {phase} {kind}", record_exception=False, set_status_on_exception=False,
                attributes={"fabrica.kind": kind, "fabrica.hook": hook,
                            "fabrica.operation": ctx.operation, "fabrica.dry_run": ctx.dry_run}
        ) as span:
            try:
                yield span
            except Reject as exc:
                span.set_attribute("fabrica.hook.rejected", exc.status)
                raise
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise

    @contextlib.contextmanager
    def reconcile(self, kind: str, causes: Sequence[str], queued_at: float | None
                  ) -> Iterator[object]:
        """The queue wait and the reconcile of one key: children of its one cause, or a
        trace of their own linked to several causes (or to none: a resync, a requeue)."""
        if len(causes) == 1:
            parent, links = _PROPAGATOR.extract({"traceparent": causes[0]}), []
        else:
            parent = otel_context.Context()
            links = [link for link in map(self._link, causes) if link]
        attributes: dict[str, str | int] = {"fabrica.kind": kind,
                                            "fabrica.causes": len(causes)}
        if queued_at is not None:
            self.tracer.start_span(f"queue wait {kind}", context=parent, links=links,
                                   attributes=attributes,
                                   start_time=int(queued_at * 1e9)).end()
        with self.tracer.start_as_current_span(f"reconcile {kind}", context=parent,
                                               kind=SpanKind.CONSUMER, links=links,
                                               attributes=attributes) as span:
            yield span


def _traces_url(endpoint: str) -> str:
    """OTLP/HTTP's traces path under a base URL, as for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
    return endpoint.rstrip("/") + "/v1/traces"


def _traceparents(entries: Sequence[OutboxEntry]) -> list[str]:
    found = []
    for entry in entries:
        try:
            value = json.loads(entry.payload).get("traceparent")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, str) and value not in found:
            found.append(value)
    return found


def _in_trace() -> bool:
    return trace.get_current_span().get_span_context().is_valid


#: Not spans: the revision probe every cached read makes (a stat or one indexed row) would
#: double the spans of the commonest request and tell nothing.
_UNTRACED = frozenset({"latest"})


class _TracedStorage:
    """Every coroutine method of a backend in a span named ``storage METHOD`` (as
    `with_timeout` wraps them: a method added to a backend is traced too), `_UNTRACED`
    aside."""

    def __init__(self, storage: Storage, tracer: trace.Tracer) -> None:
        self.inner = storage
        self.name = storage.name
        self._tracer = tracer
        for name in dir(storage):
            method = getattr(storage, name, None)
            if (not name.startswith("_") and name not in _UNTRACED
                    and inspect.iscoroutinefunction(method)):
                setattr(self, name, self._traced(name, method))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"traced({self.inner!r})"

    def _traced(self, name: str, method: Callable[..., Awaitable[T]]
                ) -> Callable[..., Awaitable[T]]:
        span_name = f"storage {name}"
        attributes = {"db.system": self.name, "db.operation": name}

        @functools.wraps(method)
        async def traced(*args: Any, **kwargs: Any) -> T:
            if not _in_trace():
                return await method(*args, **kwargs)
            with self._tracer.start_as_current_span(span_name, kind=SpanKind.CLIENT,
                                                    attributes=attributes):
                return await method(*args, **kwargs)

        return traced


class _TracedBus:
    def __init__(self, bus: EventBus, tracer: trace.Tracer) -> None:
        self.inner = bus
        self._tracer = tracer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def publish(self, event: CloudEvent, *args: Any, **kwargs: Any) -> Any:
        cause = event.extensions.get("traceparent")
        parent = _PROPAGATOR.extract({"traceparent": cause}) if isinstance(cause, str) \
            else None
        if parent is None and not _in_trace():
            return await self.inner.publish(event, *args, **kwargs)
        with self._tracer.start_as_current_span(
                f"publish {event.type}", context=parent, kind=SpanKind.PRODUCER,
                attributes={"messaging.message.id": event.id,
                            "messaging.destination.name": event.type}):
            return await self.inner.publish(event, *args, **kwargs)
