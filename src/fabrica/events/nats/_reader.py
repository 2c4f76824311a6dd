"""Reading the service's stream: what one subscription gets of it, and from where.

A subscription reads the part of the stream its pattern can match (`Feed`): one
`StreamReader`, an ephemeral pull consumer, per NATS subject of the pattern, each in
stream order. Two subjects (``P.**`` is ``P`` and ``P.>``) are two readers, so an event of
type exactly ``P`` is not ordered against the events below ``P``.

A reader resumes after the last event it delivered whenever its consumer is lost (NATS
restarted, or the connection was down longer than the consumer's inactivity limit): an
outage delays events, it skips none the stream still holds. Stopped with `drain`, a reader
first delivers what the stream holds for it at that moment, so a bus closing with drain
hands its subscribers every event published before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from .._cloudevent import CloudEvent
from ._jetstream import JetStream, intersect_subjects
from ._subjects import subjects_of

__all__ = ["Feed", "StreamReader"]

log = logging.getLogger("fabrica.events")

#: Seconds a stopping reader waits for NATS to delete its consumer: not the request timeout,
#: so a stream ended while NATS is down does not hold up a client or a server's stop.
_DELETE_TIMEOUT = 1.0


class StreamReader:
    """Feeds the messages of one filter subject of the stream to `deliver`, in stream order.

    Its pull consumer (held in the server's memory, no acks) starts right after the
    stream's last event, or at `start_seq`. `delivered_seq` is the stream sequence of the
    last message delivered; a consumer made after a loss starts right after it.
    """

    def __init__(
        self,
        js: JetStreamContext,
        setting: JetStream,
        subject: str,
        deliver: Callable[[Msg], Awaitable[None]],
        *,
        name: str,
        start_seq: int | None = None,
        batch: int = 256,
    ) -> None:
        self._js, self._setting, self.subject = js, setting, subject
        self._deliver, self._name, self._batch = deliver, name, batch
        self.delivered_seq = None if start_seq is None else start_seq - 1
        self._consumer: str | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._received = 0  # consumer sequence of the last message received from it
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = False  # waiting (fetch, pause): a cancel there loses nothing

    async def open(self) -> None:
        """Create the consumer; raises what NATS raises (the caller reports it)."""
        start = self.delivered_seq
        if start is None:
            start = (await self._js.stream_info(self._setting.stream)).state.last_seq
            self.delivered_seq = start
        info = await self._js.add_consumer(self._setting.stream, ConsumerConfig(
            description=f"fabrica subscriber {self._name}",
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start + 1,
            ack_policy=AckPolicy.NONE, filter_subject=self.subject, mem_storage=True,
            inactive_threshold=max(30.0, 10 * self._setting.heartbeat), num_replicas=1,
        ))
        self._consumer, self._received = info.name, 0
        self._sub = await self._js.pull_subscribe_bind(info.name, self._setting.stream)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                self._run(), name=f"fabrica.events:{self._name}:{self.subject}")

    async def stop(self, drain: bool, timeout: float) -> None:
        """Stop reading and delete the consumer. With `drain`, first deliver (within
        `timeout` seconds) what the stream holds for this reader now."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        task, self._task = self._task, None
        interrupted = False
        if task is not None:
            self._stopping = True
            if self._idle or not drain:
                task.cancel()
                interrupted = True
            _, late = await asyncio.wait({task}, timeout=timeout)
            if late:
                task.cancel()
                interrupted = True
                await asyncio.gather(task, return_exceptions=True)
        if drain:
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await self._catch_up(interrupted)
            except Exception as exc:  # the rest stays in the stream
                log.warning("subscriber %s could not read the rest of JetStream stream %s on "
                            "closing: %r", self._name, self._setting.stream, exc)
        await self._close()

    async def _run(self) -> None:
        """Deliver until stopped; re-create the consumer whenever it is lost."""
        failures = 0
        while not self._stopping:
            try:
                if self._sub is None:
                    await self.open()
                    if failures:
                        log.warning("subscriber %s resumed on JetStream stream %s after event "
                                    "%d", self._name, self._setting.stream, self.delivered_seq)
                    failures = 0
                if self._stopping:
                    return  # stopped while opening: `stop` goes on from here
                await self._pull()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS down or the consumer gone: start over after a pause
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "subscriber %s lost its JetStream consumer on %s: %r; retrying",
                        self._name, self._setting.stream, exc)
                await self._drop()
                self._idle = True
                try:
                    await asyncio.sleep(min(self._setting.heartbeat * failures, 5.0))
                finally:
                    self._idle = False

    async def _catch_up(self, interrupted: bool) -> None:
        """Deliver until the consumer has nothing left that this reader has not delivered."""
        if interrupted or self._sub is None:
            # A fetch cancelled midway loses what it had taken: read again after the last
            # event delivered, from a new consumer.
            await self._close()
            await self.open()
        assert self._sub is not None
        while True:
            info = await self._sub.consumer_info()
            sent = info.delivered.consumer_seq if info.delivered is not None else 0
            if not info.num_pending and (sent or 0) <= self._received:
                return
            await self._pull()

    async def _pull(self) -> None:
        assert self._sub is not None
        self._idle = True
        try:
            msgs = await self._sub.fetch(self._batch, timeout=self._setting.heartbeat)
        except (TimeoutError, nats.errors.TimeoutError):
            await self._sub.consumer_info()  # idle, or lost? NotFoundError says lost
            return
        finally:
            self._idle = False
        for msg in msgs:
            self._received = max(self._received, msg.metadata.sequence.consumer)
            if msg.metadata.sequence.stream <= (self.delivered_seq or 0):
                continue  # already delivered before a consumer was re-created
            await self._deliver(msg)
            self.delivered_seq = msg.metadata.sequence.stream

    async def _close(self) -> None:
        consumer = self._consumer
        await self._drop()
        if consumer is not None:  # a courtesy: unread, it goes by itself after a while
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_DELETE_TIMEOUT):
                    await self._js.delete_consumer(self._setting.stream, consumer)

    async def _drop(self) -> None:
        sub, self._sub, self._consumer = self._sub, None, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


