"""The Kafka topic a service's events are kept in: its setup, its ends and lookups in it.

`ensure_topic` creates the topic with the wanted partition count when it is missing and
reuses it when present: a topic with another partition count is used as is (changing it
would move keys between partitions and break per-resource order), with a log line.

`log_ends` gives the offset after each partition's last record. Tansu answers
ListOffsets(latest) with the first offset of its last record batch plus one, not the
log end, so this fetches once from there: a fetch's high watermark is right on both.

`find_position` finds an event by id (``GET /events`` with ``Last-Event-ID``): Kafka
indexes records by offset and time, not by id, so it reads values backwards from each
partition's end in growing windows, within a bound, as `find_sequence` does on JetStream.

`offsets_since` places partitions at a time by reading records' timestamps (a bisection
over offsets), not with ListOffsets by time: Tansu answers that at the granularity of its
record batches, and with offset 0, not "none", when every record is older, which would
make a resumed stream read a whole partition again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from .._bus import EventBusError
from ._records import decode, id_needle

__all__ = ["Position", "ensure_topic", "find_position", "log_ends", "offsets_since",
           "partitions_of"]

log = logging.getLogger("fabrica.events")


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record is: its partition, offset and timestamp (ms)."""

    partition: int
    offset: int
    timestamp: int


async def ensure_topic(admin: AIOKafkaAdminClient, topic: str, partitions: int,
                       replication: int) -> int:
    """Create `topic` when missing; its partition count (the one it has when it exists)."""
    if topic not in await admin.list_topics():
        try:
            result = await admin.create_topics([NewTopic(topic, partitions, replication)])
            for _, code, message, *_ in getattr(result, "topic_errors", ()):
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise EventBusError(f"cannot create Kafka topic {topic}: {message} "
                                        f"(error {code})")
                if code == 0:
                    log.info("Kafka topic %s created with %d partitions", topic, partitions)
        except TopicAlreadyExistsError:
            pass  # another process made it meanwhile
    described = await admin.describe_topics([topic])
    have = len(described[0]["partitions"]) if described else 0
    if have == 0:
        raise EventBusError(f"Kafka topic {topic} has no partitions")
    if have != partitions:
        log.warning("Kafka topic %s has %d partitions, not %d: used as is", topic, have,
                    partitions)
    return have


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, in order (after a metadata request)."""
    await consumer.topics()
    found = consumer.partitions_for_topic(topic) or set()
    if not found:
        raise EventBusError(f"Kafka topic {topic} is unknown to the broker")
    return [TopicPartition(topic, p) for p in sorted(found)]


async def log_ends(consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                   timeout: float) -> dict[TopicPartition, int]:
    """The offset after each partition's last record (see the module docstring). It moves
    `consumer`'s positions: seek before reading."""
    listed: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    for tp in tps:
        consumer.seek(tp, listed[tp])
    async with asyncio.timeout(timeout):
        while any(consumer.highwater(tp) is None for tp in tps):
            await consumer.getmany(*tps, timeout_ms=50)
    return {tp: max(listed[tp], consumer.highwater(tp) or 0) for tp in tps}


async def find_position(consumer: AIOKafkaConsumer, topic: str, event_id: str, *,
                        timeout: float, limit: int = 100_000, window: int = 1024
                        ) -> Position | None:
    """Where the record of `event_id` is, newest first, or None when the topic no longer
    (or never) held it among the newest `limit` records of each partition. Uses (and
    leaves assigned) `consumer`, which must have no group."""
    tps = await partitions_of(consumer, topic)
    consumer.assign(tps)
    ends = await log_ends(consumer, tps, timeout)
    starts: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
    needle = id_needle(event_id)
    scanned = 0
    while scanned < limit and any(ends[tp] > starts[tp] for tp in tps):
        for tp in tps:
            low = max(starts[tp], ends[tp] - window)
            if low < ends[tp]:
                found = await _scan(consumer, tp, low, ends[tp], needle, event_id)
                if found is not None:
                    return found
                ends[tp] = low
        scanned += window
        window *= 4
    return None


async def offsets_since(consumer: AIOKafkaConsumer, tps: list[TopicPartition], since: int,
                        timeout: float) -> dict[TopicPartition, int]:
    """The first offset of each partition whose record has a timestamp of `since` (ms) or
    later, else its log end as of now. It bisects over offsets (O(log n) fetches, all
    partitions in step, each step within `timeout`; a fetch's whole run of records narrows
    it, so it mostly ends in a few), taking timestamps as rising along a partition: out of
    order, it may place a partition earlier or later by the disorder (the caller's overlap
    covers it). It moves `consumer`'s positions."""
    ends = await log_ends(consumer, tps, timeout)
    low: dict[TopicPartition, int] = dict(await consumer.beginning_offsets(tps))
    high = dict(ends)
    while pending := [tp for tp in tps if low[tp] < high[tp]]:
        mids = {tp: (low[tp] + high[tp]) // 2 for tp in pending}
        async with asyncio.timeout(timeout):
            runs = await _records_from(consumer, mids)
        for tp, mid in mids.items():
            records = [r for r in runs[tp] if r.offset < high[tp]]
            # A record without a timestamp (-1) counts as recent: read rather than skip.
            recent = next((r for r in records if not 0 <= r.timestamp < since), None)
            if recent is None and records:
                low[tp] = records[-1].offset + 1
            elif recent is None or recent is records[0]:
                high[tp] = mid  # nothing from `mid` to `high` (a gap), or recent from `mid`
            else:
                low[tp] = high[tp] = recent.offset  # the one before it is older
    return low


async def _records_from(consumer: AIOKafkaConsumer, at: dict[TopicPartition, int]
                        ) -> dict[TopicPartition, list[Any]]:
    """The records one fetch gives from each given offset on, in order; none where the
    partition holds none there (its position has reached the high watermark)."""
    for tp, offset in at.items():
        consumer.seek(tp, offset)
    runs: dict[TopicPartition, list[Any]] = {}
    waiting = set(at)
    while waiting:
        batch = await consumer.getmany(*waiting, timeout_ms=100)
        for tp in list(waiting):
            if records := batch.get(tp):
                runs[tp] = records
                waiting.discard(tp)
            elif (hw := consumer.highwater(tp)) is not None and await consumer.position(tp) >= hw:
                runs[tp] = []
                waiting.discard(tp)
    return runs


async def _scan(consumer: AIOKafkaConsumer, tp: TopicPartition, low: int, high: int,
                needle: bytes, event_id: str) -> Position | None:
    """Offsets `low`..`high`-1 of one partition, newest match first."""
    consumer.seek(tp, low)
    found: Position | None = None
    offset = low
    while offset < high:
        batch = await consumer.getmany(tp, timeout_ms=1000, max_records=4096)
        records = batch.get(tp, [])
        if not records:
            break  # the rest was deleted meanwhile
        for record in records:
            offset = record.offset + 1
            if record.offset >= high:
                break
            if record.value is not None and needle in record.value:
                try:
                    if decode(record.value).id == event_id:
                        found = Position(tp.partition, record.offset, record.timestamp)
                except ValueError:
                    continue
    return found
