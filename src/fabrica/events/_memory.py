"""`MemoryBus`: the in-process event bus.

Each handler subscription owns a bounded queue and its own delivery task (`Delivery`), so
a slow or failing subscriber never holds up another: a handler that raises is logged (with
the subscriber's name and the event's type) and counted, and delivery goes on.

Back-pressure, when a subscriber's queue is full:

- **Handlers wait.** `publish` waits, up to ``publish_timeout`` seconds, for the slow handler
  to make room. Handlers are reconcilers and integrations: silently skipping their events
  is the worst outcome, and slowing the writer down is the honest signal. The event already
  holds its place in the queue while its publisher waits, so order is kept, and other
  subscribers receive it at once. Past the deadline the event is dropped for that
  subscriber only, logged as an error and counted; that also breaks the deadlock of a
  handler whose own writes publish into its full queue. Level-triggered reconcilers recover
  from such a drop at their next resync.
- **Streams evict.** A stream (``GET /events``) drops its oldest unread event and counts it.
  A remote client reading slowly must never slow the server's writes. Streams do not have
  queues at all: they read one shared log (`Broadcast`), so a publish costs the same with
  hundreds of them connected.

Events published before `start` are queued and delivered once it runs. `close(drain=True)`
delivers everything already published (bounded by its timeout) before it cancels the
delivery tasks; streams end after their consumers have read what is queued.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType
from typing import Self

from ._broadcast import Broadcast
from ._bus import (
    BusClosed,
    BusContext,
    EventStream,
    Handler,
    Subscription,
    SubscriptionStats,
)
from ._cloudevent import CloudEvent
from ._delivery import Delivery
from ._delivery import drain as drain_deliveries
from ._patterns import TypePattern, compile_pattern

__all__ = ["MemoryBus"]

_ROUTE_CACHE_SIZE = 4096
_MIN_LOG = 1024  # events the streams' shared log keeps at least


class _HandlerSubscription(Delivery):
    def __init__(
        self, bus: MemoryBus, pattern: TypePattern, handler: Handler, name: str, size: int
    ) -> None:
        super().__init__(handler, name, pattern.pattern, size)
        self._bus, self._matcher = bus, pattern

    def matches(self, event_type: str) -> bool:
        return self._matcher.matches(event_type)

    async def close(self) -> None:
        self._bus._remove(self)
        await self.stop()


class _StreamSubscription:
    """A cursor into the bus's shared `Broadcast` log (see there): publishing costs the
    same however many streams read."""

    def __init__(self, bus: MemoryBus, pattern: TypePattern, size: int, log: Broadcast,
                 after: str | None) -> None:
        self._bus, self._pattern, self._log = bus, pattern, log
        self._name = f"stream:{pattern.pattern}"
        self.maxsize = size
        self._cursor = log.head  # only what is published from now on
        self.resume_failed = False
        if after is not None:  # or right after the event `after`, if the log still has it
            found = log.find(after)
            self.resume_failed = found is None
            self._cursor = log.head if found is None else found + 1
        self._buffer: deque[CloudEvent] = deque()
        self._delivered = self._dropped = self._reported = 0
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def pattern(self) -> str:
        return self._pattern.pattern

    @property
    def stats(self) -> SubscriptionStats:
        waiting, lost = self._peek()
        return SubscriptionStats(
            name=self._name,
            pattern=self.pattern,
            mode="stream",
            delivered=self._delivered,
            failed=0,
            dropped=self._dropped + lost,
            pending=len(waiting),
        )

    def matches(self, event_type: str) -> bool:
        return self._pattern.matches(event_type)

    def take_missed(self) -> int:
        """Events lost to falling behind since the last call (its reader says so)."""
        missed, self._reported = self._dropped - self._reported, self._dropped
        return missed

    async def close(self) -> None:
        if not self._closed:
            _, lost = self._peek()
            self._dropped += lost + len(self._buffer)
            self._buffer.clear()
        self._closed = True
        self._bus._remove(self)

    async def next_batch(self, timeout: float | None = None) -> list[CloudEvent] | None:
        """Every matching event not yet read (at least one), [] after `timeout` seconds
        without any, None once the stream or its bus is closed and nothing is left."""
        if not self._buffer:
            try:
                async with asyncio.timeout(timeout):
                    while not self._closed and not self._take():
                        if self._log.finished:
                            return None
                        await self._log.wait_after(self._cursor)
            except TimeoutError:
                return []
        if self._closed and not self._buffer:
            return None
        batch = list(self._buffer)
        self._buffer.clear()
        self._delivered += len(batch)
        return batch

    def _peek(self) -> tuple[list[CloudEvent], int]:
        room = self.maxsize - len(self._buffer)
        found, lost = self._log.read(self._cursor, self._pattern.matches, max(room, 0))
        return [*self._buffer, *found], lost

    def _take(self) -> bool:
        """Move what is new from the log into this stream's buffer; True if anything."""
        found, lost = self._log.read(self._cursor, self._pattern.matches,
                                     self.maxsize - len(self._buffer))
        self._cursor = self._log.head
        self._dropped += lost
        self._buffer.extend(found)
        return bool(self._buffer)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> CloudEvent:
        if not self._buffer:
            batch = await self.next_batch()
            if not batch:
                raise StopAsyncIteration
            self._delivered -= len(batch)  # counted as each one is handed out below
            self._buffer.extend(batch)
        self._delivered += 1
        return self._buffer.popleft()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


