"""SQL storage as a user meets it: `fabrica init --storage-type sql`, `serve`, `migrate`.

A generated project on SQLite (the default file under the data dir, migrated at start),
then the same server on the PostgreSQL and MariaDB servers with ``--database-url`` (an
empty database gets its schema at start; an older one waits for `migrate`), and the
rack example provisioning a rack on SQLite.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests._support.e2e import (
    EXAMPLES,
    RACK_FILES,
    RACK_KINDS,
    Server,
    fabrica,
)
from tests._support.sqldb import mysql_database, postgres_schema
from tests._support.wait import eventually_sync

pytestmark = pytest.mark.e2e

WEB = {"name": "web-01", "type": "server", "ipAddress": "10.0.0.1",
       "labels": {"env": "prod", "tier": "web"}}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e-sql")
    fabrica("init", "device-api", "--storage-type", "sql", "--db", "sqlite", cwd=root)
    project = root / "device-api"
    fabrica("add", "resource", "Device", "--prefix", "dev", cwd=project)
    shutil.copy(EXAMPLES / "device" / "device.py", project / "device_api/resources/device.py")
    fabrica("generate", cwd=project)
    return project


def manage(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "device_api.server", *args], cwd=project,
                          capture_output=True, text=True, timeout=60)


def crud(server: Server, storage: str) -> None:
    """The HTTP contract, briefly, on whatever database `server` uses."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/health").json()["storage"] == storage
        created = http.post("/devices", json=WEB)
        assert created.status_code == 201, created.text
        obj = created.json()
        uid = obj["metadata"]["uid"]
        assert http.get(f"/devices/{uid}").json() == obj
        assert http.get("/devices/web-01").json() == obj
        assert http.post("/devices", json=WEB).status_code == 409
        for n in range(5):
            body = {**WEB, "name": f"db-{n}", "labels": {"env": "prod", "tier": "db"}}
            assert http.post("/devices", json=body).status_code == 201
        page = http.get("/devices", params={"labelSelector": "env=prod,tier!=web", "limit": 3})
        assert [d["metadata"]["name"] for d in page.json()] == ["db-0", "db-1", "db-2"]
        rest = http.get(page.links["next"]["url"])
        assert [d["metadata"]["name"] for d in rest.json()] == ["db-3", "db-4"]
        etag = http.get(f"/devices/{uid}").headers["etag"]
        updated = http.put(f"/devices/{uid}", json={**WEB, "port": 8443},
                           headers={"If-Match": etag})
        assert updated.status_code == 200 and updated.json()["metadata"]["generation"] == 2
        stale = http.patch(f"/devices/{uid}", json={"port": 1}, headers={"If-Match": etag})
        assert stale.status_code == 412
        status = http.put(f"/devices/{uid}/status", json={"health": "ok"}).json()
        assert status["status"]["health"] == "ok" and status["spec"]["port"] == 8443
        patched = http.patch(f"/devices/{uid}", json={"tags": {"a": "b"}}).json()
        assert patched["spec"]["tags"] == {"a": "b"}
        deleted = http.delete(f"/devices/{uid}")
        assert deleted.json() == {"message": "Device deleted successfully", "uid": uid}
        assert http.get(f"/devices/{uid}").status_code == 404
        assert len(http.get("/devices").json()) == 5


def test_sqlite_by_default_under_the_data_dir(project, tmp_path):
    data = tmp_path / "data"
    server = Server(project, "device_api", "--data-dir", str(data))
    try:
        crud(server, "sqlite")
        assert (data / "device_api.db").is_file()
        assert "SQL backend (sqlite)" in server.output()
    finally:
        server.stop()
    again = Server(project, "device_api", "--data-dir", str(data))  # the data stays
    try:
        assert len(httpx.get(f"{again.url}/devices").json()) == 5
    finally:
        again.stop()


def test_fabricas_sqlite_url_form(project, tmp_path):
    relative = f"data-{tmp_path.name}/app.db"
    server = Server(project, "device_api", "--database-url", f"file:{relative}?_fk=1")
    try:
        crud(server, "sqlite")
    finally:
        server.stop()
    assert (project / relative).is_file()
    shutil.rmtree(project / relative.split("/")[0])


