"""`KafkaBus` against a real Kafka-protocol broker: a private Tansu (memory storage) per
module, and one more per fault test that freezes it. Each test has its own topic."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from fabrica.events import CloudEvent, EventBusError, KafkaBus, lifecycle_event
from fabrica.events.kafka import CONTENT_TYPE
from tests._support.kafka import Tansu, read_topic, start_tansu, topic_name

PREFIX = "io.fabrica"


@pytest.fixture(scope="module")
def broker() -> Iterator[Tansu]:
    tansu = start_tansu()
    yield tansu
    tansu.stop()


@pytest.fixture
async def bus(broker: Tansu) -> AsyncIterator[KafkaBus]:
    async with KafkaBus(broker.bootstrap, topic=topic_name(), partitions=3) as kafka:
        yield kafka


class Recorder:
    def __init__(self) -> None:
        self.events: list[CloudEvent] = []

    async def __call__(self, event: CloudEvent) -> None:
        self.events.append(event)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.events]


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def rack(n: int, action: str = "created", kind: str = "Rack") -> CloudEvent:
    return lifecycle_event(action, kind, kind.lower() + "s", f"rack-{n:08x}", f"r{n}",
                           prefix=PREFIX, source="tests")


def test_importing_events_does_not_import_aiokafka() -> None:
    code = ("import sys, fabrica.events as e; assert 'aiokafka' not in sys.modules; "
            "e.KafkaBus; assert 'aiokafka' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_publish_reaches_matching_subscribers_in_order(bus: KafkaBus) -> None:
    racks, chassis = Recorder(), Recorder()
    await bus.subscribe(f"{PREFIX}.rack.*", racks)
    await bus.subscribe(f"{PREFIX}.chassis.**", chassis)
    sent = [rack(n % 4, "created" if n < 4 else "updated") for n in range(20)]
    for event in sent:
        await bus.publish(event)
    await wait_until(lambda: len(racks.events) == 20)
    for uid in {e.resourceuid for e in sent}:  # one resource's events stay in order
        assert [e.id for e in racks.events if e.resourceuid == uid] == [
            e.id for e in sent if e.resourceuid == uid]
    assert racks.events[0] == next(e for e in sent if e.id == racks.events[0].id)
    assert chassis.events == []


async def test_a_subscriber_starts_after_what_was_stored(bus: KafkaBus) -> None:
    """Events published side by side share record batches, and Tansu's ListOffsets(latest)
    answers a batch's first offset: a subscriber must still start after all of them."""
    await asyncio.gather(*(bus.publish(rack(n)) for n in range(60)))
    seen = Recorder()
    await bus.subscribe("**", seen)
    await bus.publish(last := rack(61))
    await wait_until(lambda: last.id in seen.ids)
    await asyncio.sleep(0.3)  # time for anything before it to show up too
    assert seen.ids == [last.id]


async def test_records_follow_the_cloudevents_kafka_binding(bus: KafkaBus, broker: Tansu
                                                            ) -> None:
    sent = [rack(n) for n in range(6)]
    for event in sent:
        await bus.publish(event)
    records = await read_topic(broker.bootstrap, bus.topic, len(sent))
    assert len(records) == len(sent)
    by_id = {e.id: e for e in sent}
    for record in records:
        assert dict(record.headers) == {"content-type": CONTENT_TYPE}
        value = json.loads(record.value)
        event = by_id[value["id"]]
        assert value == json.loads(event.to_json())
        assert record.key == event.resourceuid.encode()
    assert CONTENT_TYPE == b"application/cloudevents+json; charset=UTF-8"


async def test_topic_is_created_then_reused_with_its_own_partition_count(
        broker: Tansu, caplog: pytest.LogCaptureFixture) -> None:
    topic = topic_name()
    async with KafkaBus(broker.bootstrap, topic=topic, partitions=2) as first:
        await first.publish(rack(1))
    caplog.set_level(logging.INFO, "fabrica.events")
    async with KafkaBus(broker.bootstrap, topic=topic, partitions=5) as second:
        seen = Recorder()
        await second.subscribe("**", seen)
        await second.publish(rack(2))
        await wait_until(lambda: len(seen.events) == 1)
    assert f"Kafka topic {topic} has 2 partitions, not 5: used as is" in caplog.text
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        assert len(described["partitions"]) == 2
    finally:
        await admin.close()
    assert len(await read_topic(broker.bootstrap, topic, 2)) == 2  # both kept, none lost


