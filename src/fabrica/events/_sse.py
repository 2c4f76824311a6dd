"""Server-sent events for ``GET /events?type=PATTERN``.

Each event is one SSE message: an ``id:`` line (the CloudEvent id) and one ``data:`` line
holding the compact structured CloudEvent. There is no ``event:`` line on purpose: a
browser's ``EventSource.onmessage`` only sees unnamed messages, and the type is in the JSON.
A comment opens the stream once the subscription is live (it also flushes the response
headers through proxies), and ``: keepalive`` comments follow whenever `heartbeat` seconds
pass without an event, so idle connections are not timed out.

A client that reconnects with ``Last-Event-ID`` (`after`) gets what it missed first, then
the live events, when the bus still holds that event (JetStream, or the memory bus's
recent log). When it does not, the stream starts from now with one message
``event: fabrica.resync`` telling the client it may have missed events and must re-read
the state it cares about. A reader that falls so far behind that events were evicted
unread gets ``event: fabrica.dropped`` with their count before the next events, and the
server logs and counts it (`on_missed`): events are never skipped without a word. These
two are named SSE events: `EventSource.onmessage` and fabrica's client see only the
CloudEvents; ``addEventListener("fabrica.dropped", ...)`` sees them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable

from ._bus import EventBus, EventStream
from ._cloudevent import CloudEvent
from ._patterns import compile_pattern

__all__ = ["DROPPED", "KEEPALIVE", "OPENED", "RESYNC", "format_sse", "sse_frames", "sse_stream"]

log = logging.getLogger("fabrica.events")

OPENED = b": connected\n\n"
KEEPALIVE = b": keepalive\n\n"
DROPPED = "fabrica.dropped"
RESYNC = "fabrica.resync"
#: Called with the number of events a stream's reader missed, and why.
OnMissed = Callable[[int, str], None]


@functools.lru_cache(maxsize=1024)
def format_sse(event: CloudEvent) -> bytes:
    """One SSE message for `event`; made once, however many streams send it."""
    lines = [] if "\n" in event.id or "\r" in event.id else [f"id: {event.id}"]
    lines.append(f"data: {event.to_json()}")
    return ("\n".join(lines) + "\n\n").encode()


def sse_stream(
    bus: EventBus,
    pattern: str = "**",
    *,
    heartbeat: float = 15.0,
    maxsize: int | None = None,
    flush_interval: float = 0.2,
    after: str | None = None,
    on_missed: OnMissed | None = None,
) -> AsyncIterator[bytes]:
    """The byte chunks of an SSE response carrying the events whose type matches `pattern`.

    The pattern is checked here, before any response starts: ValueError explains what is
    wrong with it. The subscription is made when iteration starts and ends when the
    iterator is closed (client gone) or the bus closes; `maxsize` bounds its queue.
    `after` is the client's ``Last-Event-ID``; `on_missed(count, reason)` hears of every
    loss the client is told of (reason ``slow_subscriber`` or ``resume_unavailable``).

    A stream sends at most one chunk per `flush_interval` seconds, holding every event
    that arrived meanwhile: an event after a quiet spell goes out at once, and under load
    the cost of hundreds of streams is per chunk, not per event.
    """
    compile_pattern(pattern)
    _check_heartbeat(heartbeat)
    return _frames(bus, pattern, heartbeat, maxsize, flush_interval, after, on_missed)


def sse_frames(
    events: EventStream,
    *,
    heartbeat: float = 15.0,
    flush_interval: float = 0.2,
    after: str | None = None,
    on_missed: OnMissed | None = None,
) -> AsyncIterator[bytes]:
    """As `sse_stream`, from a stream the caller has opened (entered) and closes: a
    server subscribes before it answers, so that it can answer 503 when the bus cannot."""
    _check_heartbeat(heartbeat)
    return _framed(events, heartbeat, flush_interval, after,
                   on_missed or (lambda count, reason: None))


def _check_heartbeat(heartbeat: float) -> None:
    if heartbeat <= 0:
        raise ValueError("heartbeat must be a positive number of seconds")


async def _frames(
    bus: EventBus, pattern: str, heartbeat: float, maxsize: int | None, flush_interval: float,
    after: str | None, on_missed: OnMissed | None,
) -> AsyncIterator[bytes]:
    async with bus.stream(pattern, maxsize=maxsize, after=after) as events:
        async for chunk in sse_frames(events, heartbeat=heartbeat, after=after,
                                      flush_interval=flush_interval, on_missed=on_missed):
            yield chunk


async def _framed(
    events: EventStream, heartbeat: float, flush_interval: float, after: str | None,
    on_missed: OnMissed,
) -> AsyncIterator[bytes]:
    pattern = events.pattern
    yield OPENED
    if after is not None and events.resume_failed:
        log.warning("an /events client (%s) resumed after event %s, which the bus no "
                    "longer holds: told to resync", pattern, after)
        on_missed(0, "resume_unavailable")
        yield _notice(RESYNC, {"lastEventId": after, "reason": "the event bus no longer "
                               "holds this event: events may have been missed"})
    loop = asyncio.get_running_loop()
    last_flush = -flush_interval
    while True:
        pause = last_flush + flush_interval - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)
        batch = await events.next_batch(heartbeat)
        if (missed := events.take_missed()) and batch is not None:
            log.warning("an /events client (%s) fell behind: %d events dropped for it",
                        pattern, missed)
            on_missed(missed, "slow_subscriber")
            yield _notice(DROPPED, {"dropped": missed, "reason": "this client read more "
                                    "slowly than events came"})
        if batch is None:
            return
        if not batch:
            yield KEEPALIVE
            continue
        yield b"".join(format_sse(event) for event in batch)
        last_flush = loop.time()


def _notice(name: str, data: dict[str, object]) -> bytes:
    """A named SSE message without an id (the client's Last-Event-ID stays its last event)."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
