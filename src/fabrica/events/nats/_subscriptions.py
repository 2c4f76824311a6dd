"""`NatsBus`'s subscriptions: a handler or a stream, each fed by its own `Feed`.

A handler subscription is a `Delivery` (bounded queue, own task, counted failures): an
event that finds its queue full waits ``publish_timeout`` seconds for room, then is
dropped for that handler and counted. Remote publishers are never slowed by it.

A stream (`WaitingStream`) waits for its reader instead of evicting: the events stay in
JetStream meanwhile, so a slow reader is late, never skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import nats.errors
from nats.js import JetStreamContext

from .._bus import Handler
from .._cloudevent import CloudEvent
from .._delivery import Delivery
from .._waiting_stream import WaitingStream
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


class NatsEventStream(WaitingStream):
    """A stream (`EventStream`); it reads JetStream once ``async with`` has entered.

    Started `after` an event id, it finds that event in the stream when it attaches and
    reads from the next one on; when the stream no longer holds it, it reads from now and
    says so (``resume_failed``).
    """

    def __init__(self, forget: Forget, pattern: str, size: int, after: str | None) -> None:
        super().__init__(pattern, size)
        self._forget = forget
        self.feed = Feed(self._name, pattern, self.offer)
        self.after = after

    async def attach(self, js: JetStreamContext, setting: JetStream) -> None:
        after, self.after = self.after, None  # found once; a re-attach resumes by itself
        if after is not None and not self.feed.attached:
            found = await self._find(js, setting, after)
            self._resume_failed = found is None
            if found is not None:
                self.feed.start_seq = found + 1
        await self.feed.attach(js, setting)

    async def _stop_reading(self) -> None:
        self._forget(self)
        await self.feed.stop()

    async def _find(self, js: JetStreamContext, setting: JetStream, event_id: str) -> int | None:
        try:
            return await find_sequence(js, setting, event_id)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("subscriber %s cannot look up event %s in JetStream stream %s: %r",
                        self._name, event_id, setting.stream, exc)
            return None
