"""Streams read one shared log: a publish costs the writer the same with hundreds of
``GET /events`` subscribers, and each stream takes what is new in one batch."""

from __future__ import annotations

import asyncio

from fabrica.events import CloudEvent, MemoryBus, sse_stream


def events(n: int, kind: str = "device") -> list[CloudEvent]:
    return [CloudEvent(type=f"io.fabrica.{kind}.created", source="s", data={"n": i})
            for i in range(n)]


async def test_a_publish_touches_no_stream_and_every_stream_gets_every_event():
    async with MemoryBus() as bus:
        streams = [bus.stream("io.fabrica.device.*", maxsize=100) for _ in range(200)]
        published = events(50)
        for event in published:
            await asyncio.wait_for(bus.publish(event), 0.1)
        # Nothing was queued per stream: the readers find it in the shared log.
        assert all(not s._buffer for s in streams)  # type: ignore[attr-defined]
        for stream in streams:
            assert await stream.next_batch(0) == published  # one batch, one wake-up
            assert stream.stats.delivered == 50 and stream.stats.pending == 0
        for stream in streams:
            await stream.close()
        assert bus.stats() == []


async def test_a_lagging_stream_keeps_its_newest_matching_events():
    async with MemoryBus(stream_size=4) as bus:
        racks = bus.stream("io.fabrica.rack.*", maxsize=3)
        everything = bus.stream("**", maxsize=10)
        mixed = []
        for rack, device in zip(events(6, "rack"), events(6), strict=True):
            mixed += [rack, device]
            await bus.publish(rack)
            await bus.publish(device)
        assert racks.stats.pending == 3 and racks.stats.dropped == 3
        assert await racks.next_batch(0) == mixed[6::2]
        got = await everything.next_batch(0)
        assert got == mixed[-10:] and everything.stats.dropped == 2
        assert await racks.next_batch(0.01) == []  # nothing new: a timeout, not an end
        await racks.close()
        await everything.close()


async def test_streams_end_after_the_bus_closes_with_what_was_published():
    bus = MemoryBus()
    await bus.start()
    stream = bus.stream()
    published = events(3)
    for event in published:
        await bus.publish(event)
    await bus.close()
    assert await stream.next_batch() == published
    assert await stream.next_batch() is None


async def test_sse_sends_a_burst_as_one_chunk():
    async with MemoryBus() as bus:
        frames = sse_stream(bus, "**", heartbeat=10, flush_interval=0.2)
        assert await anext(frames) == b": connected\n\n"
        first, *burst = events(21)
        await bus.publish(first)
        assert (await anext(frames)).count(b"data: ") == 1  # after a quiet spell: at once
        for event in burst:
            await bus.publish(event)
        chunk = await asyncio.wait_for(anext(frames), 1)
        assert chunk.count(b"data: ") == 20
        await frames.aclose()  # type: ignore[attr-defined]
