"""The generated client of a generated project, used as people and scripts use it: the
``python -m PKG.client`` command line as typed in a shell (output and exit codes), and the
generated ``Client`` imported by a script, both against a real server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._support.e2e import Server, free_port, make_api_project

pytestmark = pytest.mark.e2e

PKG = "api_svc"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_api_project(tmp_path_factory.mktemp("client"))


@pytest.fixture(scope="module")
def server(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(project, PKG, "--data-dir", str(tmp_path_factory.mktemp("data")))
    yield srv
    srv.stop()


def client(project: Path, server: Server | None, *args: str, **env: str
           ) -> subprocess.CompletedProcess[str]:
    server_args = ["--server", server.url] if server else []
    return subprocess.run([sys.executable, "-m", f"{PKG}.client", *server_args, *args],
                          cwd=project, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_cli_as_typed(project: Path, server: Server) -> None:
    spec = '{"name": "web-01", "type": "server", "ipAddress": "10.0.0.1", "labels": {"a": "b"}}'
    created = client(project, server, "device", "create", "--spec", spec)
    assert created.returncode == 0, created.stderr
    uid = json.loads(created.stdout)["metadata"]["uid"]

    listed = client(project, server, "device", "list", "-l", "a=b")
    assert listed.returncode == 0
    assert all(word in listed.stdout for word in ("NAME", "UID", "AGE", "web-01", uid))

    patched = client(project, server, "device", "patch", "web-01", "--set", "port=8443",
                     "-o", "yaml")
    assert patched.returncode == 0 and "port: 8443" in patched.stdout

    invalid = client(project, server, "device", "patch", "web-01", "--set", "port=0")
    assert invalid.returncode == 1 and invalid.stdout == ""
    assert "invalid spec (400 Bad Request)" in invalid.stderr and "spec.port" in invalid.stderr

    deleted = client(project, server, "device", "delete", uid)
    assert deleted.returncode == 0 and "Device deleted successfully" in deleted.stdout
    missing = client(project, server, "device", "get", "web-01")
    assert missing.returncode == 1 and "not found (404 Not Found)" in missing.stderr

    usage = client(project, server, "device", "create", "--spec", "{oops")
    assert usage.returncode == 2 and "not valid JSON" in usage.stderr


def test_cli_reads_the_server_from_the_environment(project: Path, server: Server) -> None:
    found = client(project, None, "config", "list", "-o", "json",
                   API_SVC_SERVER=server.url.removeprefix("http://"))
    assert found.returncode == 0 and isinstance(json.loads(found.stdout), list)
    refused = client(project, None, "--retries", "0", "config", "list",
                     API_SVC_SERVER=f"127.0.0.1:{free_port()}")
    assert refused.returncode == 1 and "API_SVC_SERVER" in refused.stderr


def test_cli_watch_events_tails_the_stream(project: Path, server: Server) -> None:
    command = [sys.executable, "-m", f"{PKG}.client", "--server", server.url,
               "config", "list", "--watch-events", "--max-events", "1"]
    with subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as watcher:
        deadline, n = time.monotonic() + 30, 0
        while watcher.poll() is None and time.monotonic() < deadline:
            # Until the watcher has subscribed, writes go unseen: keep writing.
            httpx.post(f"{server.url}/configs", json={"name": f"watched-{n}"})
            n += 1
            time.sleep(0.1)
        out, err = watcher.communicate(timeout=10)
    assert watcher.returncode == 0, err
    assert "io.fabrica.config.created  configs/cfg-" in out and " watched-" in out


SCRIPT = """
from {pkg}.client import Client, Conflict, NotFound, PreconditionFailed, ValidationError
from {pkg}.resources_generated import Config, Device

with Client() as client:
    cfg = client.create(Config, "script", {{"value": "v1"}}, labels={{"team": "x"}})
    assert type(cfg) is Config and cfg.metadata.uid.startswith("cfg-")
    cfg = client.update_with_retry(Config, "script", lambda c: setattr(c.spec, "value", "v2"))
    cfg = client.patch("config", "script", {{"replicas": 3}})
    cfg = client.patch(Config, "script", [{{"op": "replace", "path": "/value", "value": "v3"}}],
                       patch_type="json")
    cfg = client.patch(Config, "script", {{"value": "v4"}}, patch_type="shorthand")
    assert (cfg.spec.value, cfg.spec.replicas, cfg.metadata.generation) == ("v4", 3, 5)
    assert len(client.versions(Config, "script")) == 5
    cfg = client.patch_status(cfg, {{"phase": "Ready"}})
    cfg = client.update_status(Config, "script", {{"phase": "Done"}})
    assert [c.metadata.name for c in client.iter_list(Config, "team=x", limit=1)] == ["script"]
    for call, error in [
        (lambda: client.get(Device, "nope"), NotFound),
        (lambda: client.create(Config, "script", {{}}), Conflict),
        (lambda: client.patch(Config, "script", {{}}, if_match="1"), PreconditionFailed),
        (lambda: client.patch(Config, "script", {{"replicas": -1}}), ValidationError),
    ]:
        try:
            call()
        except error as exc:
            print(type(exc).__name__, exc.status, [d["field"] for d in exc.details])
        else:
            raise AssertionError(error)
    print(client.delete(Config, cfg.metadata.uid)["message"])
"""


def test_generated_client_library(project: Path, server: Server) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(pkg=PKG)], cwd=project,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "API_SVC_SERVER": server.url})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "NotFound 404 []", "Conflict 409 []", "PreconditionFailed 412 []",
        "ValidationError 400 ['spec.replicas']", "Config deleted successfully"]


def test_console_scripts_point_at_the_generated_mains(project: Path) -> None:
    scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"api-svc-server", "api-svc-client"}
    check = textwrap.dedent(f"""
        import importlib
        for target in {sorted(scripts.values())!r}:
            module, attr = target.split(":")
            assert callable(getattr(importlib.import_module(module), attr)), target
    """)
    done = subprocess.run([sys.executable, "-c", check], cwd=project, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
