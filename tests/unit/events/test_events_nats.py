"""The NATS JetStream event bus as an `EventBus`, against a real NATS server (never a fake).

The server is ``nats://127.0.0.1:4222`` (``FABRICA_TEST_NATS_URL`` to use another); `.ci/run`
starts it when it is down, and a server that is not there fails these tests. Every test
publishes under a prefix and into a stream of its own (`names`), so parallel runs sharing
the server never see each other's events. What is JetStream's own (the stream's setup,
outages) is in test_events_jetstream.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import nats
import pytest

import fabrica.events
from fabrica.events import (
    BusClosed,
    CloudEvent,
    EventBus,
    EventBusError,
    EventStream,
    JetStream,
    MemoryBus,
    NatsBus,
    Subscription,
    condition_event,
    lifecycle_event,
    type_matches,
)
from tests._support.nats import URL, NatsServer, drop_stream, free_port, names
from tests._support.wait import eventually

RACK = {"apiVersion": "v1", "kind": "Rack", "metadata": {"name": "r1"}, "spec": {"u": 42}}


class Recorder:
    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.__qualname__ = "Recorder"  # its subscriptions' default name

    async def __call__(self, event: CloudEvent) -> None:
        self.events.append(event)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.events]


Place = tuple[str, str]  # (event prefix, stream name)


def setting(place: Place) -> JetStream:
    prefix, stream = place  # the prefix itself too: '{p}.**' matches it
    return JetStream(stream, (prefix, f"{prefix}.>"), heartbeat=0.2)


def new_bus(place: Place, url: str = URL, **kw: Any) -> NatsBus:
    return NatsBus(url, name="fabrica-tests", jetstream=setting(place), **kw)


@pytest.fixture
async def place() -> AsyncIterator[Place]:
    prefix, stream = names()
    yield prefix, stream
    await drop_stream(stream)


@pytest.fixture
def prefix(place: Place) -> str:
    return place[0]


@pytest.fixture
async def bus(place: Place) -> AsyncIterator[NatsBus]:
    nats_bus = new_bus(place)
    try:
        await nats_bus.start()
    except EventBusError as exc:
        pytest.fail(f"{exc}\n(is nats-server running? .ci/run starts it)", pytrace=False)
    yield nats_bus
    await nats_bus.close()


def rack(prefix: str, action: str = "created", n: int = 0, **kw: Any) -> CloudEvent:
    return lifecycle_event(action, "Rack", "racks", f"rack-{n:08x}", "r1", prefix=prefix, **kw)


def racks(prefix: str, count: int) -> list[CloudEvent]:
    return [rack(prefix, "updated", i) for i in range(count)]


# -- the mapping onto NATS subjects ------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, subjects",
    [
        ("io.fabrica.rack.created", ("io.fabrica.rack.created",)),
        ("io.fabrica.*.created", ("io.fabrica.*.created",)),
        ("*", ("*",)),
        ("io.fabrica.**", ("io.fabrica", "io.fabrica.>")),
        ("io.*.**", ("io.*", "io.*.>")),
        ("**", (">",)),
    ],
)
def test_patterns_map_onto_nats_subjects(pattern, subjects):
    assert NatsBus.subjects(pattern) == subjects


@pytest.mark.parametrize(
    "pattern", ["a.>", ">", "a.b>", "a b", "a..b", "a.**.b", "a*", "a.b\x00", "a.\tb", ""]
)
def test_patterns_nats_cannot_carry_are_refused(pattern):
    with pytest.raises(ValueError, match="pattern"):
        NatsBus.subjects(pattern)


def test_event_types_are_their_subjects():
    assert NatsBus.subject("io.fabrica.rack.created") == "io.fabrica.rack.created"
    for bad in ["a b", "a.*", "a.>", "x*y", "a..b", ".a", "a.", "a.b\n", "a\x7f"]:
        with pytest.raises(ValueError, match="cannot be a NATS subject"):
            NatsBus.subject(bad)


async def test_unsendable_types_and_bad_patterns_are_refused(bus, prefix):
    with pytest.raises(ValueError, match="cannot be a NATS subject"):
        await bus.publish(CloudEvent(type=f"{prefix}.rack.>", source="test"))
    with pytest.raises(ValueError, match="'>' is not allowed"):
        await bus.subscribe(f"{prefix}.>", Recorder())
    with pytest.raises(ValueError):
        bus.stream("a.**.b")
    assert bus.stats() == []


async def test_patterns_select_on_nats_what_they_select_in_memory(place, prefix):
    """`*`, `**` (zero segments included), exact: NATS delivers what `type_matches` says."""
    patterns = ["{p}.**", "{p}.*", "{p}.*.created", "{p}.rack.created", "{p}.*.**", "**"]
    types = ["{p}", "{p}.rack", "{p}.rack.created", "{p}.device.created",
             "{p}.rack.created.v2", "{p}.rack.deleted"]  # fmt: skip
    patterns = [p.format(p=prefix) for p in patterns]
    events = [CloudEvent(type=t.format(p=prefix), source="test") for t in types]
    memory, nats_bus = MemoryBus(), new_bus(place)
    got: dict[str, tuple[Recorder, Recorder]] = {}
    for bus in (memory, nats_bus):
        await bus.start()
    for pattern in patterns:
        got[pattern] = (Recorder(), Recorder())
        await memory.subscribe(pattern, got[pattern][0])
        await nats_bus.subscribe(pattern, got[pattern][1])
    for event in events:
        await memory.publish(event)
        await nats_bus.publish(event)
    await memory.close()
    await nats_bus.close()  # drains: everything published has arrived
    for pattern, (in_memory, on_nats) in got.items():
        expected = {e.id for e in events if type_matches(pattern, e.type)}
        assert set(on_nats.ids) == expected == set(in_memory.ids), pattern
    assert len(got[f"{prefix}.**"][1].events) == len(events)  # zero segments: {p} itself


# -- the wire form -----------------------------------------------------------------------


async def test_round_trip_keeps_the_json_identical(bus, prefix):
    events = [
        rack(prefix, "created", resource=RACK),
        rack(prefix, "updated", metadata={"updateType": "status"}, resource=RACK),
        condition_event("Rack", "racks", "rack-00000000", "r1",
                        {"type": "Ready", "status": "True", "reason": "Up"},
                        prefix=prefix, previous_status="False"),
    ]  # fmt: skip
    raw = await nats.connect(URL)
    wire: list[tuple[str, bytes]] = []

    async def on_raw(msg: Any) -> None:
        wire.append((msg.subject, msg.data))

    await raw.subscribe(f"{prefix}.>", cb=on_raw)
    await raw.flush()
    on_nats, in_memory = Recorder(), Recorder()
    await bus.subscribe(f"{prefix}.**", on_nats)
    async with MemoryBus() as memory:
        await memory.subscribe("**", in_memory)
        for event in events:
            await bus.publish(event)
            await memory.publish(event)
    await eventually(lambda: len(on_nats.events) == 3 and len(wire) == 3)
    await raw.close()
    assert [e.to_json() for e in on_nats.events] == [e.to_json() for e in events]
    assert [e.to_json() for e in on_nats.events] == [e.to_json() for e in in_memory.events]
    assert on_nats.events == events  # equal field by field, not only as JSON
    assert wire == [(e.type, e.to_json().encode()) for e in events]  # subject = type


async def test_what_nats_refuses_to_carry_raises_an_event_bus_error(bus, prefix):
    huge = rack(prefix, resource={**RACK, "spec": {"blob": "x" * 2_000_000}})
    with pytest.raises(EventBusError, match=re.escape(f"cannot publish {huge.type}")):
        await bus.publish(huge)


async def test_foreign_messages_are_ignored_with_a_warning(bus, prefix, caplog):
    record = Recorder()
    await bus.subscribe(f"{prefix}.**", record, name="picky")
    raw = await nats.connect(URL)
    await raw.publish(f"{prefix}.rack.created", b"not json")
    await raw.publish(f"{prefix}.rack.created", b'{"specversion": "0.3"}')
    await raw.publish(f"{prefix}.rack.created", rack(prefix, "deleted").to_json().encode())
    good = rack(prefix)
    await raw.publish(good.type, good.to_json().encode())
    await raw.close()  # flushes
    await eventually(lambda: len(record.events) == 1)
    assert record.events == [good]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "picky" in warnings[0].getMessage()


# -- delivery ----------------------------------------------------------------------------


async def test_bus_and_subscriptions_keep_the_protocols(bus, prefix):
    assert fabrica.events.NatsBus is NatsBus and "NatsBus" in fabrica.events.__all__
    assert isinstance(bus, EventBus)
    sub = await bus.subscribe(f"{prefix}.**", Recorder())
    assert isinstance(sub, Subscription)
    async with bus.stream(f"{prefix}.**") as stream:
        assert isinstance(stream, EventStream)
        assert {(s.name, s.pattern, s.mode) for s in bus.stats()} == {
            ("Recorder", f"{prefix}.**", "handler"),
            (f"stream:{prefix}.**", f"{prefix}.**", "stream"),
        }
    assert [s.mode for s in bus.stats()] == ["handler"]
    await sub.close()
    assert bus.stats() == []
    assert bus.connected


async def test_delivery_in_publish_order(bus, prefix):
    record = Recorder()
    sub = await bus.subscribe(f"{prefix}.rack.*", record)
    events = racks(prefix, 200)
    for event in events:
        await bus.publish(event)
    await bus.publish(CloudEvent(type=f"{prefix}.device.updated", source="test"))
    await eventually(lambda: len(record.events) == 200)
    assert record.ids == [e.id for e in events]
    assert sub.stats.delivered == 200 and sub.stats.pending == 0


async def test_a_raising_handler_does_not_stop_others(bus, prefix, caplog):
    async def broken(event: CloudEvent) -> None:
        raise RuntimeError("boom")

    record = Recorder()
    bad = await bus.subscribe(f"{prefix}.**", broken, name="broken-reconciler")
    await bus.subscribe(f"{prefix}.**", record)
    for event in racks(prefix, 5):
        await bus.publish(event)
    await eventually(lambda: len(record.events) == 5 and bad.stats.failed == 5)
    stats = {s.name: s for s in bus.stats()}
    assert stats["broken-reconciler"].failed == 5 and stats["broken-reconciler"].delivered == 0
    assert stats["Recorder"].delivered == 5 and stats["Recorder"].failed == 0
    failures = [r for r in caplog.records if "broken-reconciler" in r.getMessage()]
    assert len(failures) == 5 and failures[0].exc_info is not None
    assert f"{prefix}.rack.updated" in failures[0].getMessage()


async def test_a_full_handler_queue_waits_then_drops_and_counts(place, prefix, caplog):
    """The reader waits `publish_timeout` for room, then drops for that handler only."""
    gate, got, others = asyncio.Event(), Recorder(), Recorder()

    async def gated(event: CloudEvent) -> None:
        await gate.wait()
        await got(event)

    events = racks(prefix, 6)
    async with new_bus(place, queue_size=2, publish_timeout=0.5) as nats_bus:
        sub = await nats_bus.subscribe(f"{prefix}.**", gated, name="slow")
        await nats_bus.subscribe(f"{prefix}.**", others)
        for event in events:
            await nats_bus.publish(event)  # never waits for a subscriber
        await eventually(lambda: len(others.events) == 6)  # not held up by the slow one
        await eventually(lambda: sub.stats.dropped == 3)
        gate.set()
        await eventually(lambda: len(got.events) == 3)
    assert got.ids == [e.id for e in events[:3]]
    assert sub.stats.delivered == 3 and sub.stats.dropped == 3
    assert any("dropped for subscriber slow" in r.getMessage() for r in caplog.records)


async def test_unsubscribe_stops_delivery(bus, prefix):
    record = Recorder()
    sub = await bus.subscribe(f"{prefix}.**", record)
    await bus.publish(rack(prefix, n=1))
    await eventually(lambda: len(record.events) == 1)
    await sub.close()
    await sub.close()  # idempotent
    await bus.publish(rack(prefix, n=2))
    sentinel = Recorder()
    await bus.subscribe(f"{prefix}.**", sentinel)
    await bus.publish(rack(prefix, n=3))
    await eventually(lambda: len(sentinel.events) == 1)
    assert len(record.events) == 1


async def test_a_handler_can_close_its_own_subscription(bus, prefix):
    seen: list[CloudEvent] = []
    subs: list[Subscription] = []

    async def once(event: CloudEvent) -> None:
        seen.append(event)
        await subs[0].close()

    subs.append(await bus.subscribe(f"{prefix}.**", once))
    for event in racks(prefix, 3):
        await bus.publish(event)
    await eventually(lambda: bus.stats() == [] and len(seen) == 1)


async def test_events_published_before_start_are_sent_after(place, prefix):
    nats_bus, record = new_bus(place), Recorder()
    await nats_bus.subscribe(f"{prefix}.**", record)
    events = racks(prefix, 3)
    for event in events:
        await nats_bus.publish(event)
    stream = nats_bus.stream(f"{prefix}.**")
    await nats_bus.start()
    await nats_bus.start()  # idempotent
    await eventually(lambda: len(record.events) == 3)
    assert record.ids == [e.id for e in events]
    assert [await anext(stream) for _ in range(3)] == events
    await nats_bus.close()


# -- several processes -------------------------------------------------------------------


async def test_two_buses_see_each_other_s_events(place, prefix):
    """Two connections, as two server processes would have, on one NATS server."""
    async with new_bus(place) as one, new_bus(place) as two:
        seen_one, seen_two = Recorder(), Recorder()
        await one.subscribe(f"{prefix}.**", seen_one)
        await two.subscribe(f"{prefix}.**", seen_two)
        from_one, from_two = rack(prefix, "created", 1), rack(prefix, "deleted", 2)
        await one.publish(from_one)
        await two.publish(from_two)
        await eventually(lambda: len(seen_one.events) == 2 and len(seen_two.events) == 2)
        for seen in (seen_one, seen_two):
            assert sorted(seen.ids) == sorted([from_one.id, from_two.id])
            assert {e.to_json() for e in seen.events} == {from_one.to_json(), from_two.to_json()}


# -- streams -----------------------------------------------------------------------------


async def test_a_stream_whose_reader_lags_is_late_never_skipped(bus, prefix):
    """Its bound holds back the JetStream reader: the rest waits in the stream meanwhile."""
    events = racks(prefix, 5)
    async with bus.stream(f"{prefix}.**", maxsize=3) as stream:
        for event in events:
            await asyncio.wait_for(bus.publish(event), 1)  # never waits for a reader
        await eventually(lambda: stream.stats.pending == 3)
        assert [await anext(stream) for _ in range(5)] == events
        assert stream.stats.delivered == 5 and stream.stats.dropped == 0
        assert stream.take_missed() == 0


async def test_stream_ends_after_the_bus_closes(place, prefix):
    nats_bus = new_bus(place)
    await nats_bus.start()
    events = racks(prefix, 3)
    async with nats_bus.stream(f"{prefix}.**") as stream:
        for event in events:
            await nats_bus.publish(event)
        await nats_bus.close()  # drains: what was published is in the stream
        assert [e async for e in stream] == events


# -- closing -----------------------------------------------------------------------------


async def test_close_drains_what_was_published(place, prefix):
    nats_bus, got = new_bus(place), Recorder()

    async def slow(event: CloudEvent) -> None:
        await asyncio.sleep(0.002)
        await got(event)

    await nats_bus.start()
    await nats_bus.subscribe(f"{prefix}.**", slow)
    events = racks(prefix, 100)
    for event in events:
        await nats_bus.publish(event)
    await nats_bus.close(drain=True)
    assert got.ids == [e.id for e in events]


async def test_close_without_drain_is_quick(place, prefix):
    nats_bus = new_bus(place)
    await nats_bus.start()

    async def stuck(event: CloudEvent) -> None:
        await asyncio.sleep(60)

    sub = await nats_bus.subscribe(f"{prefix}.**", stuck)
    for event in racks(prefix, 5):
        await nats_bus.publish(event)
    await eventually(lambda: sub.stats.pending == 4)
    await asyncio.wait_for(nats_bus.close(drain=False), 2)
    assert sub.stats.dropped >= 4 and not nats_bus.connected


async def test_close_drain_is_bounded_by_its_timeout(place, prefix, caplog):
    nats_bus = new_bus(place)
    await nats_bus.start()

    async def stuck(event: CloudEvent) -> None:
        await asyncio.sleep(60)

    await nats_bus.subscribe(f"{prefix}.**", stuck)
    for event in racks(prefix, 3):
        await nats_bus.publish(event)
    began = time.monotonic()
    await nats_bus.close(drain=True, timeout=0.3)
    assert time.monotonic() - began < 1.5
    assert any("undelivered" in r.getMessage() for r in caplog.records)


async def test_nothing_after_close(place, prefix):
    nats_bus = new_bus(place)
    await nats_bus.start()
    await nats_bus.close()
    await nats_bus.close()  # idempotent
    assert nats_bus.closed and not nats_bus.connected
    with pytest.raises(BusClosed):
        await nats_bus.publish(rack(prefix))
    with pytest.raises(BusClosed):
        await nats_bus.subscribe("**", Recorder())
    with pytest.raises(BusClosed):
        nats_bus.stream()
    with pytest.raises(BusClosed):
        await nats_bus.start()


# -- connecting --------------------------------------------------------------------------


async def test_an_unreachable_server_fails_start_quickly_and_clearly(place):
    url = f"nats://127.0.0.1:{free_port()}"
    nats_bus = new_bus(place, url, connect_timeout=0.5, reconnect_time_wait=0.05)
    began = time.monotonic()
    with pytest.raises(EventBusError, match=re.escape(f"cannot connect to NATS at {url}")):
        await nats_bus.start()
    assert time.monotonic() - began < 2
    assert not nats_bus.connected
    await nats_bus.close()


def test_bad_arguments():
    kept = JetStream.for_prefix("S", "io.fabrica")
    with pytest.raises(ValueError):
        NatsBus(jetstream=kept, queue_size=0)
    with pytest.raises(ValueError):
        NatsBus(jetstream=kept, publish_timeout=0)
    with pytest.raises(ValueError):
        NatsBus(" , ", jetstream=kept)


@pytest.fixture
def own_server(tmp_path) -> Iterator[NatsServer]:
    """A private nats-server on a free port, to stop and start again."""
    server = NatsServer(tmp_path)
    if not os.path.exists(server.binary):
        pytest.skip("nats-server is not installed here")
    server.start()
    yield server
    server.stop()


async def test_reconnects_and_resubscribes_after_the_server_comes_back(own_server, place, prefix,
                                                                       caplog):
    async with new_bus(place, own_server.url, reconnect_time_wait=0.05) as nats_bus:
        record = Recorder()
        await nats_bus.subscribe(f"{prefix}.**", record)
        await nats_bus.publish(rack(prefix, n=1))
        await eventually(lambda: len(record.events) == 1)
        own_server.stop()
        await eventually(lambda: not nats_bus.connected)
        # Paces the outage (kept): its length is the input, several failed attempts at 50 ms.
        await asyncio.sleep(0.2)
        own_server.start()
        await eventually(lambda: nats_bus.connected, timeout=5)
        await nats_bus.publish(rack(prefix, n=2))
        await eventually(lambda: len(record.events) == 2)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("lost the connection to NATS" in m for m in messages)
    assert any("reconnected to NATS" in m for m in messages)
    # Failed attempts are reported once, not every 50 ms; each of the two readers of
    # '{prefix}.**' (subjects {prefix} and {prefix}.>) says once that it lost and resumed.
    assert len([m for m in messages if "JetStream" not in m]) < 4
    assert len([m for m in messages if "JetStream" in m]) <= 4
