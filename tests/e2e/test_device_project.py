"""What a user does: fabrica init, add resource, generate, serve, and talk HTTP to it."""

from __future__ import annotations

import hashlib
import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests._support.e2e import Server, fabrica, make_device_project

pytestmark = pytest.mark.e2e

WEB = {"name": "web-01", "type": "server", "ipAddress": "10.0.0.1"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_device_project(tmp_path_factory.mktemp("e2e"))


@pytest.fixture
def server(project, tmp_path):
    srv = Server(project, "device_api", "--data-dir", str(tmp_path / "data"))
    yield srv
    srv.stop()


def raw_get(server: Server, path: str) -> int:
    """GET with the path exactly as given (httpx would normalise the dots away)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status


def test_walkthrough(server, tmp_path):
    with httpx.Client(base_url=server.url) as http:
        created = http.post("/devices", json=WEB)
        assert created.status_code == 201
        obj = created.json()
        uid = obj["metadata"]["uid"]
        assert obj["kind"] == "Device" and uid.startswith("dev-")
        assert obj["spec"] == {"type": "server", "ipAddress": "10.0.0.1", "port": 443, "tags": {}}
        stored = json.loads((tmp_path / "data" / "devices" / f"{uid}.json").read_text())
        assert stored == obj
        assert http.get(f"/devices/{uid}").json() == obj
        assert http.get("/devices/web-01").json() == obj
        updated = http.put(f"/devices/{uid}", json={**WEB, "port": 8443}).json()
        assert updated["metadata"]["generation"] == 2
        status = http.put(f"/devices/{uid}/status", json={"health": "ok"}).json()
        assert status["status"]["health"] == "ok" and status["spec"]["port"] == 8443
        patched = http.patch(f"/devices/{uid}", json={"tags": {"a": "b"}}).json()
        assert patched["spec"]["tags"] == {"a": "b"}
        assert [o["metadata"]["uid"] for o in http.get("/devices").json()] == [uid]
        deleted = http.delete(f"/devices/{uid}")
        assert deleted.json() == {"message": "Device deleted successfully", "uid": uid}
        assert http.get(f"/devices/{uid}").status_code == 404
        assert http.get("/health").json()["status"] == "healthy"
        assert http.get("/openapi.json").json()["openapi"].startswith("3.1")
        assert http.get("/docs").status_code == 200


def test_client_errors(server):
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/devices/nope").status_code == 404
        bad = http.post("/devices", json={"name": "x", "type": "toaster", "port": 99999})
        assert bad.status_code == 400
        assert {d["field"] for d in bad.json()["details"]} == {"spec.type", "spec.port",
                                                               "spec.ipAddress"}
        assert http.post("/devices", content=b"{oops").status_code == 400
        assert http.post("/devices", json=WEB).status_code == 201
        dup = http.post("/devices", json=WEB)
        assert dup.status_code == 409 and dup.json()["code"] == 409
        huge = http.post("/devices", json={**WEB, "name": "big", "tags": {"k": "x" * 2_000_000}})
        assert huge.status_code == 413
        assert [o["metadata"]["name"] for o in http.get("/devices").json()] == ["web-01"]


@pytest.mark.parametrize("path", ["/devices/../../etc/passwd", "/devices/..%2F..%2Fetc%2Fpasswd",
                                  "/devices/%2e%2e", "/devices/dev-00000000%2F..%2F..",
                                  "/devices/.names", "/devices/.lock"])
def test_ids_cannot_escape_the_data_dir(server, path):
    with httpx.Client(base_url=server.url) as http:
        http.post("/devices", json=WEB)
    assert raw_get(server, path) == 404


def test_concurrent_creates_of_one_name_exactly_one_wins(server):
    def create(n: int) -> int:
        body = {**WEB, "name": "contested", "ipAddress": f"10.0.0.{n}"}
        return httpx.post(f"{server.url}/devices", json=body, timeout=30).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = sorted(pool.map(create, range(32)))
    assert statuses == [201] + [409] * 31
    assert len(httpx.get(f"{server.url}/devices").json()) == 1


def test_two_servers_share_one_data_dir(project, tmp_path):
    data = str(tmp_path / "shared")
    first = Server(project, "device_api", "--data-dir", data)
    second = Server(project, "device_api", "--data-dir", data)
    try:
        def create(n: int) -> int:
            target = first if n % 2 else second
            return httpx.post(f"{target.url}/devices", json={**WEB, "name": "contested"},
                              timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = sorted(pool.map(create, range(16)))
        assert statuses == [201] + [409] * 15
        seen = httpx.get(f"{second.url}/devices/contested").json()

        def bump(n: int) -> int:
            target = first if n % 2 else second
            return httpx.patch(f"{target.url}/devices/contested",
                               json={"tags": {f"t{n}": "x"}}, timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(bump, range(16))) == {200}
        final = httpx.get(f"{first.url}/devices/contested").json()
        assert set(final["spec"]["tags"]) == {f"t{n}" for n in range(16)}
        assert final["metadata"]["uid"] == seen["metadata"]["uid"]
    finally:
        first.stop()
        second.stop()


def test_data_survives_a_restart(project, tmp_path):
    data = str(tmp_path / "data")
    first = Server(project, "device_api", "--data-dir", data)
    try:
        uid = httpx.post(f"{first.url}/devices", json=WEB).json()["metadata"]["uid"]
    finally:
        first.stop()
    again = Server(project, "device_api", "--data-dir", data)
    try:
        assert httpx.get(f"{again.url}/devices/web-01").json()["metadata"]["uid"] == uid
    finally:
        again.stop()


def test_environment_variables_configure_the_server(project, tmp_path):
    srv = Server(project, "device_api", env={"DEVICE_API_DATA_DIR": str(tmp_path / "envdata")})
    try:
        httpx.post(f"{srv.url}/devices", json=WEB)
        assert list((tmp_path / "envdata" / "devices").glob("dev-*.json"))
        log = srv.output()
        assert "storage: file" in log and "listening on http://127.0.0.1" in log
    finally:
        srv.stop()


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def test_generate_twice_is_byte_identical(project):
    before = tree_digest(project / "device_api")
    fabrica("generate", cwd=project)
    assert tree_digest(project / "device_api") == before
