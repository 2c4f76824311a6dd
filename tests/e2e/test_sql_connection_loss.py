"""Connection loss: 503 (`Unavailable`) while the database is gone, then recovery by itself.

A restart, clean and crashed, under a running server process, on a PostgreSQL instance of
this test's own (initdb + pg_ctl on a spare port), never the shared server; and, on the
shared PostgreSQL and MariaDB servers, killing only this test's own connections.

PostgreSQL refuses to run as root, so as root the private instance belongs to the
``postgres`` user, in a directory of its own under /tmp: pytest's tmp_path sits inside a
root-only (0700) directory that another user cannot enter.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import text

from fabrica.storage import SQLStorage, Unavailable
from tests._support.e2e import EXAMPLES, Server, fabrica, free_port
from tests._support.sqldb import database
from tests._support.wait import eventually, eventually_sync

pytestmark = pytest.mark.e2e

WEB = {"name": "web-01", "type": "server", "ipAddress": "10.0.0.1"}


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """A throw-away PostgreSQL instance on 127.0.0.1:`port`."""

    def __init__(self) -> None:
        bin_dir = _pg_bin()
        if bin_dir is None:
            pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
        self.bin = bin_dir
        self.as_user: list[str] = []
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run initdb as")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="fabrica-pg-"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "--no-instructions")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self.as_user, str(self.bin / tool), *args],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise AssertionError(f"{tool} failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options,
                  "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres():
    instance = PrivatePostgres()
    yield instance
    instance.destroy()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("conn-loss")
    fabrica("init", "device-api", "--db", "postgres", cwd=root)
    project = root / "device-api"
    fabrica("add", "resource", "Device", "--prefix", "dev", cwd=project)
    shutil.copy(EXAMPLES / "device" / "device.py", project / "device_api/resources/device.py")
    fabrica("generate", cwd=project)
    return project


class Traffic(threading.Thread):
    """Reads and writes in a loop until stopped (at most 60 s), counting the statuses."""

    def __init__(self, url: str, uid: str) -> None:
        super().__init__(daemon=True)
        self.url, self.uid = url, uid
        self.statuses: Counter[int] = Counter()
        self.bad: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 60
        n = 0
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.halt.is_set() and time.monotonic() < deadline:
                n += 1
                for response in (http.get(f"/devices/{self.uid}"),
                                 http.post("/devices", json={**WEB, "name": f"t-{n}"}),
                                 http.get("/devices", params={"limit": 5})):
                    self.statuses[response.status_code] += 1
                    if response.status_code not in (200, 201, 503):
                        self.bad.append(f"{response.status_code} {response.text[:200]}")


def test_a_database_restart_gives_503_then_the_server_recovers(project, postgres):
    migrated = subprocess.run(
        [sys.executable, "-m", "device_api.server", "migrate", "--database-url", postgres.url],
        cwd=project, capture_output=True, text=True, timeout=60)
    assert migrated.returncode == 0, migrated.stderr
    server = Server(project, "device_api", "--database-url", postgres.url)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            created = http.post("/devices", json=WEB)
            assert created.status_code == 201, created.text
            uid = created.json()["metadata"]["uid"]
            traffic = Traffic(server.url, uid)
            traffic.start()
            eventually_sync(lambda: traffic.statuses[200] and traffic.statuses[201])  # flowing
            for mode in ("fast", "immediate"):  # a clean restart, then a crash
                postgres.stop(mode)
                for request in (lambda: http.get(f"/devices/{uid}"),
                                lambda: http.post("/devices", json={**WEB, "name": "down"}),
                                lambda: http.get("/devices")):
                    response = request()
                    assert response.status_code == 503, response.text
                    assert response.headers["retry-after"] == "1"
                    assert response.json()["code"] == 503
                postgres.start()
                eventually_sync(lambda: http.get(f"/devices/{uid}").status_code == 200,
                                retry_on=(httpx.TransportError,), interval=0.1)
            traffic.halt.set()
            traffic.join(15)
            assert not traffic.bad, traffic.bad[:5]  # only 200, 201 and 503: never a 500
            assert traffic.statuses[200] and traffic.statuses[201] and traffic.statuses[503]
            assert http.get("/devices/web-01").json()["metadata"]["uid"] == uid
            assert http.post("/devices", json={**WEB, "name": "after"}).status_code == 201
        assert "Traceback" not in server.output()
    finally:
        server.stop()


def _process_tree(root: int) -> list[int]:
    """`root` and its children: the postmaster and its backends."""
    children = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == root:
            children.append(int(stat.split("/")[2]))
    return [root, *children]


def test_a_frozen_database_answers_503_within_the_storage_timeout(project, postgres):
    """SIGSTOP on the database's processes: connections stay open and nothing answers,
    so only a server-side bound ends the wait. Then SIGCONT, and the server recovers."""
    server = Server(project, "device_api", "--database-url", postgres.url,
                    "--storage-timeout", "1.5")
    postmaster = int((postgres.data / "postmaster.pid").read_text().split()[0])
    frozen: list[int] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            uid = http.post("/devices", json=WEB).json()["metadata"]["uid"]
            frozen = _process_tree(postmaster)
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            for method, path, body in [("GET", f"/devices/{uid}", None),
                                       ("POST", "/devices", {**WEB, "name": "frozen"}),
                                       ("GET", "/devices", None),
                                       ("PATCH", f"/devices/{uid}", {"port": 8443})]:
                started = time.monotonic()
                response = http.request(method, path, json=body)
                took = time.monotonic() - started
                assert response.status_code == 503, (method, path, response.text)
                assert response.headers["retry-after"].isdigit()
                assert took < 10, f"{method} {path} held for {took:.1f}s"
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
            frozen = []
            eventually_sync(lambda: http.get(f"/devices/{uid}").status_code == 200,
                            timeout=30, interval=0.2)  # recovers after SIGCONT
            assert http.get("/devices").status_code == 200
        assert "Traceback" not in server.output()
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        server.stop()


def test_a_postgres_project_needs_a_database_url(project):
    refused = subprocess.run([sys.executable, "-m", "device_api.server", "serve"], cwd=project,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "keeps its resources in postgres: give --database-url" in refused.stderr
    assert "DEVICE_API_DATABASE_URL" in refused.stderr


@pytest.fixture(params=["postgresql", "mariadb"])
def shared_server(request, tmp_path):
    with database(request.param, tmp_path) as url:
        yield request.param, url


async def test_killed_connections_give_unavailable_then_are_replaced(shared_server, tmp_path):
    """The shared servers, with only this test's own connections killed: a query in flight
    fails with `Unavailable`; the next request gets a fresh connection (pool pre-ping)."""
    backend, url = shared_server
    admin = SQLStorage(url)  # its connections are never among the victims
    if backend == "postgresql":  # tag our connections, to kill none but those
        tag = f"fabrica-test-{tmp_path.name}"[:60]
        url += quote(f" -capplication_name={tag}")
        sleep = "SELECT pg_sleep(10)"
        victims = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   f"WHERE application_name = '{tag}'")
        running = ("SELECT COUNT(*) FROM pg_stat_activity "
                   f"WHERE application_name = '{tag}' AND query = '{sleep}' AND state = 'active'")
    else:
        sleep = "SELECT SLEEP(10)"
        victims = ("SELECT id FROM information_schema.PROCESSLIST "
                   f"WHERE db = '{url.rsplit('/', 1)[1]}' AND id <> CONNECTION_ID()")
        running = ("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                   f"WHERE db = '{url.rsplit('/', 1)[1]}' AND info = '{sleep}'")
    storage = SQLStorage(url)
    try:
        await storage.migrate()
        created = await storage.create("devices", _doc())
        in_flight = asyncio.create_task(
            storage._run(lambda conn: conn.execute(text(sleep)).all()))

        async def query_running() -> bool:  # on the server: killing it now cuts it off
            return bool(await admin._run(lambda conn: conn.execute(text(running)).scalar()))
        await eventually(query_running)
        await _kill(admin, backend, victims)
        with pytest.raises(Unavailable):
            await asyncio.wait_for(in_flight, 10)
        await _kill(admin, backend, victims)  # the idle pooled ones too
        assert await storage.get("devices", created["metadata"]["uid"]) == created
    finally:
        await storage.close()
        await admin.close()


async def _kill(admin: SQLStorage, backend: str, victims: str) -> None:
    def kill(conn):
        if backend == "postgresql":
            conn.execute(text(victims)).all()
            return
        for (thread_id,) in conn.execute(text(victims)).all():
            try:
                conn.execute(text(f"KILL {int(thread_id)}"))
            except Exception:  # gone already
                pass

    await admin._run(kill, write=True)


def _doc() -> dict:
    return {"apiVersion": "v1", "kind": "Device",
            "metadata": {"name": "a", "uid": "dev-0000000a", "resourceVersion": ""},
            "spec": {}, "status": {}}

