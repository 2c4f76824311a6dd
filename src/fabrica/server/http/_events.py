"""``GET /events`` (SPEC section 4): the bus's CloudEvents as server-sent events.

What can be refused is refused before the 200, so a client never reads a stream that is
cut a few seconds later:

- a type pattern that some bus could not subscribe: 400 with the error body. The rules are
  NATS's subject rules on every bus (`compile_pattern`), so the memory bus refuses what
  NATS would (``>``, ``io.fabrica.>``, a NUL) instead of taking it and never matching;
- a bus that cannot subscribe now: 503 with ``Retry-After``. NATS unreachable (the client
  is reconnecting) answers at once; a subscription the bus does not confirm within
  `open_timeout` seconds (JetStream not answering) answers the same.

A stream that is open outlives a NATS outage: its JetStream reader resumes where it was once
NATS is back, so the client gets its events late, not a cut. A stopping server ends every
open stream at once (`EventStreams.close`; SPEC section 6: ``serve`` stops within 10 s of
SIGTERM); the client reconnects to another process, or later, with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from starlette.requests import Request
from starlette.responses import Response

from ...events import BusClosed, EventBus, EventBusError, compile_pattern, sse_frames
from ._errors import APIError, error_response
from ._streaming import StreamResponse

__all__ = ["RETRY_AFTER", "EventStreams", "events_endpoint"]

log = logging.getLogger("fabrica.server")

#: Seconds a client waits before it asks again, when the bus cannot serve it now.
RETRY_AFTER = 2
_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


class EventStreams:
    """The open ``/events`` streams of a server, so that shutdown can end them."""

    def __init__(self) -> None:
        self._closed = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """End every open stream now, and answer new ones 503 (server shutdown)."""
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


def events_endpoint(bus: EventBus, registry: CollectorRegistry, streams: EventStreams, *,
                    open_timeout: float = 5.0) -> Any:
    """``GET /events``: resumes after ``Last-Event-ID`` where the bus can, and counts what
    its clients were told they missed."""
    on_missed = _missed_counters(registry)

    async def events(request: Request) -> Response | StreamResponse:
        pattern = request.query_params.get("type") or "**"
        after = request.headers.get("last-event-id") or None
        _check_pattern(pattern)
        if streams.closed:
            return _unavailable("the server is stopping")
        if getattr(bus, "connected", True) is False:
            kafka = getattr(bus, "bootstrap", None)
            where = f"Kafka at {kafka}" if kafka else f"NATS at {getattr(bus, 'url', '?')}"
            return _unavailable(f"the event bus cannot reach {where}")
        try:
            stream = bus.stream(pattern, after=after)
        except ValueError as exc:  # a rule of this bus beyond the common ones
            raise _bad_pattern(exc) from None
        except BusClosed:
            return _unavailable("the event bus is closed")
        try:
            async with asyncio.timeout(open_timeout):
                await stream.__aenter__()
        except (EventBusError, TimeoutError) as exc:
            await stream.close()
            log.warning("GET /events?type=%s answered 503: cannot subscribe: %s", pattern,
                        exc or "no answer from the bus")
            return _unavailable("the event bus cannot subscribe now")
        frames = sse_frames(stream, after=after, on_missed=on_missed)
        return StreamResponse(frames, _HEADERS, streams.wait_closed, grace=0.0,
                              on_end=stream.close)

    return events


def _check_pattern(pattern: str) -> None:
    try:
        compile_pattern(pattern)
    except ValueError as exc:
        raise _bad_pattern(exc) from None


def _bad_pattern(exc: ValueError) -> APIError:
    return APIError(400, f"invalid type pattern: {exc}", [{"field": "type", "message": str(exc)}])


def _unavailable(why: str) -> Response:
    return error_response(503, f"event stream unavailable: {why}; retry shortly",
                          headers={"Retry-After": str(RETRY_AFTER)})


def _missed_counters(registry: CollectorRegistry) -> Any:
    dropped = Counter("fabrica_events_dropped_total",
                      "Events an /events client missed, told so by a fabrica.dropped message",
                      ["reason"], registry=registry)
    dropped.labels("slow_subscriber")
    resyncs = Counter("fabrica_events_resyncs_total",
                      "/events clients told to resync: their Last-Event-ID was no longer held",
                      registry=registry)

    def on_missed(count: int, reason: str) -> None:
        if reason == "resume_unavailable":
            resyncs.inc()
        else:
            dropped.labels(reason).inc(count)

    return on_missed
