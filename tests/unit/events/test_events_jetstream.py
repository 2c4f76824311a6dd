"""`NatsBus` on JetStream, against real NATS servers: the shared one, and private ones that
the outage tests stop and start again. Each test has its own prefix and stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import nats
import nats.js.api
import pytest

from fabrica.events import CloudEvent, EventBusError, JetStream, NatsBus, lifecycle_event
from fabrica.events.nats._jetstream import intersect_subjects
from tests._support.nats import URL, NatsServer, drop_stream, names
from tests._support.wait import eventually


class Recorder:
    def __init__(self) -> None:
        self.events: list[CloudEvent] = []

    async def __call__(self, event: CloudEvent) -> None:
        self.events.append(event)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.events]


def rack(prefix: str, n: int, action: str = "created", kind: str = "Rack") -> CloudEvent:
    return lifecycle_event(action, kind, kind.lower() + "s", f"rack-{n:08x}", f"r{n}",
                           prefix=prefix, source="tests")


@pytest.fixture
async def place() -> AsyncIterator[tuple[str, str]]:
    prefix, stream = names()
    yield prefix, stream
    await drop_stream(stream)


def bus_for(place: tuple[str, str], url: str = URL, **limits: Any) -> NatsBus:
    prefix, stream = place
    return NatsBus(url, name="fabrica-tests", reconnect_time_wait=0.05,
                   jetstream=JetStream.for_prefix(stream, prefix, heartbeat=0.2, **limits))


async def read_all(url: str, subject: str, expected: int, timeout: float = 5.0) -> list[Any]:
    """What an external nats-py consumer reads from the start of the stream."""
    nc = await nats.connect(url)
    try:
        sub = await nc.jetstream().subscribe(
            subject, ordered_consumer=True, deliver_policy=nats.js.api.DeliverPolicy.ALL)
        msgs = []
        while len(msgs) < expected:
            msgs.append(await sub.next_msg(timeout=timeout))
        try:
            msgs.append(await sub.next_msg(timeout=0.3))  # and nothing more
        except nats.errors.TimeoutError:
            pass
        return msgs
    finally:
        await nc.close()


@pytest.mark.parametrize("a, b, both", [
    (">", "io.fabrica.>", "io.fabrica.>"),
    ("io.fabrica.>", ">", "io.fabrica.>"),
    ("io.*.rack.created", "io.fabrica.>", "io.fabrica.rack.created"),
    ("io.fabrica", "io.fabrica.>", None),
    ("other.>", "io.fabrica.>", None),
    ("io.fabrica.*", "io.fabrica.rack", "io.fabrica.rack"),
    ("io.fabrica.*", "io.fabrica.rack.x", None),
])
def test_subject_intersection(a, b, both):
    assert intersect_subjects(a, b) == both


def test_bad_stream_settings_are_refused():
    for name in ("", "a.b", "a b", "a*"):
        with pytest.raises(ValueError, match="stream name"):
            JetStream(name, ("x.>",))
    with pytest.raises(ValueError):
        JetStream("S", ())
    with pytest.raises(ValueError):
        JetStream("S", ("x.>",), heartbeat=0)


async def test_events_are_stored_and_an_external_consumer_reads_them_from_the_start(place):
    prefix, stream = place
    events = [rack(prefix, n) for n in range(50)]
    async with bus_for(place) as bus:
        for event in events:
            await bus.publish(event)
    msgs = await read_all(URL, f"{prefix}.>", len(events))
    assert [CloudEvent.from_json(m.data).id for m in msgs] == [e.id for e in events]
    assert [m.subject for m in msgs] == [e.type for e in events]
    assert all(m.headers["Nats-Msg-Id"] == CloudEvent.from_json(m.data).id for m in msgs)


async def test_a_resent_event_is_stored_once(place):
    prefix, _ = place
    event = rack(prefix, 1)
    async with bus_for(place) as bus:
        for _ in range(3):
            await bus.publish(event)
        await bus.publish(rack(prefix, 2))
    msgs = await read_all(URL, f"{prefix}.>", 2)
    assert [CloudEvent.from_json(m.data).id for m in msgs][:1] == [event.id]
    assert len(msgs) == 2


async def test_the_stream_is_created_then_reused_with_new_limits(place):
    prefix, stream = place
    async with bus_for(place, max_age=3600, max_bytes=10 << 20) as bus:
        await bus.publish(rack(prefix, 1))
    async with bus_for(place, max_age=7200, max_bytes=20 << 20) as bus:
        await bus.publish(rack(prefix, 2))
    nc = await nats.connect(URL)
    try:
        info = await nc.jetstream().stream_info(stream)
    finally:
        await nc.close()
    assert info.config.subjects == [f"{prefix}.>"]
    assert info.config.max_age == 7200 and info.config.max_bytes == 20 << 20
    assert info.config.retention == nats.js.api.RetentionPolicy.LIMITS
    assert info.state.messages == 2  # reusing kept what was stored


async def test_two_services_with_one_prefix_are_refused_clearly(place):
    prefix, stream = place
    async with bus_for(place):
        other = NatsBus(URL, jetstream=JetStream.for_prefix(stream + "_OTHER", prefix))
        with pytest.raises(EventBusError, match="overlapping subjects.*--event-prefix"):
            await other.start()
        await other.close()


async def test_subscribers_get_new_events_in_order_filtered_by_pattern(place):
    prefix, _ = place
    async with bus_for(place) as bus:
        await bus.publish(rack(prefix, 0))  # before subscribing: not delivered
        everything, created, nodes = Recorder(), Recorder(), Recorder()
        await bus.subscribe(f"{prefix}.**", everything)
        await bus.subscribe(f"{prefix}.*.created", created)
        await bus.subscribe(f"{prefix}.node.*", nodes)
        events = [rack(prefix, n, action) for n in range(1, 30)
                  for action in ("created", "updated")] + [rack(prefix, 99, kind="Node")]
        for event in events:
            await bus.publish(event)
        await eventually(lambda: len(everything.events) == len(events))
        await eventually(lambda: len(created.events) == 30 and len(nodes.events) == 1)
        assert everything.ids == [e.id for e in events]
        assert created.ids == [e.id for e in events if e.type.endswith(".created")]
        assert nodes.ids == [events[-1].id]


async def test_a_subscriber_whose_consumer_is_lost_resumes_after_its_last_event(place):
    prefix, stream = place
    async with bus_for(place) as bus:
        record = Recorder()
        sub = await bus.subscribe(f"{prefix}.**", record)
        await bus.publish(rack(prefix, 1))
        await eventually(lambda: len(record.events) == 1)
        nc = await nats.connect(URL)
        try:
            jsm = nc.jetstream()
            for consumer in await jsm.consumers_info(stream):
                await jsm.delete_consumer(stream, consumer.name)
        finally:
            await nc.close()
        later = [rack(prefix, n) for n in range(2, 12)]
        for event in later:
            await bus.publish(event)
        await eventually(lambda: len(record.events) == 11)
        assert record.ids[1:] == [e.id for e in later]
        await sub.close()


async def test_an_outage_delays_events_and_skips_none(tmp_path, place, caplog):
    prefix, _ = place
    server = NatsServer(tmp_path / "js")
    server.start()
    try:
        async with bus_for(place, url=server.url) as writer, \
                bus_for(place, url=server.url) as reader:
            record = Recorder()
            await reader.subscribe(f"{prefix}.**", record)
            before = [rack(prefix, n) for n in range(10)]
            for event in before:
                await writer.publish(event)
            await eventually(lambda: len(record.events) == 10)
            server.stop()
            unsure = rack(prefix, 100)
            with pytest.raises(EventBusError):  # not acknowledged: the caller must re-send
                await writer.publish(unsure)
            await asyncio.sleep(0.5)  # paces the outage (kept): its length is the input
            server.start()
            await eventually(lambda: writer.connected and reader.connected)
            after = [rack(prefix, n) for n in range(10, 30)]
            for event in after:
                await writer.publish(event)
            await eventually(lambda: len(record.events) >= 30, timeout=15)
            ids = record.ids
            # The unacknowledged event may have reached the server after all (the client
            # buffers while reconnecting): at most once, and nothing else is missing.
            assert ids.count(unsure.id) <= 1
            assert [i for i in ids if i != unsure.id] == [e.id for e in before + after]
        msgs = await read_all(server.url, f"{prefix}.>", len(ids))
        assert [CloudEvent.from_json(m.data).id for m in msgs] == ids
    finally:
        server.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("reconnected to NATS" in m for m in warnings)
