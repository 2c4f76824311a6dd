"""The generated README's consumers (nats-py on JetStream, aiokafka on Kafka), run as
written, read a service's events."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest

from fabrica.events import JetStream, NatsBus, lifecycle_event
from tests._support.e2e import fabrica
from tests._support.nats import URL, drop_stream_sync, names

pytestmark = pytest.mark.e2e


def test_readme_consumer_reads_the_stream_from_the_start(tmp_path):
    fabrica("init", "svc", "--events", "--events-bus", "nats", cwd=tmp_path)
    readme = (tmp_path / "svc" / "README.md").read_text()
    script = re.search(r"```python\n(import asyncio, json, nats.*?)```", readme, re.S)
    assert script is not None, "no nats-py consumer in the README"
    assert len(script[1].strip().splitlines()) <= 14
    prefix, stream = names()
    code = script[1].replace('"io.fabrica.>"', f'"{prefix}.>"').replace(
        "nats://127.0.0.1:4222", URL)
    events = [lifecycle_event("created", "Device", "devices", f"dev-{n:08x}", f"d{n}",
                              prefix=prefix, source="svc") for n in range(5)]

    async def publish() -> None:
        async with NatsBus(URL, jetstream=JetStream.for_prefix(stream, prefix)) as bus:
            for event in events:
                await bus.publish(event)

    try:
        asyncio.run(publish())
        with subprocess.Popen([sys.executable, "-u", "-c", code], stdout=subprocess.PIPE,
                              text=True) as proc:
            try:
                assert proc.stdout is not None
                lines = [proc.stdout.readline().split() for _ in events]
            finally:
                proc.kill()
        assert lines == [[e.type, e.subject, e.id] for e in events]
    finally:
        drop_stream_sync(stream)


def test_readme_kafka_consumer_reads_the_topic_from_the_start(tmp_path):
    pytest.importorskip("aiokafka")
    from fabrica.events import KafkaBus
    from tests._support.kafka import start_tansu, topic_name

    fabrica("init", "svc", "--events", "--events-bus", "kafka", cwd=tmp_path)
    project = tmp_path / "svc"
    assert '"pyfabrica[kafka]>=' in (project / "pyproject.toml").read_text()
    readme = (project / "README.md").read_text()
    script = re.search(r"```python\n(import asyncio, json\nfrom aiokafka.*?)```", readme, re.S)
    assert script is not None, "no aiokafka consumer in the README"
    assert len(script[1].strip().splitlines()) <= 16
    assert '"io.fabrica.svc"' in script[1]  # the default topic, PREFIX.PROJECT
    broker, topic = start_tansu(), topic_name()
    code = script[1].replace('"io.fabrica.svc"', f'"{topic}"').replace(
        "127.0.0.1:9092", broker.bootstrap)
    events = [lifecycle_event("created", "Device", "devices", f"dev-{n:08x}", f"d{n}",
                              source="svc") for n in range(5)]

    async def publish() -> None:
        async with KafkaBus(broker.bootstrap, topic=topic, partitions=1) as bus:
            for event in events:
                await bus.publish(event)

    try:
        asyncio.run(publish())
        with subprocess.Popen([sys.executable, "-u", "-c", code], stdout=subprocess.PIPE,
                              text=True) as proc:
            try:
                assert proc.stdout is not None
                lines = [proc.stdout.readline().split() for _ in events]
            finally:
                proc.kill()
        assert lines == [[e.type, e.subject, e.id] for e in events]
    finally:
        broker.stop()