class Feed:
    """What one subscription reads of the stream, decoded, handed to `deliver` in order.

    `start_seq` (a stream sequence) makes it read from there instead of from now.
    """

    def __init__(
        self, name: str, pattern: str, deliver: Callable[[CloudEvent], Awaitable[None]]
    ) -> None:
        self.name, self.pattern, self._deliver = name, pattern, deliver
        self.subjects = subjects_of(pattern)
        self.start_seq: int | None = None
        self.attached = False
        self._readers: list[StreamReader] = []
        self._undecodable = 0

    async def attach(self, js: JetStreamContext, setting: JetStream) -> None:
        """Start reading the part of `setting`'s stream this pattern can match."""
        if self.attached:
            return
        self.attached = True
        filters = [f for subject in self.subjects for held in setting.subjects
                   if (f := intersect_subjects(subject, held)) is not None]
        if not filters:
            log.warning("subscriber %s (%s) matches nothing in JetStream stream %s (%s)",
                        self.name, self.pattern, setting.stream, ", ".join(setting.subjects))
        for subject in filters:
            reader = StreamReader(js, setting, subject, self._receive, name=self.name,
                                  start_seq=self.start_seq)
            await reader.open()
            self._readers.append(reader)
            reader.start()

    async def stop(self, drain: bool = False, timeout: float = 0.0) -> None:
        """Stop reading; with `drain`, first deliver what the stream holds (see `StreamReader`)."""
        readers, self._readers = self._readers, []
        await asyncio.gather(*(reader.stop(drain, timeout) for reader in readers))

    async def _receive(self, msg: Msg) -> None:
        try:
            event = CloudEvent.from_json(msg.data)
        except ValueError as exc:
            self._ignore(msg.subject, f"not a structured CloudEvent ({exc})")
            return
        if event.type != msg.subject:
            self._ignore(msg.subject, f"its type {event.type!r} is not its subject")
            return
        await self._deliver(event)

    def _ignore(self, subject: str, why: str) -> None:
        self._undecodable += 1
        level = logging.WARNING if self._undecodable == 1 else logging.DEBUG
        log.log(level, "subscriber %s ignores a NATS message on %s: %s", self.name, subject, why)
