"""`Broadcast`: one shared log of recent events that every stream reads at its own pace.

Streams (``GET /events``) may number in the hundreds. Giving each one a queue makes every
publish touch every queue and wake every reader: the writer pays per subscriber. Here a
publish appends to one bounded log and wakes whoever is waiting, in O(1) for the
publisher; each stream keeps only a cursor (a sequence number) and its pattern, and takes
everything new in one batch when it reads. A stream that falls further behind than its
bound loses the oldest events, counted as dropped, as a queue that evicts would.

The log keeps every event published, streams or not, so that a client that reconnects with
``Last-Event-ID`` resumes right after that event while the log still holds it (`find`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from itertools import islice

from ._cloudevent import CloudEvent

__all__ = ["Broadcast"]


class Broadcast:
    """The newest `capacity` events, numbered from 0 in publish order."""

    def __init__(self, capacity: int) -> None:
        self._items: deque[CloudEvent] = deque(maxlen=capacity)
        self._head = 0  # the sequence number the next event gets
        self._wake = asyncio.Event()
        self._finished = False

    @property
    def head(self) -> int:
        return self._head

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def capacity(self) -> int:
        return self._items.maxlen or 0

    def grow(self, capacity: int) -> None:
        if capacity > self.capacity:
            self._items = deque(self._items, maxlen=capacity)

    def append(self, event: CloudEvent) -> None:
        self._items.append(event)
        self._head += 1
        self._wake.set()  # the readers waiting now; later ones wait on a fresh event
        self._wake = asyncio.Event()

    def find(self, event_id: str) -> int | None:
        """The sequence number of the newest event with id `event_id` still in the log."""
        for back, event in enumerate(reversed(self._items)):
            if event.id == event_id:
                return self._head - 1 - back
        return None

    def finish(self) -> None:
        """No more events: readers take what is left, then end."""
        self._finished = True
        self._wake.set()

    async def wait_after(self, cursor: int) -> None:
        """Until an event numbered `cursor` or later exists, or the log finishes."""
        while self._head <= cursor and not self._finished:
            await self._wake.wait()

    def read(
        self, cursor: int, matches: Callable[[str], bool], limit: int
    ) -> tuple[list[CloudEvent], int]:
        """The matching events from `cursor` on (the newest `limit` of them), and how many
        were lost: over `limit`, or evicted from the log unread (those count whether they
        matched or not, as the log no longer knows; it keeps several times any bound)."""
        first = self._head - len(self._items)
        lost = max(0, first - cursor)
        start = max(cursor, first) - first
        found = [e for e in islice(self._items, start, None) if matches(e.type)]
        if len(found) > limit:
            lost += len(found) - max(limit, 0)
            found = found[len(found) - max(limit, 0):]
        return found, lost
