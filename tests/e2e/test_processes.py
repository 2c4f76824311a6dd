"""Several processes of one service: ``serve --workers N`` on one port, ``--role``, names."""

from __future__ import annotations

import shutil
import signal

import httpx
import pytest

from tests._support.e2e import EXAMPLES, Server, fabrica
from tests._support.nats import URL, drop_stream_sync, names

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    fabrica("init", "device-api", "--events", "--events-bus", "nats", "--nats-url", URL,
            cwd=root)
    project = root / "device-api"
    fabrica("add", "resource", "Device", "--prefix", "dev", cwd=project)
    shutil.copy(EXAMPLES / "device" / "device.py", project / "device_api/resources/device.py")
    fabrica("generate", cwd=project)
    return project


def test_workers_share_one_port_and_stop_together(project, tmp_path):
    prefix, stream = names()
    server = Server(project, "device_api", "--workers", "2", "--instance", "api",
                    "--data-dir", str(tmp_path), "--event-prefix", prefix,
                    "--nats-stream", stream)
    try:
        seen = set()
        for _ in range(200):
            with httpx.Client() as client:  # a new connection each time
                seen.add(client.get(f"{server.url}/health").json()["instance"])
            if len(seen) == 2:
                break
        assert seen == {"api-0", "api-1"}
        created = httpx.post(f"{server.url}/devices", timeout=10, json={
            "name": "d1", "type": "server", "ipAddress": "10.0.0.1"})
        assert created.status_code == 201
        for _ in range(20):  # whichever worker answers serves the same files
            assert httpx.get(f"{server.url}/devices/d1").status_code == 200
        assert httpx.get(f"{server.url}/ready").json()["status"] == "ready"
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(15) == 0
        assert "[api-0]" in server.output() and "[api-1]" in server.output()
    finally:
        server.stop()
        drop_stream_sync(stream)
