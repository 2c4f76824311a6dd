"""Following ``GET /events`` from the clients and the command line (``--watch-events``)."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from fabrica.client import AsyncClient, Client, NotFound, RawClient, client_cli
from fabrica.client._sse import event_objects
from fabrica.events import CloudEvent
from fabrica.server import create_app
from fabrica.storage import FileStorage
from tests._support.thread_server import ThreadServer
from tests.unit.client.test_client import KINDS, SETTINGS, run

EVENTS = dataclasses.replace(SETTINGS, events=True)
WEB = {"type": "server", "ipAddress": "10.0.0.1"}


@pytest.fixture
def server(tmp_path: Any) -> Iterator[str]:
    app = create_app(KINDS, FileStorage(tmp_path / "data"), settings=EVENTS)
    with ThreadServer(app) as url:
        yield url


def create(url: str, name: str, labels: dict[str, str] | None = None) -> None:
    body = {"name": name, **WEB, "labels": labels or {}}
    assert httpx.post(f"{url}/devices", json=body).status_code == 201


class Writer:
    """Creates devices in the background until stopped: something for a watcher to see,
    whenever it happens to subscribe."""

    def __init__(self, url: str, labels: tuple[str, ...] = ("prod",)) -> None:
        self.url, self.labels = url, labels
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.wait(0.03):
            env = self.labels[n % len(self.labels)]
            create(self.url, f"{env}-{n}", {"env": env})
            n += 1

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(5)


def test_sse_parsing() -> None:
    lines = [": connected", "", "id: 1", 'data: {"a":', "data: 1}", "", ": keepalive", "",
             "event: message", 'data: {"b": 2}', "",
             "event: fabrica.dropped", 'data: {"dropped": 3}', "",  # a notice, no CloudEvent
             'data: {"unterminated": true}']
    assert list(event_objects(lines)) == [{"a": 1}, {"b": 2}]
    opened: list[str] = []
    assert list(event_objects([": connected", ""], lambda: opened.append("yes"))) == []
    assert opened == ["yes"]


def test_raw_and_typed_clients_follow_events(server: str) -> None:
    with RawClient(server, KINDS) as raw:
        events = raw.watch_events("io.fabrica.device.*", on_open=lambda: create(server, "a"))
        event = next(events)
        events.close()
    assert (event["type"], event["data"]["resourceName"]) == ("io.fabrica.device.created", "a")
    with Client(server, KINDS) as client:
        typed = client.watch_events("**", on_open=lambda: create(server, "b"))
        got = next(typed)
        typed.close()
    assert isinstance(got, CloudEvent) and got.resourcekind == "Device"
    assert got.data["resource"]["metadata"]["name"] == "b"


async def test_async_client_follows_events(server: str) -> None:
    async with AsyncClient(server, KINDS) as client:
        events = client.watch_events("io.fabrica.*.created", on_open=lambda: create(server, "c"))
        event = await anext(events)
        await events.aclose()
    assert event.type == "io.fabrica.device.created" and event.subject.startswith("devices/")


def test_events_off_is_a_typed_not_found(tmp_path: Any) -> None:
    app = create_app(KINDS, FileStorage(tmp_path / "data"), settings=SETTINGS)
    with ThreadServer(app) as url, Client(url, KINDS) as client:
        with pytest.raises(NotFound):
            next(client.watch_events())
        # The command line offers --watch-events when the project has events on; a server
        # without them answers 404, which the CLI reports like any other error.
        cli = client_cli(KINDS, EVENTS)
        result = CliRunner().invoke(cli, ["--server", url, "--watch-events"])
    assert result.exit_code == 1 and "Not Found (404 Not Found)" in result.stderr


def test_cli_watch_events_prints_json_lines(server: str) -> None:
    cli = client_cli(KINDS, EVENTS)
    with Writer(server):
        result = CliRunner().invoke(cli, ["--server", server, "-o", "json", "--watch-events",
                                          "--event-type", "io.fabrica.device.*",
                                          "--max-events", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        event = json.loads(line)
        assert event["type"] == "io.fabrica.device.created" and event["specversion"] == "1.0"


def test_cli_list_watch_events_lists_then_follows_matching_changes(server: str) -> None:
    create(server, "before", {"env": "prod"})
    create(server, "other", {"env": "dev"})
    cli = client_cli(KINDS, EVENTS)
    with Writer(server, labels=("dev", "prod")):
        result = CliRunner().invoke(cli, ["--server", server, "device", "list", "-l",
                                          "env=prod", "--watch-events", "--max-events", "2"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "before" in out and "other" not in out
    followed = [line for line in out.splitlines() if "io.fabrica.device.created" in line]
    assert len(followed) == 2 and all(" prod-" in line for line in followed)
    assert all(line.split()[2].startswith("devices/dev-") for line in followed)


def test_cli_without_events_has_no_watch_option(server: str) -> None:
    result = run(server, "--watch-events")
    assert result.exit_code == 2 and "No such option" in result.stderr
    result = run(server, "device", "list", "--watch-events")
    assert result.exit_code == 2
