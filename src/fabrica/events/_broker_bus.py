"""`BrokerBus`: what the buses on a broker (NATS JetStream, Kafka) share.

Both keep their subscriptions (handlers and streams, each reading through a feed of its
own), hold what is published before `start` (at most ``queue_size``, oldest dropped), and
close alike: every feed reads what the broker holds for it, then the connection goes,
then streams finish and handlers deliver what is queued. A subclass says how to connect
(`_connect_broker`), disconnect (`_disconnect_broker`), make and attach a subscription,
check a pattern or an event, and send.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Generic, Protocol, TypeVar

from ._bus import BusClosed, BusContext, EventStream, Handler, Subscription, SubscriptionStats
from ._cloudevent import CloudEvent
from ._delivery import Delivery
from ._delivery import drain as drain_deliveries
from ._waiting_stream import WaitingStream

__all__ = ["BrokerBus"]

log = logging.getLogger("fabrica.events")


class _Feed(Protocol):
    async def stop(self, drain: bool = False, timeout: float = 0.0) -> None: ...


class _Sub(Protocol):
    """A handler subscription (a `Delivery`) or a stream (a `WaitingStream`) with a feed."""

    @property
    def feed(self) -> _Feed: ...

    @property
    def stats(self) -> SubscriptionStats: ...

    async def close(self) -> None: ...


SubT = TypeVar("SubT", bound=_Sub)


class BrokerBus(BusContext, Generic[SubT]):
    def __init__(self, queue_size: int, stream_size: int) -> None:
        if queue_size < 1 or stream_size < 1:
            raise ValueError("queue sizes must be at least 1")
        self._queue_size, self._stream_size = queue_size, stream_size
        self._subs: list[SubT] = []
        self._early: deque[CloudEvent] = deque()
        self._start_lock = asyncio.Lock()
        self._closed = False

    # -- what a transport says ------------------------------------------------------------

    @property
    def _started(self) -> bool:
        """Whether `start` has connected (and `close` has not disconnected)."""
        raise NotImplementedError

    async def _connect_broker(self) -> None:
        """Connect and set up the broker's side; `EventBusError` when it cannot."""
        raise NotImplementedError

    async def _disconnect_broker(self, deadline: float) -> None:
        """Disconnect, by `deadline` (the loop's time) when it can."""
        raise NotImplementedError

    def _new_subscription(self, handler: Handler, name: str, pattern: str) -> SubT:
        raise NotImplementedError

    def _new_stream(self, pattern: str, size: int, after: str | None) -> SubT:
        raise NotImplementedError

    async def _attach(self, sub: SubT) -> None:
        """Start `sub` reading the broker."""
        raise NotImplementedError

    async def _send(self, event: CloudEvent) -> None:
        raise NotImplementedError

    def _check_pattern(self, pattern: str) -> None:
        """ValueError when `pattern` cannot be subscribed to."""
        raise NotImplementedError

    def _check_event(self, event: CloudEvent) -> None:
        """ValueError when `event` cannot be published (checked before it is held)."""

    def _attach_failure(self, stream: SubT, exc: Exception) -> str:
        """The log line of a stream that could not attach in the background."""
        return str(exc)

    # -- shared ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self) -> None:
        """Connect, set up the broker's side, start what was subscribed and send what was
        published so far. Raises `EventBusError` when it cannot."""
        if self._closed:
            raise BusClosed("the event bus is closed and cannot be started again")
        async with self._start_lock:
            if not self._started:
                await self._connect_broker()
            for sub in list(self._subs):
                await self._attach(sub)
            while self._early and not self._closed:
                await self._send(self._early.popleft())

    async def publish(self, event: CloudEvent) -> None:
        if self._closed:
            raise BusClosed(f"cannot publish {event.type}: the event bus is closed")
        self._check_event(event)
        if not self._started:
            if len(self._early) >= self._queue_size:
                dropped = self._early.popleft()
                log.error("event %s (id %s) dropped: %d events published before the bus "
                          "started", dropped.type, dropped.id, self._queue_size)
            self._early.append(event)
            return
        await self._send(event)

    async def subscribe(
        self, pattern: str, handler: Handler, *, name: str | None = None
    ) -> Subscription:
        """Call `handler` for each event whose type matches `pattern` (ValueError if invalid).

        Once this returns on a started bus, it reads every event stored from then on.
        """
        self._open_check(pattern)
        label = name or getattr(handler, "__qualname__", None) or repr(handler)
        sub = self._new_subscription(handler, label, pattern)
        self._subs.append(sub)
        if self._started:
            await self._attach(sub)
        assert isinstance(sub, Delivery)
        return sub

    def stream(self, pattern: str = "**", *, maxsize: int | None = None,
               after: str | None = None) -> EventStream:
        """A bounded iterator of matching events; its reader waits when it is full.

        Its reader is made in the background: enter it (``async with``) to wait until it
        reads. With `after` (an event id), it reads from right after that event, then on
        live (the transport's `stream` says how exactly).
        """
        self._open_check(pattern)
        stream = self._new_stream(pattern, maxsize or self._stream_size, after)
        assert isinstance(stream, WaitingStream)
        self._subs.append(stream)
        if self._started:
            stream.ready = asyncio.create_task(self._attach_quietly(stream),
                                               name=f"fabrica.events:{stream.name}")
        return stream

    async def close(self, drain: bool = True, timeout: float = 5.0) -> None:
        """Stop. With `drain`, first let every subscriber read what the broker holds for it
        and deliver what is queued, all within `timeout` seconds."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        subs = list(self._subs)
        streams: list[WaitingStream] = []
        handlers: list[Delivery] = []
        for sub in subs:
            if isinstance(sub, WaitingStream):
                streams.append(sub)
            elif isinstance(sub, Delivery):
                handlers.append(sub)
        for stream in streams:
            if stream.ready is not None:
                stream.ready.cancel()
        if self._early:
            log.warning("event bus closed before it started: %d events unsent", len(self._early))
            self._early.clear()
        async with self._start_lock:
            await asyncio.gather(*(s.feed.stop(drain, timeout) for s in subs))
            await self._disconnect_broker(deadline)
        for stream in streams:
            if drain:
                stream.finish()
            else:
                await stream.close()
        if drain:
            await drain_deliveries(handlers, max(0.0, deadline - loop.time()))
        for sub in subs:
            if not isinstance(sub, WaitingStream):
                await sub.close()  # a handler's: it stops its task
        self._subs.clear()

    def stats(self) -> list[SubscriptionStats]:
        return [sub.stats for sub in self._subs]

    def _open_check(self, pattern: str) -> None:
        if self._closed:
            raise BusClosed(f"cannot subscribe to {pattern!r}: the event bus is closed")
        self._check_pattern(pattern)

    def _forget(self, sub: SubT) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    async def _attach_quietly(self, stream: SubT) -> BaseException | None:
        try:
            await self._attach(stream)
        except Exception as exc:  # reported by the stream's __aenter__
            log.error("%s", self._attach_failure(stream, exc))
            return exc
        return None
