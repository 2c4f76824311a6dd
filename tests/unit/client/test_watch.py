"""``Client.watch`` / ``AsyncClient.watch`` and ``list --watch``, against a real HTTP server
that speaks SPEC section 8 and cuts, ends and expires watches when the test says so."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fabrica import ServiceSettings
from fabrica.client import (
    AsyncClient,
    Client,
    Expired,
    FabricaError,
    ServerError,
    WatchEvent,
    client_cli,
)
from fabrica.client._watch import watch_events
from tests._support.app import Device
from tests._support.e2e import takes_ctrl_c
from tests._support.watch_server import WatchServer

SETTINGS = ServiceSettings(project="device-api", package="device_api")
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def server() -> Iterator[WatchServer]:
    with WatchServer() as scripted:
        yield scripted


def in_background(action: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


# ---- the stream format -------------------------------------------------------------------------

def test_error_events_raise_the_error_of_their_code() -> None:
    ok = '{"type":"ADDED","object":{"metadata":{"resourceVersion":"3"}}}'
    assert [e["type"] for e in watch_events(["", ok, "  "])] == ["ADDED"]
    with pytest.raises(Expired) as expired:
        list(watch_events([ok, '{"type":"ERROR","object":{"code":410,"message":"too old"}}']))
    assert (expired.value.status, expired.value.message) == (410, "too old")
    with pytest.raises(ServerError, match="storage down"):  # fabrica's own error body
        list(watch_events(['{"type":"ERROR","object":{"error":"storage down","code":503}}']))
    for garbage in ("[1, 2]", "not json", '{"type":"RENAMED","object":{}}', '{"type":"ADDED"}'):
        with pytest.raises(FabricaError, match="watch"):
            list(watch_events([garbage]))


# ---- Client.watch ------------------------------------------------------------------------------

def test_watch_lists_then_follows_typed_events(server: WatchServer) -> None:
    first = server.create("web-01", {"env": "prod"})
    server.create("db-01", {"env": "dev"})
    with Client(server.url, [Device], token="t0k", api_version="v1") as client:
        items, version = client.list_with_version(Device, "env=prod")
        assert [d.metadata.name for d in items] == ["web-01"] and version == "102"
        events = client.watch(Device, "env=prod", resource_version=version,
                              allow_bookmarks=True, timeout_seconds=30)
        in_background(lambda: (server.wait_watching(), server.update("web-01", 8443),
                               server.create("db-02", {"env": "dev"}), server.bookmark(),
                               server.delete("web-01"), server.end()))
        got = list(events)
    assert [(e.type, e.resource_version) for e in got] == [
        ("MODIFIED", "103"), ("BOOKMARK", "104"), ("DELETED", "105")]
    assert isinstance(got[0].object, Device) and got[0].object.spec.port == 8443
    assert got[1].object is None and got[2].object.metadata.uid == first["metadata"]["uid"]
    assert server.requests == [{
        "watch": "true", "resourceVersion": "102", "labelSelector": "env=prod",
        "allowWatchBookmarks": "true", "timeoutSeconds": "30",
        "authorization": "Bearer t0k", "accept": "application/json;version=v1"}]


def test_watch_without_version_starts_with_every_match(server: WatchServer) -> None:
    server.create("a"), server.create("b")
    with Client(server.url, [Device]) as client:
        events = client.watch("device")
        assert [(e.type, e.object.metadata.name) for e in (next(events), next(events))] == [
            ("ADDED", "a"), ("ADDED", "b")]
        events.close()
    assert "resourceVersion" not in server.requests[0]
    assert "allowWatchBookmarks" not in server.requests[0]


def test_a_quiet_watch_never_times_out(server: WatchServer) -> None:
    with Client(server.url, [Device], timeout=0.2) as client:
        events = client.watch(Device)
        # quieter than the client's timeout, then an event
        in_background(lambda: (server.wait_watching(), threading.Event().wait(0.6),
                               server.create("late")))
        assert next(events).object.metadata.name == "late"
        events.close()


def test_a_version_too_old_raises_expired(server: WatchServer) -> None:
    server.create("a")
    server.forget_history()
    with Client(server.url, [Device]) as client, pytest.raises(Expired) as raised:
        list(client.watch(Device, resource_version="100"))
    assert raised.value.status == 410 and "too old" in raised.value.message
    server.refuse = 1
    with Client(server.url, [Device], retries=0) as client, pytest.raises(ServerError):
        list(client.watch(Device))


def test_async_watch(server: WatchServer) -> None:
    server.create("a")

    async def main() -> list[WatchEvent[Device]]:
        async with AsyncClient(server.url, [Device]) as client:
            items, version = await client.list_with_version(Device)
            assert [d.metadata.name for d in items] == ["a"]
            in_background(lambda: (server.wait_watching(), server.update("a", 2),
                                   server.bookmark(), server.end()))
            return [e async for e in client.watch(Device, resource_version=version,
                                                  allow_bookmarks=True)]

    got = asyncio.run(main())
    assert [(e.type, e.resource_version) for e in got] == [("MODIFIED", "102"),
                                                            ("BOOKMARK", "102")]
    assert got[0].object is not None and got[0].object.spec.port == 2


# ---- list --watch ------------------------------------------------------------------------------

def run_cli(server: WatchServer, *args: str) -> Any:
    cli = client_cli([Device], SETTINGS)
    return CliRunner().invoke(cli, ["--server", server.url, "device", "list", *args])


def test_list_watch_prints_a_row_per_change(server: WatchServer) -> None:
    server.create("web-01", {"env": "prod"})
    server.create("db-01", {"env": "dev"})
    in_background(lambda: (server.wait_watching(), server.update("web-01", 8443),
                           server.create("web-02", {"env": "prod"}), server.delete("web-01"),
                           server.end()))
    result = run_cli(server, "-w", "-l", "env=prod")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["EVENT", "NAME", "UID", "TYPE"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["ADDED", "web-01"], ["MODIFIED", "web-01"], ["ADDED", "web-02"], ["DELETED", "web-01"]]
    assert "8443" in lines[2]
    assert len({line.index("web-0") for line in lines[1:]}) == 1  # the columns line up
    assert server.requests[0]["labelSelector"] == "env=prod"


def test_list_watch_json_resumes_and_relists(server: WatchServer) -> None:
    server.create("a")

    def script() -> None:
        server.wait_watching()
        server.create("b")
        server.cut()  # a broken connection: resume after b
        server.wait_watches(2)
        server.wait_watching()
        server.update("a", 9)
        server.pause()
        server.cut()
        server.wait_watches(3)  # the resume, held while things change and history goes
        server.create("c")
        server.delete("b")
        server.forget_history()
        server.resume()  # 410: relist, print the difference, watch from the list's version
        server.wait_watches(4)
        server.wait_watching()
        server.end()

    in_background(script)
    result = run_cli(server, "--watch", "-o", "json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("ADDED", "c"), ("DELETED", "b")]
    versions = [r.get("resourceVersion") for r in server.requests]
    assert versions == ["101", "102", "103", "105"] and server.lists == 2


def test_ctrl_c_ends_list_watch_quietly(server: WatchServer) -> None:
    code = ("import sys; from fabrica import ServiceSettings; "
            "from fabrica.client import client_cli; from tests._support.app import Device; "
            "client_cli([Device], ServiceSettings(project='d', package='d'))"
            "(sys.argv[1:], prog_name='client')")
    server.create("a")
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--server", server.url, "device", "list", "-w"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=takes_ctrl_c)
    assert process.stdout is not None
    assert process.stdout.readline().startswith("EVENT")
    assert process.stdout.readline().split()[:2] == ["ADDED", "a"]
    server.wait_watching()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0 and err == "" and out == ""
