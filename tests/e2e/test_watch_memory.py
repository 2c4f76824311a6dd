"""Unread watches cost a bounded amount of a server's memory (issue: 200 unread watches of a
few-MB collection took 1.35 GB, each holding about twice the collection's JSON). A real
server process, a collection of ~3.6 MB, 200 watches whose clients read nothing: the
server's peak RSS (VmHWM) grows by less than `BOUND`, the figure is printed."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests._support.e2e import Server, make_device_project

pytestmark = pytest.mark.e2e

WATCHES = 200
OBJECTS = 400
#: ~9 KB of JSON per device: 400 of them are ~3.6 MB.
TAGS = {f"tag{i:03d}": "x" * 36 for i in range(200)}
#: What 200 unread watches may add to the server's peak memory: each holds at most the
#: chunks it handed out (two of about 64 KiB), plus its connection's own state.
BOUND = 128 * 1024 * 1024


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_device_project(tmp_path_factory.mktemp("watch-memory"))


def peak_rss(pid: int) -> int:
    """VmHWM of `pid`, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def unread_watch(port: int) -> socket.socket:
    """A watch whose client reads its response's head, then nothing more: by then the
    server has pushed all it could before the connection filled up."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /devices?watch=true HTTP/1.1\r\nHost: test\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "the server closed the watch"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def test_two_hundred_unread_watches_stay_within_the_bound(project, tmp_path):
    server = Server(project, "device_api", "--data-dir", str(tmp_path / "data"))
    sockets: list[socket.socket] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for n in range(OBJECTS):
                created = client.post("/devices", json={
                    "name": f"d{n:03d}", "type": "server", "ipAddress": "10.0.0.1",
                    "tags": TAGS})
                assert created.status_code == 201
            size = len(client.get("/devices").content)
            with client.stream("GET", "/devices", params={"watch": "true",
                                                          "timeoutSeconds": "1"}) as watch:
                assert sum(1 for line in watch.iter_lines() if line) == OBJECTS
        before = peak_rss(server.process.pid)
        started = time.monotonic()
        sockets = [unread_watch(server.port) for _ in range(WATCHES)]
        grown = peak_rss(server.process.pid) - before
        metrics = httpx.get(f"{server.url}/metrics").text
        print(f"\ncollection {size / 1e6:.1f} MB; {WATCHES} unread watches opened in "
              f"{time.monotonic() - started:.1f} s; peak RSS {before / 2**20:.0f} MiB -> "
              f"+{grown / 2**20:.0f} MiB ({grown / WATCHES / 1024:.0f} KiB a watch)")
        assert grown < BOUND
        assert f"fabrica_watches {WATCHES}.0" in metrics
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
