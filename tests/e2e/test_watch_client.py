"""Watch from the client side against a generated server process (SPEC section 8): an
informer's cache after concurrent writers equals a fresh list, an informer resumes across a
server restart, and ``python -m PKG.client KIND list -w`` prints the changes as they happen."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fabrica.client import Client, Informer
from tests._support.app import Device
from tests._support.e2e import Server, make_device_project, takes_ctrl_c

pytestmark = pytest.mark.e2e

PKG = "device_api"
WEB = {"type": "server", "ipAddress": "10.0.0.1"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_device_project(tmp_path_factory.mktemp("watch"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server(project: Path, data_dir: Path) -> Iterator[Server]:
    srv = Server(project, PKG, "--data-dir", str(data_dir))
    yield srv
    srv.stop()


class Mirror:
    """What an informer's handlers alone make of the changes: uid → (name, port, labels),
    with a condition to wait on."""

    def __init__(self, informer: Informer[Device]) -> None:
        self.state: dict[str, tuple[str, int, dict[str, str]]] = {}
        self.calls: list[tuple[str, str]] = []
        self.changed = threading.Condition()
        informer.on_add(lambda d: self._set("add", d))
        informer.on_update(lambda old, new: self._set("update", new))
        informer.on_delete(lambda d: self._set("delete", d, gone=True))

    def _set(self, what: str, dev: Device, gone: bool = False) -> None:
        with self.changed:
            self.calls.append((what, dev.metadata.name))
            if gone:
                self.state.pop(dev.metadata.uid or "", None)
            else:
                self.state[dev.metadata.uid or ""] = view(dev)
            self.changed.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 20) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), (self.calls[-10:], self.state)


def view(dev: Device) -> tuple[str, int, dict[str, str]]:
    return dev.metadata.name, dev.spec.port, dict(dev.metadata.labels)


def writer(url: str, worker: int, rounds: int) -> None:
    """Creates, patches, relabels and deletes its own devices, in a random order."""
    rng = random.Random(worker)
    mine: list[str] = []
    with httpx.Client(base_url=url, timeout=10) as http:
        for n in range(rounds):
            action = rng.random()
            if not mine or action < 0.4:
                name = f"w{worker}-{n}"
                body = {"name": name, **WEB, "labels": {"env": rng.choice(["prod", "dev"])}}
                assert http.post("/devices", json=body).status_code == 201
                mine.append(name)
            elif action < 0.8:
                patch = {"port": rng.randrange(1, 65535)}
                assert http.patch(f"/devices/{rng.choice(mine)}", json=patch).status_code == 200
            else:
                name = mine.pop(rng.randrange(len(mine)))
                assert http.delete(f"/devices/{name}").status_code == 200


def test_informer_equals_a_fresh_list_after_concurrent_writers(server: Server) -> None:
    for n in range(5):  # some before the informer starts
        httpx.post(f"{server.url}/devices", json={"name": f"early-{n}", **WEB}).raise_for_status()
    with Client(server.url, [Device]) as client:
        informer = Informer(client, Device)
        prod = Informer(client, Device, "env=prod")
        mirror, prod_mirror = Mirror(informer), Mirror(prod)
        with informer, prod:
            assert informer.wait_for_sync(10) and prod.wait_for_sync(10)
            threads = [threading.Thread(target=writer, args=(server.url, w, 40))
                       for w in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            fresh, version = client.list_with_version(Device)
            expected = {d.metadata.uid: view(d) for d in fresh}
            mirror.wait_for(lambda: mirror.state == expected)
            assert {d.metadata.uid: view(d) for d in informer.list()} == expected
            assert int(informer.resource_version or 0) >= int(version or 0)
            prod_expected = {uid: v for uid, v in expected.items() if v[2].get("env") == "prod"}
            prod_mirror.wait_for(lambda: prod_mirror.state == prod_expected)
            assert {d.metadata.uid: view(d) for d in prod.list()} == prod_expected
            assert [view(d) for d in informer.list("env=prod")] == \
                [view(d) for d in prod.list()]


def test_informer_resumes_after_a_server_restart(project: Path, data_dir: Path) -> None:
    first = Server(project, PKG, "--data-dir", str(data_dir))
    port = first.port
    try:
        httpx.post(f"{first.url}/devices", json={"name": "before", **WEB}).raise_for_status()
        with Client(first.url, [Device]) as client:
            informer = Informer(client, Device, backoff=0.05, max_backoff=0.5)
            mirror = Mirror(informer)
            with informer:
                assert informer.wait_for_sync(10)
                first.stop()  # the watch ends (or breaks); reconnects fail until the restart
                first = Server(project, PKG, "--data-dir", str(data_dir), port=port)
                httpx.patch(f"{first.url}/devices/before", json={"port": 8443}
                            ).raise_for_status()
                httpx.post(f"{first.url}/devices", json={"name": "after", **WEB}
                           ).raise_for_status()
                mirror.wait_for(lambda: len(mirror.calls) >= 3)
                assert mirror.calls == [("add", "before"), ("update", "before"),
                                        ("add", "after")]
                assert [view(d)[:2] for d in informer.list()] == [("after", 443),
                                                                    ("before", 8443)]
    finally:
        first.stop()


def test_list_watch_prints_each_change(project: Path, server: Server) -> None:
    httpx.post(f"{server.url}/devices", json={"name": "web-01", **WEB, "labels": {"env": "prod"}}
               ).raise_for_status()
    command = [sys.executable, "-m", f"{PKG}.client", "--server", server.url, "device", "list",
               "-w", "-l", "env=prod", "-o", "json"]
    process = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ),
                               preexec_fn=takes_ctrl_c)
    try:
        assert process.stdout is not None

        def next_event() -> tuple[str, str, int]:
            event = json.loads(process.stdout.readline())  # type: ignore[union-attr]
            obj = event["object"]
            return event["type"], obj["metadata"]["name"], obj["spec"]["port"]

        assert next_event() == ("ADDED", "web-01", 443)
        with httpx.Client(base_url=server.url) as http:
            http.post("/devices", json={"name": "db-01", **WEB, "labels": {"env": "dev"}})
            http.patch("/devices/web-01", json={"port": 8443}).raise_for_status()
            http.post("/devices", json={"name": "web-02", **WEB, "labels": {"env": "prod"}})
            http.delete("/devices/web-01").raise_for_status()
        assert [next_event() for _ in range(3)] == [
            ("MODIFIED", "web-01", 8443), ("ADDED", "web-02", 443), ("DELETED", "web-01", 8443)]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
        assert process.returncode == 0 and out == "" and err == ""
        # the server ends a watch at its timeoutSeconds, and then list -w ends too
        ended = subprocess.run([*command, "--watch-timeout", "1"], cwd=project, timeout=30,
                               capture_output=True, text=True)
        assert ended.returncode == 0, ended.stderr
        assert [json.loads(line)["object"]["metadata"]["name"]
                for line in ended.stdout.splitlines()] == ["web-02"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


SCRIPT = """
from device_api.client import Client, Informer, WatchEvent
from device_api.resources.device import Device, DeviceSpec

with Client() as client:
    items, version = client.list_with_version(Device)
    with Informer(client, Device) as informer:
        assert informer.wait_for_sync(10)
        print(sorted(d.metadata.name for d in informer.list()))
    client.create(Device, "c", DeviceSpec(type="server", ip_address="10.0.0.3"))
    for event in client.watch(Device, resource_version=version, timeout_seconds=1):
        assert isinstance(event, WatchEvent)
        print(event.type, event.object.metadata.name)
"""


def test_the_generated_client_watches(project: Path, server: Server) -> None:
    for name in ("a", "b"):
        httpx.post(f"{server.url}/devices", json={"name": name, **WEB}).raise_for_status()
    ran = subprocess.run([sys.executable, "-c", SCRIPT], cwd=project, capture_output=True,
                         text=True, timeout=60,
                         env={**os.environ, "DEVICE_API_SERVER": server.url})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["['a', 'b']", "ADDED c"]
