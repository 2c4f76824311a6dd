"""`KafkaBus`'s subscriptions: a handler or a stream, each fed by its own `Feed`.

A handler subscription is a `Delivery` (bounded queue, own task, counted failures): an
event that finds its queue full waits ``publish_timeout`` seconds for room, then is
dropped for that handler and counted. Remote publishers are never slowed by it.

A stream (`WaitingStream`) waits for its reader instead of evicting: the events stay in
the topic meanwhile, so a slow reader is late, never skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka.errors import KafkaError

from .._bus import Handler
from .._cloudevent import CloudEvent
from .._delivery import Delivery
from .._waiting_stream import WaitingStream
from ._reader import Connect, Feed
from ._topic import Position, find_position, offsets_since

__all__ = ["KafkaEventStream", "KafkaSubscription"]

log = logging.getLogger("fabrica.events")

Forget = Callable[["KafkaSubscription | KafkaEventStream"], None]


class KafkaSubscription(Delivery):
    """A handler subscription (`Subscription`)."""

    def __init__(self, forget: Forget, handler: Handler, name: str, pattern: str, size: int,
                 timeout: float) -> None:
        super().__init__(handler, name, pattern, size)
        self._forget, self._timeout = forget, timeout
        self.feed = Feed(name, pattern, self._offer)

    async def attach(self, connect: Connect, topic: str, timeout: float) -> None:
        self.start()
        await self.feed.attach(connect, topic, timeout)

    async def close(self) -> None:
        """End the subscription: stop reading; what is still queued is dropped."""
        self._forget(self)
        await self.feed.stop()
        await self.stop()

    async def _offer(self, event: CloudEvent) -> None:
        await self.put(event, self._timeout)


class KafkaEventStream(WaitingStream):
    """A stream (`EventStream`); it reads the topic once ``async with`` has entered.

    Started `after` an event id, it finds that event's record when it attaches and reads
    its partition from the next record on; the other partitions, whose order against it
    no record tells, from `overlap` seconds before its timestamp, so a resuming client may
    see an event again (same id) but misses none. When the topic no longer holds the
    event, it reads from now and says so (``resume_failed``).
    """

    def __init__(self, forget: Forget, pattern: str, size: int, after: str | None,
                 overlap: float) -> None:
        super().__init__(pattern, size)
        self._forget, self._overlap = forget, overlap
        self.feed = Feed(self._name, pattern, self.offer)
        self.after = after

    async def attach(self, connect: Connect, topic: str, timeout: float) -> None:
        after, self.after = self.after, None  # found once; a re-attach resumes by itself
        if after is not None and not self.feed.attached:
            found = await self._find(connect, topic, after, timeout)
            self._resume_failed = found is None
        await self.feed.attach(connect, topic, timeout)

    async def _stop_reading(self) -> None:
        self._forget(self)
        await self.feed.stop()

    async def _find(self, connect: Connect, topic: str, event_id: str,
                    timeout: float) -> Position | None:
        consumer = connect()
        try:
            await consumer.start()
            found = await find_position(consumer, topic, event_id, timeout=timeout)
            if found is not None:
                since = found.timestamp - int(1000 * self._overlap)
                others = [tp for tp in sorted(consumer.assignment(), key=lambda t: t.partition)
                          if tp.partition != found.partition]
                # Where nothing is that recent: from their end as of now, not as of the
                # reader's start.
                places = await offsets_since(consumer, others, since, timeout) if others else {}
                self.feed.positions.update({tp.partition: at for tp, at in places.items()})
                self.feed.positions[found.partition] = found.offset + 1
            return found
        except (TimeoutError, KafkaError) as exc:
            log.warning("subscriber %s cannot look up event %s in Kafka topic %s: %r",
                        self._name, event_id, topic, exc)
            return None
        finally:
            await consumer.stop()
