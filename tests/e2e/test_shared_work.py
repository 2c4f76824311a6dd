"""Several server processes on one PostgreSQL and one NATS or Kafka (SPEC sections 6 and
12), as processes: one API and two controllers provision racks with exact counts, share the
racks, never reconcile one rack in two processes at once, and a controller killed mid-rack
leaves it to the other; a server killed right after its last commit loses none of its
events. Each test runs on JetStream and on Kafka (a private Tansu broker)."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import nats.js.api
import pytest

from fabrica.events import CloudEvent
from tests._support.e2e import Server, make_device_project, make_rack_project
from tests._support.kafka import Tansu, read_topic_sync, start_tansu, topic_name
from tests._support.nats import URL, drop_stream_sync, names
from tests._support.sqldb import migrate, postgres_schema
from tests._support.wait import eventually_sync

pytestmark = pytest.mark.e2e

# Test instrumentation appended to the example's reconciler: one line when a rack
# reconcile starts and one when it ends, with the process id.
INSTRUMENT = '''

import os as _os
import time as _time

_LOG = _os.environ.get("RACK_RECONCILE_LOG")
if _LOG:
    _plain = RackReconciler.reconcile_rack

    def _note(what, rack):
        with open(_LOG, "a") as log:
            log.write(f"{what} {_os.getpid()} {rack.uid} {_time.time()}\\n")

    async def _instrumented(self, rack):
        _note("S", rack)
        try:
            return await _plain(self, rack)
        finally:
            _note("E", rack)

    RackReconciler.reconcile_rack = _instrumented
'''


@dataclass
class Bus:
    """The serve options of one shared bus, and how an outside consumer reads every event
    it holds from the start."""

    args: tuple[str, ...]
    read_all: Callable[[int], list[CloudEvent]]
    # JetStream drops a re-sent event (Nats-Msg-Id); Kafka keeps it (no idempotent
    # producer, and a new process is a new producer anyway): a duplicate, with the same id.
    dedupes: bool = True


@pytest.fixture(scope="module")
def tansu() -> Iterator[Tansu]:
    broker = start_tansu()
    yield broker
    broker.stop()


@pytest.fixture(params=["nats", "kafka"])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    if request.param == "nats":
        prefix, stream = names()
        yield Bus(("--events-bus", "nats", "--nats-url", URL, "--event-prefix", prefix,
                   "--nats-stream", stream),
                  lambda at_least: asyncio.run(_read_stream(prefix, at_least)))
        drop_stream_sync(stream)
        return
    broker: Tansu = request.getfixturevalue("tansu")
    topic = topic_name()
    yield Bus(("--events-bus", "kafka", "--kafka-bootstrap", broker.bootstrap,
               "--kafka-topic", topic, "--kafka-partitions", "3"),
              lambda at_least: [CloudEvent.from_json(r.value) for r in
                                read_topic_sync(broker.bootstrap, topic, at_least, 60)],
              dedupes=False)


@pytest.fixture(scope="module")
def rack_project(tmp_path_factory) -> Path:
    project = make_rack_project(tmp_path_factory.mktemp("shared"))
    with open(project / "rack_inventory" / "reconcilers" / "rack_reconciler.py", "a") as f:
        f.write(INSTRUMENT)
    return project


def spans(log: Path, killed: tuple[int, float] | None) -> dict[str, list[tuple[int, float, float]]]:
    """uid → (pid, start, end) per reconcile; one the kill cut short ends at the kill."""
    open_: dict[tuple[int, str], float] = {}
    out: defaultdict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for line in log.read_text().splitlines():
        what, pid, uid, at = line.split()
        if what == "S":
            open_[(int(pid), uid)] = float(at)
        else:
            out[uid].append((int(pid), open_.pop((int(pid), uid)), float(at)))
    for (pid, uid), start in open_.items():  # cut short by the kill, or running now
        end = killed[1] if killed is not None and pid == killed[0] else time.time()
        out[uid].append((pid, start, end))
    return out


def reconciling(log: Path, uid: str) -> int | None:
    """The pid of a process whose reconcile of `uid` has started and not yet ended."""
    running: dict[int, bool] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        parts = line.split()
        if len(parts) != 4:  # a line being written
            continue
        what, pid, of, _ = parts
        if of == uid:
            running[int(pid)] = what == "S"
    return next((pid for pid, now in running.items() if now), None)


def overlaps(by_uid: dict[str, list[tuple[int, float, float]]]) -> list[str]:
    bad = []
    for uid, runs in by_uid.items():
        runs.sort(key=lambda r: r[1])
        for (a, _, a_end), (b, b_start, _) in zip(runs, runs[1:], strict=False):
            if a != b and b_start < a_end:
                bad.append(uid)
    return bad


# The shared helper, with the time three server processes and their controllers may need.
wait_for = functools.partial(eventually_sync, timeout=120.0, interval=0.1)


def test_one_api_two_controllers_share_racks_and_survive_a_kill(rack_project, tmp_path,
                                                                bus):
    log = tmp_path / "reconciles.log"
    with postgres_schema() as url:
        migrate(url)
        common = ("--database-url", url, *bus.args)
        env = {"RACK_RECONCILE_LOG": str(log)}
        api = Server(rack_project, "rack_inventory", "--role", "api", *common)
        controllers = [Server(rack_project, "rack_inventory", "--role", "controller",
                              "--instance", f"c{n}", *common, env=env) for n in (1, 2)]
        try:
            assert httpx.get(f"{controllers[0].url}/racks").status_code == 404
            wait_for(lambda: all('fabrica_controller_members 2.0' in httpx.get(
                f"{c.url}/metrics").text for c in controllers), timeout=30)
            with httpx.Client(base_url=api.url, timeout=30) as http:
                small = http.post("/racktemplates", json={
                    "name": "small", "chassisCount": 2, "chassisConfig": {
                        "bladeCount": 4, "bladeConfig": {"nodeCount": 2, "bmcMode": "shared"}}})
                big = http.post("/racktemplates", json={
                    "name": "big", "chassisCount": 8, "chassisConfig": {
                        "bladeCount": 8, "bladeConfig": {"nodeCount": 8, "bmcMode": "dedicated"}}})
                big_uid = http.post("/racks", json={
                    "name": "big-01", "templateUID": big.json()["metadata"]["uid"]}
                ).json()["metadata"]["uid"]
                for n in range(8):
                    assert http.post("/racks", json={
                        "name": f"rack-{n:02d}",
                        "templateUID": small.json()["metadata"]["uid"]}).status_code == 201
                # Kill the controller while it reconciles big-01: bulk creates provision a
                # rack in a few passes, so waiting for children to appear can see it done.
                holder = wait_for(lambda: reconciling(log, big_uid), interval=0.005)
                victim = next(c for c in controllers if c.process.pid == holder)
                survivor = next(c for c in controllers if c is not victim)
                os.kill(victim.process.pid, signal.SIGKILL)
                killed_at = time.time()
                victim.process.wait(10)

                def all_ready():
                    racks = http.get("/racks").json()
                    return len(racks) == 9 and all(r["status"].get("phase") == "Ready"
                                                     for r in racks)
                wait_for(all_ready, timeout=180)
                expected = {"chassis": 8 * 2 + 8, "blades": 8 * 8 + 64,
                            "nodes": 8 * 16 + 512, "bmcs": 8 * 8 + 512}
                for plural, count in expected.items():
                    items = http.get(f"/{plural}").json()
                    assert len(items) == count, plural
                    assert len({i["metadata"]["name"] for i in items}) == count, plural
            by_uid = spans(log, (holder, killed_at))
            assert overlaps(by_uid) == []
            pids = {pid for runs in by_uid.values() for pid, _, _ in runs}
            assert pids == {c.process.pid for c in controllers}  # both did work
            taken_over = min(start for pid, start, _ in by_uid[big_uid]
                             if pid == survivor.process.pid and start > killed_at)
            assert taken_over - killed_at < 15
            ready = httpx.get(f"{survivor.url}/ready").json()
            assert ready["status"] == "ready"
            # The reconciler's own events (self.emit) went through the outbox to the bus.
            provisioned = {e.resourceuid for e in bus.read_all(9)
                           if e.type.endswith(".rack.provisioned")}
            assert len(provisioned) == 9
        finally:
            for server in (api, *controllers):
                server.stop()


async def _read_stream(prefix: str, at_least: int) -> list[CloudEvent]:
    """Every event of the stream: at least `at_least`, then until 0.5 s bring nothing."""
    nc = await nats.connect(URL)
    try:
        sub = await nc.jetstream().subscribe(
            f"{prefix}.>", ordered_consumer=True, deliver_policy=nats.js.api.DeliverPolicy.ALL)
        events = []
        while len(events) < at_least:
            events.append(CloudEvent.from_json((await sub.next_msg(timeout=30)).data))
        try:
            while True:
                events.append(CloudEvent.from_json((await sub.next_msg(timeout=0.5)).data))
        except nats.errors.TimeoutError:
            return events
    finally:
        await nc.close()


# A socket of the killed server's last connections may be collected late in this process.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_no_event_is_lost_when_the_server_is_killed_right_after_its_last_commit(tmp_path,
                                                                                  bus):
    project = make_device_project(tmp_path)
    with postgres_schema() as url:
        migrate(url)
        common = ("--database-url", url, *bus.args)
        first = Server(project, "device_api", *common)
        try:
            def create(n: int) -> str:
                response = httpx.post(f"{first.url}/devices", timeout=30, json={
                    "name": f"d{n}", "type": "server", "ipAddress": "10.0.0.1"})
                assert response.status_code == 201
                return str(response.json()["metadata"]["uid"])

            with ThreadPoolExecutor(16) as pool:
                uids = set(pool.map(create, range(200)))
            os.kill(first.process.pid, signal.SIGKILL)  # right after the last commit
            first.process.wait(10)
        finally:
            first.stop()
        second = Server(project, "device_api", *common)  # its relay sends what is left
        try:
            events = bus.read_all(200)
            created = [e for e in events if e.action == "created"]
            assert {e.resourceuid for e in created} == uids
            by_id = {e.id: e for e in created}
            assert len(by_id) == 200  # one event per write, none lost
            if bus.dedupes:
                assert len(created) == 200
            else:  # a relay killed between the broker's ack and marking the row sent
                assert all(e == by_id[e.id] for e in created)  # re-sends it: the same event
            metrics = wait_for(lambda: (m := httpx.get(f"{second.url}/metrics").text)
                               and "fabrica_outbox_backlog 0.0" in m and m, timeout=30)
            assert "fabrica_outbox_backlog 0.0" in metrics
        finally:
            second.stop()
