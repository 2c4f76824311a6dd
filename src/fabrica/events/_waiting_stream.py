"""`WaitingStream`: the `EventStream` of a bus that keeps its events (JetStream, Kafka).

Its feeder waits for the reader when the buffer is full instead of evicting: the events
stay in the broker meanwhile, so a slow reader is late, never skipped. A transport
subclass feeds it (`offer`) from its own reader and stops that reader on `close`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType
from typing import Self

from ._bus import EventBusError, SubscriptionStats
from ._cloudevent import CloudEvent

__all__ = ["WaitingStream"]


class WaitingStream:
    """A bounded buffer between a transport's reader and an `EventStream`'s consumer.

    `ready`, when set, is the task attaching the reader; entering (``async with``) waits
    for it and raises `EventBusError` with what it returned.
    """

    def __init__(self, pattern: str, size: int) -> None:
        self._pattern, self.maxsize = pattern, size
        self._name = f"stream:{pattern}"
        self.ready: asyncio.Task[BaseException | None] | None = None
        self._buffer: deque[CloudEvent] = deque()
        self._readable, self._room = asyncio.Event(), asyncio.Event()
        self._resume_failed = self._finishing = self._closed = False
        self._delivered = self._dropped = self._reported = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def pattern(self) -> str:
        return self._pattern

    @property
    def resume_failed(self) -> bool:
        return self._resume_failed

    @property
    def stats(self) -> SubscriptionStats:
        return SubscriptionStats(name=self._name, pattern=self._pattern, mode="stream",
                                 delivered=self._delivered, failed=0, dropped=self._dropped,
                                 pending=len(self._buffer))

    def take_missed(self) -> int:
        missed, self._reported = self._dropped - self._reported, self._dropped
        return missed

    def finish(self) -> None:
        """Nothing more comes: the reader takes what is queued, then the stream ends."""
        self._finishing = True
        self._readable.set()

    async def close(self) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.cancel()
        await self._stop_reading()
        if not self._closed:
            self._dropped += len(self._buffer)
            self._buffer.clear()
        self._closed = True
        self._readable.set()
        self._room.set()

    async def next_batch(self, timeout: float | None = None) -> list[CloudEvent] | None:
        """Every event not yet read (at least one), [] after `timeout` seconds without any,
        None once the stream has ended."""
        try:
            async with asyncio.timeout(timeout):
                await self._wait_readable()
        except TimeoutError:
            return []
        if not self._buffer:
            return None
        batch = list(self._buffer)
        self._buffer.clear()
        self._room.set()
        self._delivered += len(batch)
        return batch

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> CloudEvent:
        await self._wait_readable()
        if not self._buffer:
            raise StopAsyncIteration
        self._delivered += 1
        self._room.set()
        return self._buffer.popleft()

    async def __aenter__(self) -> Self:
        ready = self.ready
        if ready is not None:
            await asyncio.wait({ready})  # never raises, even if the bus's close cancelled it
            if not ready.cancelled() and (error := ready.result()) is not None:
                raise EventBusError(f"cannot subscribe to {self.pattern!r}: {error}") from error
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _stop_reading(self) -> None:
        """Stop the transport's reader (and forget this stream on its bus)."""

    async def _wait_readable(self) -> None:
        """Until an event is queued or the stream has ended."""
        while not self._buffer and not self._closed and not self._finishing:
            self._readable.clear()
            await self._readable.wait()

    async def offer(self, event: CloudEvent) -> None:
        """Queue `event`, waiting while the buffer is full (the broker keeps the rest)."""
        while len(self._buffer) >= self.maxsize and not self._closed:
            self._room.clear()
            await self._room.wait()
        if not self._closed:
            self._buffer.append(event)
            self._readable.set()