async def test_a_stream_resumes_right_after_an_event(broker: Tansu) -> None:
    async with KafkaBus(broker.bootstrap, topic=topic_name(), partitions=3,
                        resume_overlap=0.0) as bus:
        sent = [rack(n % 5, "created" if n < 5 else "updated") for n in range(30)]
        for event in sent:
            await bus.publish(event)
        records = await read_topic(broker.bootstrap, bus.topic, len(sent))
        where = {json.loads(r.value)["id"]: (r.partition, r.offset) for r in records}
        mark = sent[11]
        async with bus.stream("**", after=mark.id) as stream:
            assert not stream.resume_failed
            later = rack(99)
            await bus.publish(later)
            got: list[str] = []
            while later.id not in got:
                batch = await stream.next_batch(5.0)
                assert batch, "the stream ended or stalled"
                got.extend(e.id for e in batch)
        wanted = [e.id for e in sent[12:]] + [later.id]
        assert set(wanted) <= set(got)
        partition, offset = where[mark.id]
        assert not [i for i in got if i in where and where[i][0] == partition
                    and where[i][1] <= offset], "its own partition re-read before it"
        async with bus.stream("**", after="no-such-event") as lost:
            assert lost.resume_failed
            await bus.publish(fresh := rack(100))
            assert [e.id for e in await lost.next_batch(5.0) or []] == [fresh.id]


async def test_a_resumed_stream_misses_no_later_event_on_any_partition(broker: Tansu
                                                                       ) -> None:
    """Hundreds of records per partition, published side by side (batches of several
    records): every event published after the resume point arrives, on every partition,
    and with no overlap nothing from before it does."""
    async with KafkaBus(broker.bootstrap, topic=topic_name(), partitions=3,
                        resume_overlap=0.0) as bus:
        before = [rack(n % 40) for n in range(300)]
        await asyncio.gather(*(bus.publish(e) for e in before))
        await asyncio.sleep(0.05)  # later timestamps, whatever the clock's resolution
        mark = rack(1000)
        await bus.publish(mark)
        after = [rack(2000 + n % 40, "updated") for n in range(300)]
        await asyncio.gather(*(bus.publish(e) for e in after))
        where = {json.loads(r.value)["id"]: r.partition
                 for r in await read_topic(broker.bootstrap, bus.topic, 601)}
        assert len(set(where.values())) == 3, "the events did not spread over partitions"
        last = rack(3000)
        got: list[str] = []
        async with bus.stream("**", after=mark.id, maxsize=1000) as stream:
            assert not stream.resume_failed
            await bus.publish(last)
            while last.id not in got:
                batch = await stream.next_batch(5.0)
                assert batch, f"the stream ended or stalled after {len(got)} events"
                got.extend(e.id for e in batch)
    missed = [e.id for e in after if e.id not in got]
    assert not missed, f"{len(missed)} later events missed, on partitions " \
        f"{sorted({where[i] for i in missed})}"
    assert not {e.id for e in before} & set(got), "read again from before the resume point"
    assert mark.id not in got


async def test_a_resumed_stream_reads_no_partition_again_from_its_start(broker: Tansu
                                                                        ) -> None:
    """Partitions with nothing since the resume point are read from their end: a broker
    answering ListOffsets by time with offset 0 for them (Tansu does) must not make a
    resumed stream read them again from the start."""
    async with KafkaBus(broker.bootstrap, topic=topic_name(), partitions=3,
                        resume_overlap=0.0) as bus:
        before = [rack(n) for n in range(30)]
        for event in before:
            await bus.publish(event)
        await asyncio.sleep(0.05)
        mark = rack(1000)
        await bus.publish(mark)
        later = [rack(n, "updated") for n in range(30)]
        got: list[str] = []
        async with bus.stream("**", after=mark.id, maxsize=1000) as stream:
            assert not stream.resume_failed
            for event in later:
                await bus.publish(event)
            while not {e.id for e in later} <= set(got):
                batch = await stream.next_batch(5.0)
                assert batch, f"the stream ended or stalled after {len(got)} events"
                got.extend(e.id for e in batch)
    again = {e.id for e in before} & set(got)
    assert not again, f"{len(again)} events from before the resume point read again"


