"""``GET /events`` streams (`sse_stream`) resume after ``Last-Event-ID`` and tell a client
what it missed: on the memory bus (its recent log) and on JetStream (the stream, real
NATS, a prefix and stream of each test's own)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fabrica.events import CloudEvent, JetStream, MemoryBus, NatsBus, lifecycle_event, sse_stream
from tests._support.nats import URL, drop_stream, names


def event(n: int, prefix: str = "io.fabrica") -> CloudEvent:
    return lifecycle_event("updated", "Rack", "racks", f"rack-{n:08x}", f"r{n}",
                           prefix=prefix, source="tests")


class Reader:
    """Reads an SSE byte stream into CloudEvents and named notices."""

    def __init__(self, frames: AsyncIterator[bytes]) -> None:
        self.frames = frames
        self.events: list[CloudEvent] = []
        self.notices: list[tuple[str, dict[str, Any]]] = []

    async def opened(self) -> Reader:
        assert await anext(self.frames) == b": connected\n\n"
        return self

    async def until(self, count: int, timeout: float = 10.0) -> None:
        """Read chunks until `count` events came (or a notice and then nothing more)."""
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self.parse(await anext(self.frames))

    async def next_chunk(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            self.parse(await anext(self.frames))

    def parse(self, chunk: bytes) -> None:
        for message in chunk.decode().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in message.split("\n")
                          if line and not line.startswith(":"))
            if "event" in fields:
                assert "id" not in fields  # a notice leaves the client's Last-Event-ID alone
                self.notices.append((fields["event"], json.loads(fields["data"])))
            elif "data" in fields:
                parsed = CloudEvent.from_json(fields["data"])
                assert fields["id"] == parsed.id
                self.events.append(parsed)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.events]

    async def close(self) -> None:
        await self.frames.aclose()  # type: ignore[attr-defined]


# -- the memory bus ----------------------------------------------------------------------


async def test_memory_bus_resumes_after_the_last_event_id():
    async with MemoryBus() as bus:
        sent = [event(n) for n in range(6)]
        for e in sent[:4]:
            await bus.publish(e)
        reader = await Reader(sse_stream(bus, heartbeat=10, after=sent[1].id)).opened()
        await reader.until(2)
        for e in sent[4:]:
            await bus.publish(e)
        await reader.until(4)
        assert reader.ids == [e.id for e in sent[2:]] and reader.notices == []
        await reader.close()


async def test_an_unknown_last_event_id_is_told_to_resync():
    missed: list[tuple[int, str]] = []
    async with MemoryBus() as bus:
        await bus.publish(event(0))
        frames = sse_stream(bus, heartbeat=10, after="not-an-event-we-know",
                            on_missed=lambda n, why: missed.append((n, why)))
        reader = await Reader(frames).opened()
        await reader.next_chunk()
        assert reader.notices == [("fabrica.resync", {
            "lastEventId": "not-an-event-we-know",
            "reason": "the event bus no longer holds this event: events may have been missed"})]
        later = event(1)
        await bus.publish(later)
        await reader.until(1)
        assert reader.ids == [later.id]  # then live, from now
        assert missed == [(0, "resume_unavailable")]
        await reader.close()


async def test_a_reader_that_falls_behind_is_told_how_many_it_missed(caplog):
    missed: list[tuple[int, str]] = []
    async with MemoryBus() as bus:
        frames = sse_stream(bus, heartbeat=10, maxsize=5, flush_interval=0,
                            on_missed=lambda n, why: missed.append((n, why)))
        reader = await Reader(frames).opened()
        sent = [event(n) for n in range(12)]
        for e in sent:  # nobody reads meanwhile: the 7 oldest are evicted unread
            await bus.publish(e)
        await reader.until(5)
        assert reader.notices == [("fabrica.dropped", {
            "dropped": 7, "reason": "this client read more slowly than events came"})]
        assert reader.ids == [e.id for e in sent[7:]]
        assert missed == [(7, "slow_subscriber")]
        assert "fell behind: 7 events dropped" in caplog.text
        await reader.close()


# -- JetStream ---------------------------------------------------------------------------


@pytest.fixture
async def jetstream_bus() -> AsyncIterator[tuple[NatsBus, str]]:
    prefix, stream = names()
    bus = NatsBus(URL, name="fabrica-tests", stream_size=4,
                  jetstream=JetStream.for_prefix(stream, prefix, heartbeat=0.2))
    async with bus:
        yield bus, prefix
    await drop_stream(stream)


async def test_jetstream_resumes_from_the_stream_then_goes_on_live(jetstream_bus):
    bus, prefix = jetstream_bus
    sent = [event(n, prefix) for n in range(30)]
    for e in sent[:20]:
        await bus.publish(e)
    # More than the stream's bound of 4 waits in JetStream, not lost: a replay is whole.
    reader = await Reader(sse_stream(bus, f"{prefix}.**", heartbeat=10, flush_interval=0,
                                     after=sent[3].id)).opened()
    await reader.until(16)
    for e in sent[20:]:
        await bus.publish(e)
    await reader.until(26)
    assert reader.ids == [e.id for e in sent[4:]]  # no gap, no duplicate
    assert reader.notices == []
    await reader.close()


async def test_jetstream_resume_keeps_the_type_filter(jetstream_bus):
    bus, prefix = jetstream_bus
    other = lifecycle_event("created", "Node", "nodes", "node-00000001", "n1", prefix=prefix,
                            source="tests")
    first, second = event(1, prefix), event(2, prefix)
    for e in (first, other, second):
        await bus.publish(e)
    reader = await Reader(sse_stream(bus, f"{prefix}.rack.*", heartbeat=10,
                                     after=first.id)).opened()
    await reader.until(1)
    assert reader.ids == [second.id]
    await reader.close()


async def test_jetstream_unknown_id_is_told_to_resync(jetstream_bus):
    bus, prefix = jetstream_bus
    await bus.publish(event(0, prefix))
    reader = await Reader(sse_stream(bus, f"{prefix}.**", heartbeat=10,
                                     after="gone-long-ago")).opened()
    await reader.next_chunk()
    assert [name for name, _ in reader.notices] == ["fabrica.resync"]
    live = event(1, prefix)
    await bus.publish(live)
    await reader.until(1)
    assert reader.ids == [live.id]
    await reader.close()
