"""Past one process: two generated servers sharing one PostgreSQL database and one NATS bus.

Whatever one server writes, the other serves, and its event reaches subscribers of both, as
SPEC section 4 says: "the NATS bus carries the same events on subjects equal to the type".
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
from pathlib import Path

import httpx
import pytest

from tests._support.e2e import EXAMPLES, Server, fabrica
from tests._support.nats import drop_stream_sync, names
from tests._support.sqldb import migrate, postgres_schema

pytestmark = pytest.mark.e2e

NATS_URL = "nats://127.0.0.1:4222"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scale")
    fabrica("init", "device-api", "--storage-type", "sql", "--db", "postgres", "--events",
            "--events-bus", "nats", "--nats-url", NATS_URL, cwd=root)
    project = root / "device-api"
    fabrica("add", "resource", "Device", "--prefix", "dev", cwd=project)
    shutil.copy(EXAMPLES / "device" / "device.py", project / "device_api/resources/device.py")
    fabrica("generate", cwd=project)
    return project


def test_two_servers_share_postgresql_and_nats(project):
    name = f"web-{secrets.token_hex(4)}"
    prefix, stream = names()
    events = ("--event-prefix", prefix, "--nats-stream", stream)
    with postgres_schema() as url:
        migrate(url)
        first = Server(project, "device_api", "--database-url", url, *events)
        second = Server(project, "device_api", "--database-url", url, *events)
        try:
            assert f"JetStream stream {stream} on NATS at {NATS_URL}" in second.output()
            seen: list[dict] = []
            listening = threading.Event()

            def listen() -> None:
                with httpx.stream("GET", f"{second.url}/events?type={prefix}.device.*",
                                  timeout=30) as response:
                    for line in response.iter_lines():
                        if line.startswith(":"):
                            listening.set()
                        elif line.startswith("data: "):
                            event = json.loads(line[6:])
                            if event["data"]["resourceName"] == name:  # not other runs'
                                seen.append(event)
                                return

            reader = threading.Thread(target=listen, daemon=True)
            reader.start()
            assert listening.wait(10)
            body = {"name": name, "type": "server", "ipAddress": "10.0.0.1"}
            created = httpx.post(f"{first.url}/devices", json=body, timeout=10)
            assert created.status_code == 201
            reader.join(15)
            assert seen and seen[0]["type"] == f"{prefix}.device.created"
            assert seen[0]["resourceuid"] == created.json()["metadata"]["uid"]
            assert httpx.get(f"{second.url}/devices/{name}").json() == created.json()
            # Optimistic concurrency holds across processes: two writers holding the same
            # ETag, one on each server; the first wins and the second gets 412.
            tag = created.headers["etag"]
            statuses = [httpx.patch(f"{srv.url}/devices/{name}", json={"port": port},
                                    headers={"If-Match": tag}, timeout=10).status_code
                        for srv, port in ((first, 1001), (second, 1002))]
            assert statuses == [200, 412]
        finally:
            first.stop()
            second.stop()
            drop_stream_sync(stream)
