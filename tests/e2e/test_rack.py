"""The seed scenarios through HTTP on a generated rack-inventory server (SPEC section 5)."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests._support.e2e import Server, make_rack_project
from tests._support.storage import name_locks_held, wait_for_counter
from tests._support.wait import eventually_sync

pytestmark = pytest.mark.e2e

COUNTED = ("chassis", "blades", "nodes", "bmcs")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_rack_project(tmp_path_factory.mktemp("rack"))


@pytest.fixture
def server(project, tmp_path):
    srv = Server(project, "rack_inventory", "--data-dir", str(tmp_path / "data"))
    yield srv
    srv.stop()


def template(http: httpx.Client, name: str, chassis: int, blades: int, nodes: int,
             mode: str) -> str:
    body = {"name": name, "chassisCount": chassis,
            "chassisConfig": {"bladeCount": blades,
                              "bladeConfig": {"nodeCount": nodes, "bmcMode": mode}}}
    response = http.post("/racktemplates", json=body)
    assert response.status_code == 201, response.text
    return response.json()["metadata"]["uid"]


# The shared helper, with the time a generated server's reconcilers may need when loaded.
wait_for = functools.partial(eventually_sync, timeout=60.0, interval=0.1)


def rack_when_ready(http: httpx.Client, name: str, timeout: float = 60.0) -> dict:
    def ready():
        rack = http.get(f"/racks/{name}").json()
        return rack if rack["status"]["phase"] == "Ready" else None
    return wait_for(ready, timeout=timeout)


def counts(http: httpx.Client) -> dict[str, int]:
    return {plural: len(http.get(f"/{plural}").json()) for plural in COUNTED}


def test_shared_bmc_rack(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        uid = template(http, "standard-rack", 2, 4, 2, "shared")
        assert http.post("/racks", json={"name": "rack-01", "templateUID": uid,
                                         "location": "datacenter-1"}).status_code == 201
        rack = rack_when_ready(http, "rack-01")
        status = rack["status"]
        assert (status["totalChassis"], status["totalBlades"], status["totalNodes"],
                status["totalBMCs"]) == (2, 8, 16, 8)
        assert len(status["chassisUIDs"]) == 2
        ready = status["conditions"][0]
        assert (ready["type"], ready["status"], ready["observedGeneration"]) == ("Ready", "True", 1)
        assert counts(http) == {"chassis": 2, "blades": 8, "nodes": 16, "bmcs": 8}
        blade = http.get("/blades/rack-01-c0-b0").json()
        assert len(blade["status"]["nodeUIDs"]) == 2 and len(blade["status"]["bmcUIDs"]) == 1
        node = http.get("/nodes/rack-01-c0-b0-n1").json()
        assert node["spec"]["bmcUID"] == blade["status"]["bmcUIDs"][0]
        assert node["metadata"]["ownerReferences"][0]["uid"] == blade["metadata"]["uid"]


def test_the_node_hook_refuses_a_node_without_its_bmc(server):
    """examples/rack-reconciliation/node_hooks.py, wired by the generated server: a node
    written through the API meets the same check as the reconciler's nodes."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        body = {"name": "stray", "bladeUID": "blade-00000000", "bmcUID": "bmc-00000000",
                "nodeNumber": 0}
        refused = http.post("/nodes", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["details"] == [{"field": "spec.bmcUID", "message":
                                              "BMC 'bmc-00000000' does not exist"}]
        assert http.post("/nodes?dryRun=All", json=body).status_code == 422
        bmc = http.post("/bmcs", json={"name": "b1", "bladeUID": "blade-00000000"}).json()
        made = http.post("/nodes", json={**body, "bmcUID": bmc["metadata"]["uid"]})
        assert made.status_code == 201, made.text
        assert http.get("/nodes/stray").status_code == 200


def test_dedicated_bmc_rack(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        uid = template(http, "dedicated-bmc-rack", 1, 2, 4, "dedicated")
        http.post("/racks", json={"name": "rack-02", "templateUID": uid})
        status = rack_when_ready(http, "rack-02")["status"]
        assert (status["totalChassis"], status["totalBlades"], status["totalNodes"],
                status["totalBMCs"]) == (1, 2, 8, 8)
        assert counts(http) == {"chassis": 1, "blades": 2, "nodes": 8, "bmcs": 8}


def test_missing_template_gives_error_and_no_children(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        http.post("/racks", json={"name": "rack-x", "templateUID": "rktmpl-00000000"})

        def errored():
            rack = http.get("/racks/rack-x").json()
            return rack if rack["status"]["phase"] == "Error" else None
        rack = wait_for(errored)
        assert "rktmpl-00000000" in rack["status"]["message"]
        assert "not found" in rack["status"]["message"]
        ready = rack["status"]["conditions"][0]
        assert (ready["status"], ready["reason"]) == ("False", "TemplateNotFound")
        assert counts(http) == {"chassis": 0, "blades": 0, "nodes": 0, "bmcs": 0}


def test_template_validation(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        body = {"name": "t", "chassisCount": 43,
                "chassisConfig": {"bladeCount": 0,
                                  "bladeConfig": {"nodeCount": 9, "bmcMode": "both"}}}
        response = http.post("/racktemplates", json=body)
        assert response.status_code == 400
        fields = {d["field"] for d in response.json()["details"]}
        assert fields == {"spec.chassisCount", "spec.chassisConfig.bladeCount",
                          "spec.chassisConfig.bladeConfig.nodeCount",
                          "spec.chassisConfig.bladeConfig.bmcMode"}
        missing = http.post("/racks", json={"name": "r"})
        assert {d["field"] for d in missing.json()["details"]} == {"spec.templateUID"}


def test_deleting_the_rack_removes_everything_it_provisioned(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        uid = template(http, "t", 2, 2, 2, "dedicated")
        http.post("/racks", json={"name": "doomed", "templateUID": uid})
        http.post("/racks", json={"name": "kept", "templateUID": uid})
        rack_when_ready(http, "doomed")
        rack_when_ready(http, "kept")
        assert counts(http) == {"chassis": 4, "blades": 8, "nodes": 16, "bmcs": 16}
        assert http.delete("/racks/doomed").status_code == 200
        wait_for(lambda: counts(http) == {"chassis": 2, "blades": 4, "nodes": 8, "bmcs": 8})
        assert all(n["metadata"]["name"].startswith("kept-") for n in http.get("/nodes").json())
        assert http.get("/racktemplates/t").status_code == 200


def test_a_deleted_node_is_recreated(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        uid = template(http, "t", 1, 2, 2, "shared")
        http.post("/racks", json={"name": "heal", "templateUID": uid})
        rack_when_ready(http, "heal")
        old = http.get("/nodes/heal-c0-b1-n0").json()["metadata"]["uid"]
        assert http.delete("/nodes/heal-c0-b1-n0").status_code == 200

        def recreated():
            node = http.get("/nodes/heal-c0-b1-n0")
            return node.status_code == 200 and node.json()["metadata"]["uid"] != old
        wait_for(recreated)
        assert counts(http) == {"chassis": 1, "blades": 2, "nodes": 4, "bmcs": 2}


def test_events_stream_over_sse(server):
    received: list[dict] = []
    connected = threading.Event()

    def listen():
        with httpx.stream("GET", f"{server.url}/events?type=io.fabrica.rack.*",
                          timeout=30) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith(":"):
                    connected.set()
                if line.startswith("data: "):
                    received.append(json.loads(line[6:]))
                    if any(e["data"].get("metadata", {}).get("updateType") == "status"
                           for e in received):
                        return

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    assert connected.wait(10)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        http.post("/racks", json={"name": "watched", "templateUID": "rktmpl-00000000"})
    reader.join(20)
    assert not reader.is_alive()
    created = received[0]
    assert created["type"] == "io.fabrica.rack.created" and created["specversion"] == "1.0"
    uid = created["resourceuid"]
    assert created["subject"] == f"racks/{uid}"
    assert created["source"] == f"rack-inventory/resources/Rack/{uid}"
    assert created["data"]["resourceName"] == "watched"
    assert {"action", "resourceKind", "resourceUID", "resourceName", "changeTime"} <= \
        set(created["data"])
    assert all(e["type"].startswith("io.fabrica.rack.") for e in received)


def test_metrics(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        uid = template(http, "t", 1, 1, 1, "shared")
        http.post("/racks", json={"name": "m", "templateUID": uid})
        rack_when_ready(http, "m")
        # The worker counts a reconcile once it returns, a moment after the Ready status it
        # saved is visible: wait for the count, not just for Ready (run first, the series
        # did not exist yet when /metrics answered).
        def counted() -> str | None:
            text = http.get("/metrics").text
            return text if 'fabrica_reconcile_total{kind="Rack",result="requeue"}' in text \
                else None

        text = wait_for(counted)
    assert 'fabrica_workqueue_depth{kind="Rack"}' in text
    assert "fabrica_http_request_duration_seconds_bucket" in text


def test_kill_9_mid_provisioning_then_restart_gives_exact_counts(project, tmp_path):
    """Killed with the last level (the nodes, one `create_many`) in flight: its revisions
    taken, its files being written. The test holds the nodes' name locks until the kill, so
    the kill always lands there (it used to wait for 60 nodes by polling, and a level now
    comes in one batch: the rack was sometimes Ready before the kill)."""
    data = str(tmp_path / "data")
    first = Server(project, "rack_inventory", "--data-dir", data)
    try:
        with httpx.Client(base_url=first.url, timeout=30) as http, \
                name_locks_held(tmp_path / "data" / "nodes"):
            uid = template(http, "big", 6, 8, 8, "dedicated")
            http.post("/racks", json={"name": "big-01", "templateUID": uid})
            wait_for_counter(tmp_path / "data" / "nodes", 384)  # the batch is numbered
            assert http.get("/racks/big-01").json()["status"]["phase"] != "Ready"
            assert len(http.get("/bmcs").json()) == 384
            os.kill(first.process.pid, signal.SIGKILL)
            first.process.wait(10)
    finally:
        first.stop()
    second = Server(project, "rack_inventory", "--data-dir", data)
    try:
        with httpx.Client(base_url=second.url, timeout=30) as http:
            status = rack_when_ready(http, "big-01", timeout=120)["status"]
            expected = {"chassis": 6, "blades": 48, "nodes": 384, "bmcs": 384}
            assert counts(http) == expected
            assert (status["totalChassis"], status["totalBlades"], status["totalNodes"],
                    status["totalBMCs"]) == (6, 48, 384, 384)
            names = [n["metadata"]["name"] for n in http.get("/nodes").json()]
            assert len(names) == len(set(names)) == 384
    finally:
        second.stop()


def test_the_seed_client_usage(project, server):
    """`python -m PKG.client rack create --spec '{"name": "rack-01", ...}'`, as the seed
    walkthrough types it, then the generated client shows what the reconciler built."""
    def client(*args):
        return subprocess.run([sys.executable, "-m", "rack_inventory.client", *args],
                              cwd=project, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "RACK_INVENTORY_SERVER": server.url})

    made = client("racktemplate", "create", "--spec", json.dumps({
        "name": "small", "chassisCount": 1,
        "chassisConfig": {"bladeCount": 1, "bladeConfig": {"nodeCount": 2,
                                                           "bmcMode": "shared"}}}))
    assert made.returncode == 0, made.stderr
    uid = json.loads(made.stdout)["metadata"]["uid"]
    rack = client("rack", "create", "--spec",
                  json.dumps({"name": "rack-01", "templateUID": uid, "location": "dc-1"}))
    assert rack.returncode == 0, rack.stderr
    assert json.loads(rack.stdout)["spec"]["templateUID"] == uid
    with httpx.Client(base_url=server.url, timeout=30) as http:
        rack_when_ready(http, "rack-01")
    nodes = client("node", "list")
    assert nodes.returncode == 0 and nodes.stdout.count("rack-01-c0-b0-n") == 2
    assert client("rack", "get", "rack-02").returncode == 1
