"""Reading the topic: what one subscription gets of it, and from where.

Each subscription reads through a `TopicReader` of its own: one consumer without a group,
assigned every partition of the topic, starting at each partition's end when it
subscribes (or at given offsets), and delivering each partition's records in order. It
keeps the offset after the last record it delivered of each partition: when the consumer
fails (the broker was lost, the connection reset) it is made again and seeks there, so an
outage delays events, it skips none the topic still holds. Stopped with `drain`, a reader
first delivers what the topic holds for it at that moment, so a bus closing with drain
hands its subscribers every event published before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from .._cloudevent import CloudEvent
from .._patterns import compile_pattern
from ._records import decode
from ._topic import log_ends, partitions_of

__all__ = ["Feed", "TopicReader"]

log = logging.getLogger("fabrica.events")

Connect = Callable[[], AIOKafkaConsumer]
Record = Any  # aiokafka.structs.ConsumerRecord (aiokafka ships no types)


class TopicReader:
    """Feeds the records of every partition of `topic` to `deliver`, each partition in order.

    `positions` maps a partition to the next offset to deliver; the partitions it lacks
    start at their end when the reader opens.
    """

    def __init__(self, connect: Connect, topic: str,
                 deliver: Callable[[Record], Awaitable[None]], *, name: str,
                 timeout: float, positions: dict[int, int] | None = None,
                 batch: int = 500) -> None:
        self._connect, self.topic, self._deliver = connect, topic, deliver
        self._name, self._timeout, self._batch = name, timeout, batch
        self.positions: dict[int, int] = dict(positions or {})
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = False  # waiting (poll, pause): a cancel there loses nothing

    async def open(self) -> None:
        """Make the consumer and seek; raises what aiokafka raises (the caller reports it)."""
        consumer = self._connect()
        try:
            async with asyncio.timeout(self._timeout):
                await consumer.start()
                tps = await partitions_of(consumer, self.topic)
                consumer.assign(tps)
                missing = [tp for tp in tps if tp.partition not in self.positions]
                if missing:
                    ends = await log_ends(consumer, missing, self._timeout)
                    self.positions.update({tp.partition: ends[tp] for tp in missing})
                for tp in tps:
                    consumer.seek(tp, self.positions[tp.partition])
        except BaseException:
            await _stop(consumer)
            raise
        self._consumer = consumer

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"fabrica.events:{self._name}")

    async def stop(self, drain: bool, timeout: float) -> None:
        """Stop reading. With `drain`, first deliver (within `timeout` seconds) what the
        topic holds for this reader now."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            if self._idle or not drain:
                task.cancel()
            _, late = await asyncio.wait({task}, timeout=timeout)
            if late:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if drain:
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await self._catch_up()
            except Exception as exc:  # the rest stays in the topic
                log.warning("subscriber %s could not read the rest of Kafka topic %s on "
                            "closing: %r", self._name, self.topic, exc)
        await self._drop()

    async def _run(self) -> None:
        """Deliver until stopped; make the consumer again whenever it fails."""
        failures = 0
        while not self._stopping:
            try:
                if self._consumer is None:
                    await self.open()
                    if failures:
                        log.warning("subscriber %s resumed on Kafka topic %s at %s",
                                    self._name, self.topic, self.positions)
                    failures = 0
                if self._stopping:
                    return  # stopped while opening: `stop` goes on from here
                await self._poll(1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker lost, or the consumer failed: start over
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "subscriber %s lost its Kafka consumer on %s: %r; retrying",
                        self._name, self.topic, exc)
                await self._drop()
                self._idle = True
                try:
                    await asyncio.sleep(min(0.2 * failures, 5.0))
                finally:
                    self._idle = False

    async def _catch_up(self) -> None:
        """Deliver until every partition's position has reached the log end of now."""
        if self._consumer is None:
            await self.open()
        consumer = self._consumer
        assert consumer is not None
        tps = [TopicPartition(self.topic, p) for p in sorted(self.positions)]
        ends = await log_ends(consumer, tps, self._timeout)
        for tp in tps:
            consumer.seek(tp, self.positions[tp.partition])
        while any(self.positions[tp.partition] < ends[tp] for tp in tps):
            await self._poll(100)

    async def _poll(self, timeout_ms: int) -> None:
        consumer = self._consumer
        assert consumer is not None
        self._idle = True
        try:
            batch: dict[TopicPartition, list[Record]] = await consumer.getmany(
                timeout_ms=timeout_ms, max_records=self._batch)
        finally:
            self._idle = False
        for tp, records in batch.items():
            for record in records:
                if record.offset < self.positions.get(tp.partition, 0):
                    continue  # delivered before the consumer was made again
                await self._deliver(record)
                self.positions[tp.partition] = record.offset + 1

    async def _drop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await _stop(consumer)


async def _stop(consumer: AIOKafkaConsumer) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):  # a lost broker must not hold up a close
            await consumer.stop()


class Feed:
    """What one subscription reads of the topic, decoded and filtered by its pattern,
    handed to `deliver` in order. `positions` (partition -> offset) makes it start there."""

    def __init__(self, name: str, pattern: str,
                 deliver: Callable[[CloudEvent], Awaitable[None]]) -> None:
        self.name, self.pattern, self._deliver = name, pattern, deliver
        self._matcher = compile_pattern(pattern)
        self.positions: dict[int, int] = {}
        self.reader: TopicReader | None = None
        self._undecodable = 0

    @property
    def attached(self) -> bool:
        return self.reader is not None

    async def attach(self, connect: Connect, topic: str, timeout: float) -> None:
        """Start reading `topic`, from its end or from `positions`."""
        if self.reader is not None:
            return
        reader = TopicReader(connect, topic, self._receive, name=self.name, timeout=timeout,
                             positions=self.positions)
        await reader.open()
        self.reader = reader
        reader.start()

    async def stop(self, drain: bool = False, timeout: float = 0.0) -> None:
        """Stop reading; with `drain`, first deliver what the topic holds (see `TopicReader`)."""
        reader, self.reader = self.reader, None
        if reader is not None:
            await reader.stop(drain, timeout)

    async def _receive(self, record: Record) -> None:
        try:
            event = decode(record.value)
        except ValueError as exc:
            self._undecodable += 1
            level = logging.WARNING if self._undecodable == 1 else logging.DEBUG
            log.log(level, "subscriber %s ignores Kafka record %s/%d@%d: not a structured "
                    "CloudEvent (%s)", self.name, record.topic, record.partition,
                    record.offset, exc)
            return
        if self._matcher.matches(event.type):
            await self._deliver(event)
