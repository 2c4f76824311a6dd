"""The rack example's ``io.fabrica.rack.provisioned``: once per rack, when it first becomes
Ready; not on requeues, spec changes, self-healing or a server restart (SPEC section 5).

Real processes: the seed project built with the real CLI (requeue period cut to about a
second, so requeues happen within the test), served as a child process, read over SSE.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._support.e2e import Server, fabrica, make_rack_project
from tests._support.wait import eventually_sync

pytestmark = pytest.mark.e2e

PROVISIONED = "io.fabrica.rack.provisioned"
MERGE = {"Content-Type": "application/merge-patch+json"}


class Listener:
    """Reads ``GET /events?type=PATTERN`` in a thread; `events` grows as they arrive.

    A plain socket speaking HTTP/1.0 (so no chunked framing), because `close` must be able to
    hang up while the reader waits: shutting the socket down wakes it.
    """

    def __init__(self, url: str, pattern: str) -> None:
        self.events: list[dict[str, Any]] = []
        address = httpx.URL(url)
        self._sock = socket.create_connection((address.host, address.port), timeout=10)
        self._sock.settimeout(None)
        query = httpx.QueryParams({"type": pattern})
        self._sock.sendall(f"GET /events?{query} HTTP/1.0\r\n\r\n".encode())
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._connected.wait(10), "no SSE connection"

    def _read(self) -> None:
        with contextlib.suppress(OSError), self._sock.makefile("rb") as stream:
            for raw in stream:
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    self._connected.set()
                elif line.startswith("data: "):
                    self.events.append(json.loads(line[6:]))

    def close(self) -> None:
        """Hang up, so the server can stop without waiting for this stream."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._sock.close()

    def names(self) -> list[str]:
        return [e["data"]["resourceName"] for e in self.events]


# The shared helper, with the time a generated server's reconcilers may need when loaded.
wait_for = functools.partial(eventually_sync, timeout=60.0, interval=0.05)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = make_rack_project(tmp_path_factory.mktemp("rack-provisioned"))
    config = project / ".fabrica.yaml"
    text = config.read_text()
    assert "requeue_delay: 5" in text
    config.write_text(text.replace("requeue_delay: 5", "requeue_delay: 0.02"))  # 1.2 s
    fabrica("generate", cwd=project)
    return project


def reconciles(http: httpx.Client) -> float:
    text = http.get("/metrics").text
    found = re.findall(r'^fabrica_reconcile_total\{kind="Rack",result="\w+"\} (\S+)$', text,
                       re.MULTILINE)
    return sum(float(n) for n in found)


def template(http: httpx.Client, name: str, chassis: int, blades: int, nodes: int) -> str:
    body = {"name": name, "chassisCount": chassis,
            "chassisConfig": {"bladeCount": blades,
                              "bladeConfig": {"nodeCount": nodes, "bmcMode": "shared"}}}
    response = http.post("/racktemplates", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["metadata"]["uid"])


def ready(http: httpx.Client, name: str, generation: int = 1) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        rack = http.get(f"/racks/{name}").json()
        status = rack["status"]
        done = status["phase"] == "Ready" and status["observedGeneration"] >= generation
        return rack if done else None
    return wait_for(check)


def test_provisioned_once_per_rack_across_requeues_spec_changes_and_a_restart(project, tmp_path):
    data = str(tmp_path / "data")
    first = Server(project, "rack_inventory", "--data-dir", data)
    try:
        seen = Listener(first.url, PROVISIONED)
        with httpx.Client(base_url=first.url, timeout=30) as http:
            small = template(http, "small", 1, 2, 2)
            big = template(http, "big", 2, 2, 2)
            for name in ("r1", "r2"):
                assert http.post("/racks", json={"name": name, "templateUID": small}
                                 ).status_code == 201
            racks = {name: ready(http, name) for name in ("r1", "r2")}
            wait_for(lambda: len(seen.events) >= 2)

            event = next(e for e in seen.events if e["data"]["resourceName"] == "r1")
            uid = racks["r1"]["metadata"]["uid"]
            assert (event["type"], event["subject"], event["action"]) == \
                (PROVISIONED, f"racks/{uid}", "provisioned")
            assert event["source"] == f"rack-inventory/resources/Rack/{uid}"
            assert (event["resourcekind"], event["resourceuid"]) == ("Rack", uid)
            assert event["data"]["details"] == {"template": "small", "chassis": 1, "blades": 2,
                                                "nodes": 4, "bmcs": 2}
            provisioned_at = {n: r["status"]["provisionedAt"] for n, r in racks.items()}
            assert all(provisioned_at.values())

            # requeues: the racks are reconciled again every 1.2 s, and stay Ready
            after_create = reconciles(http)
            wait_for(lambda: reconciles(http) >= after_create + 4)
            # a spec change, and a template change that reshapes r2 (Provisioning → Ready)
            assert http.patch("/racks/r1", json={"row": "A"}, headers=MERGE).status_code == 200
            assert http.patch("/racks/r2", json={"templateUID": big}, headers=MERGE
                              ).status_code == 200
            ready(http, "r1", 2)
            assert ready(http, "r2", 2)["status"]["totalNodes"] == 8
            # self-healing: a deleted node comes back, through another rack reconcile
            assert http.delete("/nodes/r1-c0-b0-n0").status_code == 200
            wait_for(lambda: http.get("/nodes/r1-c0-b0-n0").status_code == 200)
            settled = reconciles(http)
            wait_for(lambda: reconciles(http) >= settled + 2)
            assert sorted(seen.names()) == ["r1", "r2"]
        seen.close()
    finally:
        first.stop()

    second = Server(project, "rack_inventory", "--data-dir", data)
    try:
        seen = Listener(second.url, PROVISIONED)
        with httpx.Client(base_url=second.url, timeout=30) as http:
            wait_for(lambda: reconciles(http) >= 4)  # both racks, at start and requeued
            uid = template(http, "after-restart", 1, 1, 1)
            http.post("/racks", json={"name": "r3", "templateUID": uid})
            ready(http, "r3")
            wait_for(lambda: seen.events)
            time.sleep(0.5)  # kept: proves r1 and r2 are NOT announced meanwhile
            assert seen.names() == ["r3"]  # r1 and r2 were not announced again
            for name in ("r1", "r2"):
                status = http.get(f"/racks/{name}").json()["status"]
                assert status["phase"] == "Ready"
                assert status["provisionedAt"] == provisioned_at[name]
        seen.close()
    finally:
        second.stop()
