"""`create_many` killed with SIGKILL mid-way (SPEC section 11): on SQL only whole batches
are stored (one transaction each, with their labels and change-log entries); on files
every document is whole and the change log holds exactly the stored documents. And a file
server killed while concurrent clients create (their syncs shared: group commit) keeps
every create it acknowledged."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from fabrica.storage import Document, FileStorage
from tests._support.crash import file_documents_checked, kill_when, sql_counts
from tests._support.e2e import Server, make_device_project, stop_process

pytestmark = pytest.mark.e2e

BATCH = 400

# Creates batches of Devices through the project's own store, forever (until killed).
WRITER = """
import asyncio, sys
from fabrica.storage import open_storage
from fabrica.store import NewResource, ResourceStore
from device_api.resources.device import Device

async def main(where):
    storage = open_storage(where)
    store = ResourceStore(storage, [Device])
    for batch in range(1000):
        await store.create_many([
            NewResource(Device, f"d-{batch:04d}-{n:04d}",
                        {"type": "server", "ipAddress": "10.0.0.1"},
                        labels={"batch": str(batch)}) for n in range(BATCH)])

asyncio.run(main(sys.argv[1]))
""".replace("BATCH", str(BATCH))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_device_project(tmp_path_factory.mktemp("e2e-create-many"))


def test_kill_9_mid_create_many_leaves_whole_batches_on_sql(project, tmp_path):
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    subprocess.run([sys.executable, "-m", "device_api.server", "migrate", "--database-url",
                    url], cwd=project, check=True, capture_output=True, timeout=120)
    kill_when([sys.executable, "-c", WRITER, url], project, lambda: sql_counts(url).rows > 0)
    left = sql_counts(url)
    assert left.rows > 0 and left.rows % BATCH == 0  # whole batches only
    assert left.logged == left.rows and left.labels == left.rows and left.pending == 0


def test_kill_9_mid_create_many_leaves_whole_documents_and_a_consistent_log_on_files(
        project, tmp_path):
    data = tmp_path / "data"
    devices = data / "devices"

    def started() -> bool:
        return devices.is_dir() and sum(1 for _ in devices.glob("dev-*.json")) > BATCH // 2

    kill_when([sys.executable, "-c", WRITER, str(data)], project, started)
    assert file_documents_checked(data, "devices", "dev-*.json") > BATCH // 2


def test_kill_9_while_8_clients_create_keeps_every_acknowledged_create_on_files(
        project, tmp_path):
    """Group commit (creates share their syncs): a server killed with SIGKILL while 8
    clients create has every create it answered 201 for on disk and in the change log, and
    the store opens cleanly after it, its log equal to its documents."""
    data = tmp_path / "data"
    server = Server(project, "device_api", "--data-dir", str(data))
    acknowledged: dict[str, str] = {}  # name -> uid, for every 201
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for n in itertools.count():
                if stop.is_set():
                    return
                name = f"c{worker}-{n:05d}"
                try:
                    answer = http.post("/devices", json={
                        "metadata": {"name": name},
                        "spec": {"type": "server", "ipAddress": "10.0.0.1"}})
                except httpx.TransportError:
                    return  # killed: this one was never acknowledged
                assert answer.status_code == 201, answer.text
                with lock:
                    acknowledged[name] = answer.json()["metadata"]["uid"]

    clients = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for thread in clients:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(acknowledged) < 400 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.process.send_signal(signal.SIGKILL)  # mid-flight: 8 creates at work
        server.process.wait()
    finally:
        stop.set()
        for thread in clients:
            thread.join(30)
        stop_process(server.process)
    assert len(acknowledged) >= 400

    async def check() -> tuple[dict[str, Document], dict[str, int]]:
        storage = FileStorage(data)
        try:
            docs = {d["metadata"]["uid"]: d for d in await storage.list("devices")}
            added: dict[str, int] = {}
            after = await storage.horizon("devices")
            while page := await storage.changes("devices", after):
                added.update((c.document["metadata"]["uid"], c.revision) for c in page
                             if c.type == "ADDED")
                after = page[-1].revision
            # every hole the kill left is settled at once (its writers' locks are gone)
            assert await asyncio.wait_for(storage.latest("devices"), 10) >= after
        finally:
            await storage.close()
        return docs, added

    docs, added = asyncio.run(check())
    for path in (data / "devices").glob("dev-*.json"):
        json.loads(path.read_bytes())  # whole, or this fails
    by_name = {d["metadata"]["name"]: uid for uid, d in docs.items()}
    lost = {name for name, uid in acknowledged.items() if by_name.get(name) != uid}
    assert not lost, f"acknowledged creates missing after the kill: {sorted(lost)[:5]}"
    assert added == {u: int(d["metadata"]["resourceVersion"]) for u, d in docs.items()}
    restarted = Server(project, "device_api", "--data-dir", str(data))  # opens cleanly
    try:
        listed = httpx.get(f"{restarted.url}/devices", timeout=30).json()
        assert {d["metadata"]["name"] for d in listed} >= set(acknowledged)
    finally:
        restarted.stop()
