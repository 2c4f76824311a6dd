"""`create_many` killed with SIGKILL mid-way (SPEC section 11): on SQL only whole batches
are stored (one transaction each, with their labels and change-log entries); on files
every document is whole and the change log holds exactly the stored documents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests._support.crash import file_documents_checked, kill_when, sql_counts
from tests._support.e2e import make_device_project

pytestmark = pytest.mark.e2e

BATCH = 400

# Creates batches of Devices through the project's own store, forever (until killed).
WRITER = """
import asyncio, sys
from fabrica.storage import open_storage
from fabrica.store import NewResource, ResourceStore
from device_api.resources.device import Device

async def main(where):
    storage = open_storage(where)
    store = ResourceStore(storage, [Device])
    for batch in range(1000):
        await store.create_many([
            NewResource(Device, f"d-{batch:04d}-{n:04d}",
                        {"type": "server", "ipAddress": "10.0.0.1"},
                        labels={"batch": str(batch)}) for n in range(BATCH)])

asyncio.run(main(sys.argv[1]))
""".replace("BATCH", str(BATCH))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_device_project(tmp_path_factory.mktemp("e2e-create-many"))


def test_kill_9_mid_create_many_leaves_whole_batches_on_sql(project, tmp_path):
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    subprocess.run([sys.executable, "-m", "device_api.server", "migrate", "--database-url",
                    url], cwd=project, check=True, capture_output=True, timeout=120)
    kill_when([sys.executable, "-c", WRITER, url], project, lambda: sql_counts(url).rows > 0)
    left = sql_counts(url)
    assert left.rows > 0 and left.rows % BATCH == 0  # whole batches only
    assert left.logged == left.rows and left.labels == left.rows and left.pending == 0


def test_kill_9_mid_create_many_leaves_whole_documents_and_a_consistent_log_on_files(
        project, tmp_path):
    data = tmp_path / "data"
    devices = data / "devices"

    def started() -> bool:
        return devices.is_dir() and sum(1 for _ in devices.glob("dev-*.json")) > BATCH // 2

    kill_when([sys.executable, "-c", WRITER, str(data)], project, started)
    assert file_documents_checked(data, "devices", "dev-*.json") > BATCH // 2