async def test_partitions_are_placed_at_the_first_record_of_a_time(broker: Tansu) -> None:
    """`offsets_since` against every partition read in full: for timestamps before, among
    and after the records, the first offset at or after each, else the log end. Fetches of
    1 KB make each step see a few records only, so it bisects over many steps."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from fabrica.events.kafka._topic import offsets_since

    async with KafkaBus(broker.bootstrap, topic=topic_name(), partitions=3) as bus:
        for group in range(40):  # records side by side share batches; groups differ in time
            await asyncio.gather(*(bus.publish(rack(10 * group + n)) for n in range(10)))
            await asyncio.sleep(0.003)
        records = await read_topic(broker.bootstrap, bus.topic, 400)
    stamps: dict[int, list[tuple[int, int]]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        stamps.setdefault(record.partition, []).append((record.offset, record.timestamp))
    times = sorted({ts for part in stamps.values() for _, ts in part})
    samples = [times[0] - 1, *times[:: max(1, len(times) // 8)], times[-1], times[-1] + 1]
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=1024, fetch_max_wait_ms=50)
    await consumer.start()
    try:
        tps = [TopicPartition(bus.topic, p) for p in range(3)]
        consumer.assign(tps)
        for since in samples:
            placed = await offsets_since(consumer, tps, since, timeout=10.0)
            for tp in tps:
                part = stamps.get(tp.partition, [])
                want = next((o for o, ts in part if ts >= since), len(part))
                assert placed[tp] == want, (since, tp.partition, part)
    finally:
        await consumer.stop()


async def test_close_delivers_what_was_published(broker: Tansu) -> None:
    got: list[str] = []

    async def slow(event: CloudEvent) -> None:
        await asyncio.sleep(0.002)
        got.append(event.id)

    bus = KafkaBus(broker.bootstrap, topic=topic_name(), partitions=3)
    await bus.start()
    await bus.subscribe("**", slow)
    stream = bus.stream("**", maxsize=500)
    await stream.__aenter__()
    sent = [rack(n) for n in range(150)]
    await asyncio.gather(*(bus.publish(e) for e in sent))
    await bus.close(drain=True, timeout=10.0)
    assert sorted(got) == sorted(e.id for e in sent)
    streamed = [e.id async for e in stream]
    assert sorted(streamed) == sorted(e.id for e in sent)


async def test_publish_fails_fast_without_a_broker() -> None:
    bus = KafkaBus(f"127.0.0.1:{_closed_port()}", topic=topic_name(), request_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(EventBusError, match="127.0.0.1"):
        await bus.start()
    assert time.monotonic() - started < 5
    await bus.close()


def _closed_port() -> int:
    from tests._support.e2e import free_port

    return free_port()


async def test_a_frozen_broker_loses_no_acknowledged_event() -> None:
    """SIGSTOP for 15 s while 250 publishes go on: each answers in bounded time, and the
    topic holds every acknowledged event once, duplicates only of failed ones, same id."""
    tansu = start_tansu()
    timeout = 4.0
    try:
        async with KafkaBus(tansu.bootstrap, topic=topic_name(), partitions=3,
                            publish_timeout=timeout, request_timeout=timeout) as bus:
            seen = Recorder()
            await bus.subscribe("**", seen)
            sent: dict[str, CloudEvent] = {}
            acked: list[str] = []
            failed: list[str] = []
            slowest = 0.0
            frozen = asyncio.Event()

            async def writer(w: int) -> None:
                nonlocal slowest
                for n in range(25):
                    event = rack(1000 * w + n)
                    sent[event.id] = event
                    began = time.monotonic()
                    try:
                        await bus.publish(event)
                        acked.append(event.id)
                    except EventBusError:
                        failed.append(event.id)
                    slowest = max(slowest, time.monotonic() - began)
                    if n == 5:
                        await frozen.wait()
                    await asyncio.sleep(0.05)

            async def freeze() -> None:
                await asyncio.sleep(0.5)
                tansu.freeze()
                frozen.set()
                await asyncio.sleep(15)
                tansu.thaw()

            await asyncio.gather(freeze(), *(writer(w) for w in range(10)))
            assert len(sent) == 250 and len(acked) + len(failed) == 250
            assert failed, "the freeze failed no publish: it did not happen"
            assert slowest < timeout + 2, f"a publish took {slowest:.1f}s to answer"
            first_try = set(acked)
            for event_id in failed:  # as the outbox does: send again until acknowledged
                await bus.publish(sent[event_id])
            await wait_until(lambda: set(sent) <= set(seen.ids), timeout=30)
        records = await read_topic(tansu.bootstrap, bus.topic, len(sent), timeout=30)
    finally:
        tansu.stop()
    ids = Counter(json.loads(r.value)["id"] for r in records)
    assert set(ids) == set(sent)  # a consumer from the start sees every event
    assert all(ids[i] == 1 for i in first_try), "an acknowledged event was duplicated"
    for record in records:  # a duplicate is the same event
        assert CloudEvent.from_json(record.value) == sent[json.loads(record.value)["id"]]
