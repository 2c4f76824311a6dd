"""SPEC section 9 end to end, as a user lives it: a project whose Device was stored in v1
moves on to v2 (``ipAddress`` renamed ``address``, ``location`` added) and keeps serving
v1, deprecated. Real `fabrica` commands, real server processes on the same data, the
generated client CLI and library, and schemathesis against the versioned OpenAPI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from tests._support.e2e import EXAMPLES, Server, fabrica

pytestmark = pytest.mark.e2e

PKG = "device_api"
V1 = "application/json;version=v1"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """device-api with data written while Device was stored in v1, then moved on to v2."""
    root = tmp_path_factory.mktemp("versions")
    fabrica("init", "device-api", cwd=root)
    project = root / "device-api"
    fabrica("add", "resource", "Device", "--prefix", "dev", cwd=project)
    resources = project / PKG / "resources"
    shutil.copy(EXAMPLES / "device" / "device.py", resources / "device.py")
    fabrica("generate", cwd=project)
    old = Server(project, PKG, "--data-dir", str(data_dir))
    try:
        made = httpx.post(f"{old.url}/devices", json={
            "name": "legacy-01", "type": "router", "ipAddress": "10.0.0.1"})
        assert made.status_code == 201 and made.json()["schemaVersion"] == "v1"
    finally:
        old.stop()
    # The README's steps: freeze v1, move device.py on, edit the conversions, generate.
    added = fabrica("add", "version", "Device", "v1", "--deprecated", cwd=project)
    assert "device_api/resources/device_v1.py" in added.stdout
    shutil.copy(EXAMPLES / "api-versions" / "device.py", resources / "device.py")
    shutil.copy(EXAMPLES / "api-versions" / "device_v1.py", resources / "device_v1.py")
    generated = fabrica("generate", cwd=project)
    assert "also served: Device v1 (deprecated)" in generated.stdout
    return project


@pytest.fixture(scope="module")
def server(project: Path, data_dir: Path) -> Iterator[Server]:
    srv = Server(project, PKG, "--data-dir", str(data_dir))
    yield srv
    srv.stop()


def cli(project: Path, server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"{PKG}.client", "--server", server.url,
                           *args], cwd=project, capture_output=True, text=True, timeout=60)


def test_old_data_reads_in_both_versions(server: Server) -> None:
    assert "/devices (v2, v1 deprecated)" in server.output()
    v2 = httpx.get(f"{server.url}/devices/legacy-01")
    assert v2.headers["X-Schema-Version"] == "v2" and "Warning" not in v2.headers
    assert v2.json()["spec"] == {"type": "router", "address": "10.0.0.1", "port": 443,
                                 "tags": {}, "location": ""}
    v1 = httpx.get(f"{server.url}/devices/legacy-01", headers={"Accept": V1})
    assert v1.headers["Warning"] == '299 - "Device v1 is deprecated; use v2"'
    assert v1.headers["Deprecation"] == "true"
    assert v1.headers["Content-Type"] == V1
    assert v1.json()["spec"] == {"type": "router", "ipAddress": "10.0.0.1", "port": 443,
                                 "tags": {}}


def test_every_write_through_v1_keeps_location(server: Server, project: Path) -> None:
    url = f"{server.url}/devices"
    made = httpx.post(url, json={"name": "web-01", "type": "server", "address": "10.1.0.1",
                                 "location": "rack-7"})
    assert made.status_code == 201, made.text
    writes = [
        ("PUT", "", V1, {"type": "server", "ipAddress": "10.1.0.2"}),
        ("PATCH", "", "application/merge-patch+json;version=v1", {"port": 8443}),
        ("PATCH", "", "application/json-patch+json;version=v1",
         [{"op": "add", "path": "/tags/t", "value": "x"}]),
        ("PATCH", "", "application/shorthand-patch+json;version=v1", {"ipAddress": "10.1.0.3"}),
        ("PUT", "/status", V1, {"health": "ok"}),
        ("PATCH", "/status", "application/merge-patch+json;version=v1", {"errorCount": 2}),
    ]
    for method, suffix, content_type, body in writes:
        done = httpx.request(method, f"{url}/web-01{suffix}", content=json.dumps(body),
                             headers={"Content-Type": content_type})
        assert done.status_code == 200, (method, suffix, done.text)
        assert done.headers["X-Schema-Version"] == "v1" and "Warning" in done.headers
    final = httpx.get(f"{url}/web-01").json()
    assert final["spec"] == {"type": "server", "address": "10.1.0.3", "port": 8443,
                             "tags": {"t": "x"}, "location": "rack-7"}
    assert final["status"] == {"health": "ok", "errorCount": 2}


def test_unknown_versions(server: Server) -> None:
    got = httpx.get(f"{server.url}/devices", headers={"Accept": "application/json;version=v3"})
    assert got.status_code == 406 and "served: v2, v1" in got.json()["error"]
    put = httpx.put(f"{server.url}/devices/legacy-01", content=b'{"type": "router"}',
                    headers={"Content-Type": "application/json;version=v3"})
    assert put.status_code == 415 and "served: v2, v1" in put.json()["error"]


def test_client_cli_with_api_version(project: Path, server: Server) -> None:
    created = cli(project, server, "--api-version", "v1", "device", "create", "--spec",
                  '{"name": "cli-01", "type": "switch", "ipAddress": "10.2.0.1"}')
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["spec"]["ipAddress"] == "10.2.0.1"
    assert created.stderr.strip() == "Warning: Device v1 is deprecated; use v2"
    patched = cli(project, server, "--api-version", "v1", "device", "patch", "cli-01",
                  "--set", "ipAddress=10.2.0.2", "-o", "json")
    assert patched.returncode == 0, patched.stderr
    assert json.loads(patched.stdout)["spec"]["ipAddress"] == "10.2.0.2"
    shown = cli(project, server, "device", "get", "cli-01", "-o", "json")
    assert json.loads(shown.stdout)["spec"]["address"] == "10.2.0.2" and shown.stderr == ""
    table = cli(project, server, "--api-version", "v1", "device", "list")
    assert table.returncode == 0 and "cli-01" in table.stdout and "deprecated" in table.stderr
    bad = cli(project, server, "--api-version", "v3", "device", "get", "cli-01")
    assert bad.returncode == 1 and "served: v2, v1" in bad.stderr
    typo = cli(project, server, "--api-version", "one", "device", "get", "cli-01")
    assert typo.returncode == 2 and "not an API version" in typo.stderr
    assert "device v2, v1" in cli(project, server, "--help").stdout


def test_client_library_with_api_version(project: Path, server: Server) -> None:
    script = textwrap.dedent(f"""
        import logging, warnings
        from {PKG}.client import Client
        from {PKG}.resources_generated import Device, DeviceV1

        seen = []
        with Client({server.url!r}, api_version="v1", on_warning=seen.append) as old:
            dev = old.create(Device, "lib-01", {{"type": "server", "ipAddress": "10.3.0.1"}})
            assert type(dev) is DeviceV1 and dev.spec.ip_address == "10.3.0.1", dev
            dev.spec.port = 8080
            dev = old.update(dev)
            assert dev.spec.port == 8080 and dev.schema_version == "v1"
            listed = old.list("device")
            assert all(type(d) is DeviceV1 for d in listed)
        assert seen and all("deprecated" in text for text in seen), seen
        with Client({server.url!r}) as new:
            now = new.get(Device, "lib-01")
            assert type(now) is Device and now.spec.address == "10.3.0.1"
            now = new.patch(Device, "lib-01", {{"location": "dc-1"}})
            one = new.get(DeviceV1, "lib-01")  # a served class picks its version per call
            assert one.spec.ip_address == "10.3.0.1" and one.spec.port == 8080
            one.spec.tags = {{"k": "v"}}
            new.update(one)
            after = new.get(Device, "lib-01")
            assert after.spec.location == "dc-1" and after.spec.tags == {{"k": "v"}}
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": "error"})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_watch_and_informer_in_an_api_version(project: Path, server: Server) -> None:
    script = textwrap.dedent(f"""
        from {PKG}.client import Client, Informer
        from {PKG}.resources_generated import Device, DeviceV1

        with Client({server.url!r}, api_version="v1", on_warning=lambda text: None) as old:
            with Informer(old, Device) as informer:
                assert informer.wait_for_sync(10)
                assert informer.list() and all(type(d) is DeviceV1 for d in informer.list())
            items, version = old.list_with_version(Device)
            old.create(Device, "watch-01", {{"type": "server", "ipAddress": "10.4.0.1"}})
            events = list(old.watch(Device, resource_version=version, timeout_seconds=1))
            assert [(e.type, type(e.object)) for e in events] == [("ADDED", DeviceV1)], events
            assert events[0].object.spec.ip_address == "10.4.0.1"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_openapi_is_valid_and_documents_both_versions(project: Path, server: Server) -> None:
    served = httpx.get(f"{server.url}/openapi.json").json()
    validate(served)
    assert served == json.loads((project / "openapi.json").read_text())
    get = served["paths"]["/devices/{id}"]["get"]["responses"]["200"]["content"]
    assert set(get) == {"application/json", "application/json;version=v1",
                        "application/json;version=v2"}


def test_schemathesis_on_the_versioned_api(server: Server, project: Path) -> None:
    checks = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
              "response_headers_conformance", "response_schema_conformance")
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
               "--checks", ",".join(checks), "--seed", "20240601",
               "--generation-database", "none", "--request-timeout", "5", "--max-failures",
               "5", "--no-color", "--max-examples", "8"]
    # From the project: its schemathesis.toml gives every watch a timeoutSeconds.
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert "Traceback" not in server.output()