_Sub = _HandlerSubscription | _StreamSubscription


class MemoryBus(BusContext):
    """An in-process `EventBus`: one asyncio loop, no persistence.

    `queue_size` bounds each handler's queue; `stream_size` is the default bound of a
    stream; `publish_timeout` is how long `publish` waits for a full handler queue (see
    the module docstring for the policy). Use ``async with MemoryBus() as bus:`` or call
    `start` and `close`.
    """

    def __init__(
        self, queue_size: int = 1000, *, stream_size: int = 100, publish_timeout: float = 5.0
    ) -> None:
        if queue_size < 1 or stream_size < 1:
            raise ValueError("queue sizes must be at least 1")
        self._queue_size, self._stream_size = queue_size, stream_size
        self._publish_timeout = publish_timeout
        self._subs: list[_Sub] = []
        self._routes: dict[str, tuple[_HandlerSubscription, ...]] = {}
        self._log = Broadcast(max(4 * stream_size, _MIN_LOG))
        self._started = self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self) -> None:
        if self._closed:
            raise BusClosed("the event bus is closed and cannot be started again")
        self._started = True
        for sub in self._handlers():
            sub.start()

    async def publish(self, event: CloudEvent) -> None:
        if self._closed:
            raise BusClosed(f"cannot publish {event.type}: the event bus is closed")
        self._log.append(event)  # kept while no stream reads it, for one that resumes
        waiting: list[tuple[_HandlerSubscription, int]] = []
        for sub in self._route(event.type):
            if (seq := sub.mailbox.push(event)) is not None:
                waiting.append((sub, seq))
        if waiting:
            await self._wait_for_room(event, waiting)

    async def subscribe(
        self, pattern: str, handler: Handler, *, name: str | None = None
    ) -> Subscription:
        compiled = self._open_check(pattern)
        label = name or getattr(handler, "__qualname__", None) or repr(handler)
        sub = _HandlerSubscription(self, compiled, handler, label, self._queue_size)
        self._add(sub)
        if self._started:
            sub.start()
        return sub

    def stream(self, pattern: str = "**", *, maxsize: int | None = None,
               after: str | None = None) -> EventStream:
        """A bounded iterator of matching events, subscribed as soon as this returns; with
        `after` (an event id), from right after that event if the shared log still holds
        it, else from now with ``resume_failed`` set."""
        size = maxsize or self._stream_size
        sub = _StreamSubscription(self, self._open_check(pattern), size, self._log, after)
        # Room beyond the largest bound, so that non-matching traffic rarely pushes out an
        # event a stream wanted before the stream's own bound would have.
        self._log.grow(max(4 * size, _MIN_LOG))
        self._add(sub)
        return sub

    async def close(self, drain: bool = True, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        subs = list(self._subs)
        self._log.finish()
        for sub in subs:
            if isinstance(sub, _StreamSubscription) and not drain:
                await sub.close()
        if drain:
            await drain_deliveries(self._handlers(), timeout)
        for sub in subs:
            if isinstance(sub, _HandlerSubscription):
                await sub.close()
        self._routes.clear()

    def stats(self) -> list[SubscriptionStats]:
        return [sub.stats for sub in self._subs]

    async def _wait_for_room(
        self, event: CloudEvent, waiting: list[tuple[_HandlerSubscription, int]]
    ) -> None:
        deadline = asyncio.get_running_loop().time() + self._publish_timeout
        for index, (sub, seq) in enumerate(waiting):
            try:
                await sub.wait_room(event, seq, deadline, self._publish_timeout)
            except BaseException:
                for later, later_seq in waiting[index + 1 :]:
                    later.mailbox.retract(later_seq)
                raise

    def _open_check(self, pattern: str) -> TypePattern:
        if self._closed:
            raise BusClosed(f"cannot subscribe to {pattern!r}: the event bus is closed")
        return compile_pattern(pattern)

    def _route(self, event_type: str) -> tuple[_HandlerSubscription, ...]:
        subs = self._routes.get(event_type)
        if subs is None:
            if len(self._routes) >= _ROUTE_CACHE_SIZE:
                self._routes.clear()
            subs = tuple(s for s in self._handlers() if s.matches(event_type))
            self._routes[event_type] = subs
        return subs

    def _handlers(self) -> list[_HandlerSubscription]:
        return [s for s in self._subs if isinstance(s, _HandlerSubscription)]

    def _add(self, sub: _Sub) -> None:
        self._subs.append(sub)
        self._routes.clear()

    def _remove(self, sub: _Sub) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            self._routes.clear()
