"""`NatsBus`'s subscriptions: a handler or a stream, each fed by its own `Feed`.

A handler subscription is a `Delivery` (bounded queue, own task, counted failures): an
event that finds its queue full waits ``publish_timeout`` seconds for room, then is
dropped for that handler and counted. Remote publishers are never slowed by it.

A stream waits for its reader instead of evicting: the events stay in JetStream
meanwhile, so a slow reader is late, never skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Self

import nats.errors
from nats.js import JetStreamContext

from .._bus import EventBusError, Handler, SubscriptionStats
from .._cloudevent import CloudEvent
from .._delivery import Delivery
from ._jetstream import JetStream, find_sequence
from ._reader import Feed

__all__ = ["NatsEventStream", "NatsSubscription"]

log = logging.getLogger("fabrica.events")

Forget = Callable[["NatsSubscription | NatsEventStream"], None]


class NatsSubscription(Delivery):
    """A handler subscription (`Subscription`)."""

    def __init__(self, forget: Forget, handler: Handler, name: str, pattern: str, size: int,
                 timeout: float) -> None:
        super().__init__(handler, name, pattern, size)
        self._forget, self._timeout = forget, timeout
        self.feed = Feed(name, pattern, self._offer)

    async def attach(self, js: JetStreamContext, setting: JetStream) -> None:
        self.start()
        await self.feed.attach(js, setting)

    async def close(self) -> None:
        """End the subscription: stop reading; what is still queued is dropped."""
        self._forget(self)
        await self.feed.stop()
        await self.stop()

    async def _offer(self, event: CloudEvent) -> None:
        await self.put(event, self._timeout)


class NatsEventStream:
    """A stream (`EventStream`); it reads JetStream once ``async with`` has entered.

    Started `after` an event id, it finds that event in the stream when it attaches and
    reads from the next one on; when the stream no longer holds it, it reads from now and
    says so (``resume_failed``).
    """

    def __init__(self, forget: Forget, pattern: str, size: int, after: str | None) -> None:
        self._forget, self._pattern, self.maxsize = forget, pattern, size
        self._name = f"stream:{pattern}"
        self.feed = Feed(self._name, pattern, self._offer)
        self.after = after
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

    async def attach(self, js: JetStreamContext, setting: JetStream) -> None:
        after, self.after = self.after, None  # found once; a re-attach resumes by itself
        if after is not None and not self.feed.attached:
            found = await self._find(js, setting, after)
            self._resume_failed = found is None
            if found is not None:
                self.feed.start_seq = found + 1
        await self.feed.attach(js, setting)

    def finish(self) -> None:
        """Nothing more comes: the reader takes what is queued, then the stream ends."""
        self._finishing = True
        self._readable.set()

    async def close(self) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.cancel()
        self._forget(self)
        await self.feed.stop()
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

    async def _wait_readable(self) -> None:
        """Until an event is queued or the stream has ended."""
        while not self._buffer and not self._closed and not self._finishing:
            self._readable.clear()
            await self._readable.wait()

    async def _offer(self, event: CloudEvent) -> None:
        while len(self._buffer) >= self.maxsize and not self._closed:
            self._room.clear()
            await self._room.wait()
        if not self._closed:
            self._buffer.append(event)
            self._readable.set()

    async def _find(self, js: JetStreamContext, setting: JetStream, event_id: str) -> int | None:
        try:
            return await find_sequence(js, setting, event_id)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("subscriber %s cannot look up event %s in JetStream stream %s: %r",
                        self._name, event_id, setting.stream, exc)
            return None
