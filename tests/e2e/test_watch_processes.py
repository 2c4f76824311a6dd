"""Watch across processes (SPEC section 8): two generated servers on one data dir, and on
one PostgreSQL database; a write through one is seen by a watch on the other, and a read
through the other right after the write already shows it (consistent reads from cache).
A SIGTERM'd server with an open watch stops promptly; a server killed with writes in
flight restarts without waiting for them."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from fabrica.storage.file._changes import read_counter
from tests._support.e2e import Server, make_device_project
from tests._support.sqldb import postgres_schema
from tests._support.storage import name_locks_held, wait_for_counter

pytestmark = pytest.mark.e2e

WEB = {"type": "server", "ipAddress": "10.0.0.1"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_device_project(tmp_path_factory.mktemp("watch"))


class Watch:
    """``GET /devices?watch=true`` on a server, read by a thread as events come."""

    def __init__(self, url: str, **params: str) -> None:
        self.events: list[dict[str, Any]] = []
        self._arrived = threading.Condition()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._response = self._client.send(self._client.build_request(
            "GET", f"{url}/devices", params={"watch": "true", **params}), stream=True)
        assert self._response.status_code == 200
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._response.iter_lines():
                if line:
                    with self._arrived:
                        self.events.append(json.loads(line))
                        self._arrived.notify_all()
        except httpx.HTTPError:
            pass
        with self._arrived:
            self.events.append({"type": "END"})
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.events) >= count, timeout), \
                self.events
            return list(self.events)

    def close(self) -> None:
        self._response.close()
        self._client.close()


def two_servers(project: Path, *storage: str) -> Iterator[tuple[Server, Server]]:
    a = Server(project, "device_api", *storage)
    try:
        b = Server(project, "device_api", *storage)
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def check_a_write_in_one_is_seen_by_the_other(a: Server, b: Server) -> None:
    listed = httpx.get(f"{b.url}/devices")
    version = listed.headers["X-Resource-Version"]
    watch = Watch(b.url, resourceVersion=version)
    try:
        created = httpx.post(f"{a.url}/devices", json={"name": "w1", **WEB})
        assert created.status_code == 201, created.text
        # read through b at once: its cache catches up before it answers
        got = httpx.get(f"{b.url}/devices/w1")
        assert got.status_code == 200 and got.json() == created.json()
        patched = httpx.patch(f"{a.url}/devices/w1", json={"port": 8443})
        events = watch.wait_for(2)
        assert [(e["type"], e["object"]) for e in events] == [
            ("ADDED", created.json()), ("MODIFIED", patched.json())]
        again = httpx.get(f"{b.url}/devices")
        assert int(again.headers["X-Resource-Version"]) == int(
            patched.json()["metadata"]["resourceVersion"])
    finally:
        watch.close()


def test_two_servers_on_one_data_dir(project: Path, tmp_path: Path) -> None:
    for a, b in two_servers(project, "--data-dir", str(tmp_path / "data")):
        check_a_write_in_one_is_seen_by_the_other(a, b)
        # SIGTERM with a watch open: the server ends the stream and stops
        watch = Watch(b.url)
        watch.wait_for(1)  # ADDED w1: the watch is open
        b.process.send_signal(signal.SIGTERM)
        # (uvicorn stops gracefully, then re-raises the signal: killed by SIGTERM)
        assert b.process.wait(15) in (0, -signal.SIGTERM)
        assert "Shutting down" in b.output()
        assert watch.wait_for(2)[-1] == {"type": "END"}
        watch.close()


def test_two_servers_on_one_postgresql_database(project: Path) -> None:
    with postgres_schema() as url:
        for a, b in two_servers(project, "--database-url", url):
            check_a_write_in_one_is_seen_by_the_other(a, b)


def test_a_server_killed_with_writes_in_flight_restarts_without_waiting_for_them(
        project: Path, tmp_path: Path) -> None:
    """kill -9 with 32 creates in flight (each has its revision and waits at a name lock
    this test holds): the restarted server's first list is already past every hole they
    left, agrees with the stored documents, and its log names each dead writer and no
    timed wait. It used to wait 3 s per hole, one after another (96 s), or answer from
    before them."""
    data = tmp_path / "data"
    directory = data / "devices"
    server = Server(project, "device_api", "--data-dir", str(data))
    try:
        created = httpx.post(f"{server.url}/devices", json={"name": "a", **WEB})
        assert created.status_code == 201, created.text
        start = read_counter(directory)
        with name_locks_held(directory), ThreadPoolExecutor(32) as pool:
            posts = [pool.submit(httpx.post, f"{server.url}/devices", timeout=60,
                                 json={"name": f"in-flight-{n}", **WEB}) for n in range(32)]
            wait_for_counter(directory, start + 32)
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(30)
        assert all(post.exception() is not None for post in posts)  # none was answered
    finally:
        server.stop()
    restarted = Server(project, "device_api", "--data-dir", str(data))
    try:
        listed = httpx.get(f"{restarted.url}/devices")
        assert listed.status_code == 200, listed.text
        assert int(listed.headers["X-Resource-Version"]) == start + 32
        assert listed.json() == [created.json()]
        again = httpx.post(f"{restarted.url}/devices", json={"name": "b", **WEB})
        assert int(again.json()["metadata"]["resourceVersion"]) == start + 33
        log = restarted.output()
        assert log.count("its writer is gone") == 32 and "never appeared" not in log, log
    finally:
        restarted.stop()
