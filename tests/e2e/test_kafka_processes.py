"""Generated servers on Kafka (SPEC section 12) over HTTP, with a private Tansu broker per
module: a frozen broker while two API processes take writes (every write answers, /ready
keeps them and drops the controller), the outbox relay killed mid-backlog (another
process takes over, and the topic ends up with every committed write's event, duplicates
only with their id); ``/events`` resuming after ``Last-Event-ID``, or resyncing.

Controllers sharing work on one topic, and a server killed right after its last commit,
run on Kafka in test_shared_work.py."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fabrica.events import CloudEvent
from tests._support.e2e import Server, make_device_project
from tests._support.kafka import Tansu, read_topic_sync, start_tansu, topic_name
from tests._support.sqldb import migrate, postgres_schema

pytestmark = pytest.mark.e2e

FROZEN = 15.0  # seconds the broker is stopped (issue 23)


@pytest.fixture(scope="module")
def tansu() -> Iterator[Tansu]:
    broker = start_tansu()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_device_project(tmp_path_factory.mktemp("kafka"))


def kafka_args(broker: Tansu, topic: str) -> tuple[str, ...]:
    return ("--events-bus", "kafka", "--kafka-bootstrap", broker.bootstrap, "--kafka-topic",
            topic, "--kafka-partitions", "3")


def metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found is not None, name
    return float(found[1])


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def device(n: int) -> dict[str, str]:
    return {"name": f"d{n}", "type": "server", "ipAddress": "10.0.0.1"}


# A socket of the killed server's last connections may be collected late in this process.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_frozen_broker_and_a_killed_relay_lose_no_event(project, tansu):
    topic = topic_name()
    with postgres_schema() as url:
        migrate(url)
        common = ("--database-url", url, *kafka_args(tansu, topic))
        apis = [Server(project, "device_api", "--role", "api", "--instance", f"a{n}", *common)
                for n in (1, 2)]
        controller = Server(project, "device_api", "--role", "controller", *common)
        try:
            assert httpx.post(f"{apis[0].url}/devices", json=device(0)).status_code == 201
            relay = wait_for(lambda: next((a for a in apis
                                           if metric(a, "fabrica_outbox_relaying") == 1), None))
            tansu.freeze()
            frozen_at = time.monotonic()

            def create(n: int) -> str:
                response = httpx.post(f"{apis[n % 2].url}/devices", timeout=30,
                                      json=device(n))
                assert response.status_code == 201, response.text
                return str(response.json()["metadata"]["uid"])

            with ThreadPoolExecutor(8) as pool:
                uids = set(pool.map(create, range(1, 241)))
            for api in apis:  # the API stays ready: its writes' events wait in the outbox
                ready = httpx.get(f"{api.url}/ready", timeout=10)
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"]["events"].startswith("degraded")
            assert httpx.get(f"{controller.url}/ready", timeout=10).status_code == 503
            assert metric(relay, "fabrica_outbox_backlog") > 0
            os.kill(relay.process.pid, signal.SIGKILL)  # mid-backlog
            relay.process.wait(10)
            # Every process runs a relay: the lease goes to the other API process or to the
            # controller, whichever asks first.
            survivors = [s for s in (*apis, controller) if s is not relay]
            time.sleep(max(0.0, FROZEN - (time.monotonic() - frozen_at)))
            tansu.thaw()
            wait_for(lambda: sum(metric(s, "fabrica_outbox_relaying") for s in survivors) == 1
                     and metric(survivors[0], "fabrica_outbox_backlog") == 0, timeout=90)
            assert httpx.get(f"{controller.url}/ready", timeout=10).status_code == 200
            events = [CloudEvent.from_json(r.value)
                      for r in read_topic_sync(tansu.bootstrap, topic, 241, timeout=60)]
            ids: defaultdict[str, set[str]] = defaultdict(set)
            for event in events:
                if event.action == "created":
                    ids[event.resourceuid].add(event.id)  # type: ignore[arg-type]
            assert uids <= set(ids)  # none lost
            assert all(len(same) == 1 for same in ids.values())  # duplicates keep their id
        finally:
            tansu.thaw()
            for server in (*apis, controller):
                server.stop()


def sse_messages(lines: Iterator[str], count: int, within: float = 60.0
                 ) -> list[dict[str, str]]:
    """The next `count` messages of an ``/events`` response's `lines`, as field → value
    (comments and ``retry:`` lines skipped). Keep-alive comments arrive every few seconds,
    so a read never times out by itself: past `within` seconds, fail instead of waiting
    for ever."""
    deadline = time.monotonic() + within
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(messages)} of {count} messages within {within:.0f}s")
        if line.startswith(":") or line.startswith("retry:"):
            continue
        if not line:
            if current:
                messages.append(current)
                current = {}
                if len(messages) == count:
                    return messages
            continue
        field, _, value = line.partition(":")
        current[field] = value.strip()
    raise AssertionError(f"the stream ended after {len(messages)} messages")


def test_events_resume_after_last_event_id_or_resync(project, tansu, tmp_path):
    """File storage: each write publishes to Kafka after it, and /events reads the topic.

    A client reads two events and goes: on resuming, it gets what it had not read (the
    third one, which is not necessarily the third written: partitions are read side by
    side) and what came since, never the event it resumed after."""
    server = Server(project, "device_api", "--data-dir", str(tmp_path),
                    *kafka_args(tansu, topic_name()))
    timeout = httpx.Timeout(30)
    try:
        with httpx.Client(base_url=server.url, timeout=timeout) as http:
            with http.stream("GET", "/events") as live:
                assert live.status_code == 200
                for n in range(3):
                    assert http.post("/devices", json=device(n)).status_code == 201
                first = [m["id"] for m in sse_messages(live.iter_lines(), 3)]
            for n in range(3, 5):
                assert http.post("/devices", json=device(n)).status_code == 201
            with http.stream("GET", "/events", headers={"Last-Event-ID": first[1]}) as resumed:
                assert resumed.status_code == 200
                lines = resumed.iter_lines()
                seen: dict[str, str] = {}  # id → resource name
                deadline = time.monotonic() + 60
                while first[2] not in seen or not {"d3", "d4"} <= set(seen.values()):
                    assert time.monotonic() < deadline, f"resumed with only {seen}"
                    message = sse_messages(lines, 1)[0]
                    seen[message["id"]] = json.loads(message["data"])["data"]["resourceName"]
                assert first[1] not in seen  # its own partition resumes right after it
            with http.stream("GET", "/events", headers={"Last-Event-ID": "gone"}) as fresh:
                assert sse_messages(fresh.iter_lines(), 1)[0]["event"] == "fabrica.resync"
    finally:
        server.stop()
