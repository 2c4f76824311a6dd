"""Server-sent events for ``GET /events?type=PATTERN``.

Each event is one SSE message: an ``id:`` line (the CloudEvent id) and one ``data:`` line
holding the compact structured CloudEvent. There is no ``event:`` line on purpose: a
browser's ``EventSource.onmessage`` only sees unnamed messages, and the type is in the JSON.
A comment opens the stream once the subscription is live (it also flushes the response
headers through proxies), and ``: keepalive`` comments follow whenever `heartbeat` seconds
pass without an event, so idle connections are not timed out.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

from ._bus import EventBus
from ._cloudevent import CloudEvent
from ._patterns import compile_pattern

__all__ = ["KEEPALIVE", "OPENED", "format_sse", "sse_stream"]

OPENED = b": connected\n\n"
KEEPALIVE = b": keepalive\n\n"


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
) -> AsyncIterator[bytes]:
    """The byte chunks of an SSE response carrying the events whose type matches `pattern`.

    The pattern is checked here, before any response starts: ValueError explains what is
    wrong with it. The subscription is made when iteration starts and ends when the
    iterator is closed (client gone) or the bus closes; `maxsize` bounds its queue.

    A stream sends at most one chunk per `flush_interval` seconds, holding every event
    that arrived meanwhile: an event after a quiet spell goes out at once, and under load
    the cost of hundreds of streams is per chunk, not per event.
    """
    compile_pattern(pattern)
    if heartbeat <= 0:
        raise ValueError("heartbeat must be a positive number of seconds")
    return _frames(bus, pattern, heartbeat, maxsize, flush_interval)


async def _frames(
    bus: EventBus, pattern: str, heartbeat: float, maxsize: int | None, flush_interval: float
) -> AsyncIterator[bytes]:
    async with bus.stream(pattern, maxsize=maxsize) as events:
        yield OPENED
        loop = asyncio.get_running_loop()
        last_flush = -flush_interval
        while True:
            pause = last_flush + flush_interval - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            batch = await events.next_batch(heartbeat)
            if batch is None:
                return
            if not batch:
                yield KEEPALIVE
                continue
            yield b"".join(format_sse(event) for event in batch)
            last_flush = loop.time()
