"""A bounded FIFO of events between publishers and one consumer.

Every event is appended at publish time, so the order of a subscriber's events is the order
of `publish` calls however long a publisher then waits. The first ``maxsize`` entries are
the queue proper; an entry beyond them belongs to a publisher that waits (`wait_room`)
until the consumer has made room, or gives up at its deadline and *retracts* the entry
(a tombstone the consumer skips), which counts as a drop. So the mailbox holds at most
``maxsize`` entries plus one per publisher still waiting. Streams use `push_evicting`
instead, which never waits: the oldest entry makes way and counts as a drop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

from ._cloudevent import CloudEvent

__all__ = ["Mailbox"]

_TOMBSTONE: Final = None


class Mailbox:
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("queue size must be at least 1")
        self.maxsize = maxsize
        self.dropped = 0
        self._items: deque[CloudEvent | None] = deque()
        self._head = 0  # sequence number of _items[0]
        self._readable = asyncio.Event()
        self._advanced = asyncio.Event()
        self._finishing = False
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def pending(self) -> int:
        """Events queued for the consumer (dropped entries still in the queue not counted)."""
        return sum(1 for event in self._items if event is not _TOMBSTONE)

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, event: CloudEvent) -> int | None:
        """Append `event`; return its sequence number when its publisher must `wait_room`."""
        if self._closed:
            self.dropped += 1
            return None
        seq = self._head + len(self._items)
        self._items.append(event)
        self._readable.set()
        return seq if seq - self._head >= self.maxsize else None

    def push_evicting(self, event: CloudEvent) -> None:
        """Append `event`, evicting the oldest entry when full."""
        if self._closed:
            self.dropped += 1
            return
        while len(self._items) >= self.maxsize:
            if self._pop() is not _TOMBSTONE:
                self.dropped += 1
        self._items.append(event)
        self._readable.set()

    async def wait_room(self, seq: int, deadline: float) -> bool:
        """Wait until entry `seq` is within the bound; False if it was dropped instead."""
        try:
            async with asyncio.timeout_at(deadline):
                while not self._closed and seq - self._head >= self.maxsize:
                    self._advanced.clear()
                    await self._advanced.wait()
        except TimeoutError:
            self.retract(seq)
        except BaseException:
            self.retract(seq)
            raise
        return not self._closed and seq - self._head < self.maxsize

    def retract(self, seq: int) -> bool:
        """Drop entry `seq` if it is still beyond the bound; True when dropped."""
        index = seq - self._head
        if self._closed or not self.maxsize <= index < len(self._items):
            return False
        self._items[index] = _TOMBSTONE
        self.dropped += 1
        return True

    async def get(self) -> CloudEvent | None:
        """The next event; None once finished and empty, or closed."""
        while True:
            while self._items:
                event = self._pop()
                if event is not _TOMBSTONE:
                    return event
            if self._closed or self._finishing:
                return None
            self._readable.clear()
            await self._readable.wait()

    def finish(self) -> None:
        """Accept nothing more; `get` returns what is queued, then None."""
        self._finishing = True
        self._readable.set()

    def close(self) -> None:
        """End now: queued events are dropped, waiting publishers released."""
        self.dropped += sum(1 for e in self._items if e is not _TOMBSTONE)
        self._head += len(self._items)
        self._items.clear()
        self._closed = True
        self._readable.set()
        self._advanced.set()

    def _pop(self) -> CloudEvent | None:
        self._head += 1
        self._advanced.set()
        return self._items.popleft()