def test_postgresql_gets_its_schema_at_start_and_upgrades_by_migrate(project):
    with postgres_schema() as url:
        server = Server(project, "device_api", "--database-url", url)
        try:
            crud(server, "postgresql")
            assert "database schema created (revision" in server.output()
        finally:
            server.stop()
        assert "already at" in manage(project, "migrate", "--database-url", url).stdout
        asyncio.run(_downgrade(url, "0001"))  # as an older release left it
        refused = manage(project, "serve", "--database-url", url, "--port", "0")
        assert refused.returncode != 0
        assert "schema revision 0001" in refused.stderr
        assert "python -m device_api.server migrate" in refused.stderr
        migrated = manage(project, "migrate", "--database-url", url)
        assert migrated.returncode == 0, migrated.stderr
        assert "migrated from 0001 to" in migrated.stdout
        server = Server(project, "device_api", "--database-url", url)
        try:
            assert len(httpx.get(f"{server.url}/devices").json()) == 5  # nothing lost
        finally:
            server.stop()


async def _downgrade(url: str, revision: str) -> None:
    from fabrica.storage import SQLStorage

    storage = SQLStorage(url)
    try:
        await storage.downgrade(revision)
    finally:
        await storage.close()


def test_mariadb_gets_its_schema_at_start(project):
    with mysql_database() as url:
        server = Server(project, "device_api", "--database-url", url,
                        env={"DEVICE_API_LOG_LEVEL": "info"})
        try:
            crud(server, "mysql")
            assert "database schema created (revision" in server.output()
        finally:
            server.stop()


def test_mariadb_with_auto_migrate(project):
    with mysql_database() as url:
        server = Server(project, "device_api", "--database-url", url, "--auto-migrate",
                        env={"DEVICE_API_LOG_LEVEL": "info"})
        try:
            crud(server, "mysql")
            assert "database schema created (revision" in server.output()
        finally:
            server.stop()


def test_sqlite_without_auto_migrate_says_to_migrate(project, tmp_path):
    refused = manage(project, "serve", "--data-dir", str(tmp_path / "new"), "--no-auto-migrate")
    assert refused.returncode == 1
    assert "has no fabrica schema yet: run `python -m device_api.server migrate`" in refused.stderr
    migrated = manage(project, "migrate", "--data-dir", str(tmp_path / "new"))
    assert migrated.returncode == 0 and (tmp_path / "new" / "device_api.db").is_file()


def test_bad_database_urls_are_refused_plainly(project, tmp_path):
    bad = manage(project, "serve", "--database-url", "oracle://x@y/z")
    assert bad.returncode == 2 and "unsupported database 'oracle'" in bad.stderr
    unreachable = manage(project, "migrate", "--database-url",
                         "postgresql://postgres@127.0.0.1:1/test")
    assert unreachable.returncode == 1 and "unavailable" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_rack_example_on_sqlite(tmp_path):
    """The seed walkthrough, with `--storage-type sql --db sqlite`: a rack provisions."""
    fabrica("init", "rack-inventory", "--module", "github.com/example/rack-inventory",
            "--storage-type", "sql", "--db", "sqlite", "--events", "--reconcile", cwd=tmp_path)
    project = tmp_path / "rack-inventory"
    for kind in RACK_KINDS:
        fabrica("add", "resource", kind, cwd=project)
    for name in RACK_FILES:
        shutil.copy(EXAMPLES / "rack-reconciliation" / f"{name}.py",
                    project / "rack_inventory" / "resources")
    shutil.copy(EXAMPLES / "rack-reconciliation" / "rack_reconciler.py",
                project / "rack_inventory" / "reconcilers")
    (project / "rack_inventory" / "hooks").mkdir(exist_ok=True)
    shutil.copy(EXAMPLES / "rack-reconciliation" / "node_hooks.py",
                project / "rack_inventory" / "hooks" / "node.py")
    fabrica("generate", cwd=project)
    server = Server(project, "rack_inventory", "--data-dir", str(tmp_path / "data"))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            body = {"name": "standard", "chassisCount": 2,
                    "chassisConfig": {"bladeCount": 4,
                                      "bladeConfig": {"nodeCount": 2, "bmcMode": "shared"}}}
            template = http.post("/racktemplates", json=body).json()["metadata"]["uid"]
            assert http.post("/racks", json={"name": "rack-01", "templateUID": template,
                                             "location": "dc-1"}).status_code == 201
            status = _wait_ready(http, "rack-01")
            assert (status["totalChassis"], status["totalBlades"], status["totalNodes"],
                    status["totalBMCs"]) == (2, 8, 16, 8)
            assert len(http.get("/nodes").json()) == 16
    finally:
        server.stop()


def _wait_ready(http: httpx.Client, name: str, timeout: float = 60) -> dict:
    def ready() -> dict | None:
        status = http.get(f"/racks/{name}").json()["status"]
        return status if status.get("phase") == "Ready" else None
    return eventually_sync(ready, timeout=timeout, interval=0.1)
