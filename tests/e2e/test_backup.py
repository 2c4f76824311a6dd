"""Backup and moving between backends as a user does it (SPEC section 11): a generated
project's ``python -m PKG.server export`` and ``import``, file → PostgreSQL → SQLite →
MariaDB → file, with spec history and encrypted sensitive values; and an import killed
with SIGKILL mid-way leaves whole batches (SQLite, PostgreSQL in a database of its own) or
whole documents (files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests._support.crash import file_documents_checked, kill_when, sql_counts
from tests._support.e2e import Server, fabrica, make_device_project
from tests._support.sqldb import mysql_database, postgres_database, postgres_schema

pytestmark = pytest.mark.e2e

BMC = '''\
from typing import Annotated

from fabrica import Model, Resource, Sensitive


class BMCSpec(Model):
    address: str = ""
    password: Annotated[str, Sensitive()] = ""


class BMCStatus(Model):
    phase: str = ""
    version: str = ""


class BMC(Resource[BMCSpec, BMCStatus], prefix="bmc", versioning=True):
    """A baseboard management controller."""
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = make_device_project(tmp_path_factory.mktemp("e2e-backup"))
    (project / "device_api/resources/bmc.py").write_text(BMC)
    fabrica("generate", cwd=project)
    return project


def server_command(project: Path, *args: str, stdin: str | None = None, check: bool = True,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "device_api.server", *args], cwd=project,
                            capture_output=True, text=True, timeout=300, input=stdin,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{args[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result


def documents(export: Path) -> dict[str, dict]:
    """The resources of an export file by uid, without their resourceVersions."""
    found = {}
    for line in export.read_text().splitlines()[1:]:
        value = json.loads(line)
        if "fabricaEncryption" in value:
            value = value["fabricaEncryption"]
        value["metadata"].pop("resourceVersion")
        found[value["metadata"]["uid"]] = value
    return found


def fill(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for n in range(30):
            body = {"name": f"dev-{n:02d}", "type": "server", "ipAddress": f"10.0.0.{n}",
                    "labels": {"rack": str(n % 3)}}
            assert http.post("/devices", json=body).status_code == 201
        assert http.patch("/devices/dev-01", json={"port": 8443}).status_code == 200
        assert http.put("/devices/dev-02/status", json={"health": "ok"}).status_code == 200
        bmc = http.post("/bmcs", json={"name": "bmc-1", "address": "10.1.0.1",
                                       "password": "s3cret"})
        assert bmc.status_code == 201, bmc.text
        assert http.patch("/bmcs/bmc-1", json={"address": "10.1.0.2"}).status_code == 200


def test_file_postgresql_sqlite_mariadb_file_round_trip(project, tmp_path):
    key = Fernet.generate_key().decode()
    source = tmp_path / "source"
    server = Server(project, "device_api", "--data-dir", str(source), "--encryption-key", key)
    try:
        fill(server)
    finally:
        server.stop()
    first = tmp_path / "0-file.ndjson"
    out = server_command(project, "export", "--data-dir", str(source), "--output", str(first))
    assert "Device: 30" in out.stderr and "BMC: 1" in out.stderr
    original = documents(first)
    bmc = next(d for d in original.values() if d.get("kind") == "BMC")
    assert bmc["spec"]["password"].startswith("fernet:v1:")  # as stored: sealed
    assert [v["versionId"] for v in bmc["specHistory"]] == ["v1", "v2"]
    assert original[next(u for u, d in original.items()
                         if d["metadata"].get("name") == "dev-01")]["metadata"]["generation"] == 2

    current = first
    with postgres_schema() as pg, mysql_database() as maria:
        stops = [("postgresql", ["--database-url", pg]),
                 ("sqlite", ["--database-url", f"sqlite:///{tmp_path}/moved.db"]),
                 ("mariadb", ["--database-url", maria]),
                 ("file", ["--data-dir", str(tmp_path / "back")])]
        for step, (name, where) in enumerate(stops, 1):
            imported = server_command(project, "import", "--input", str(current), *where)
            assert "Device: 30" in imported.stdout, imported.stdout
            current = tmp_path / f"{step}-{name}.ndjson"
            server_command(project, "export", "--output", str(current), *where)
            assert documents(current) == original, name
            if name == "mariadb":  # served from there with the key: the secret opens
                check_served(project, where, key)


def check_served(project: Path, where: list[str], key: str) -> None:
    server = Server(project, "device_api", *where, "--encryption-key", key)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.get("/devices/dev-01").json()["spec"]["port"] == 8443
            versions = http.get("/bmcs/bmc-1/versions").json()
            assert len(versions) == 2
            # the password survives: a write that leaves it out keeps it (and reads never
            # show it), and the server opens the envelope with the key without complaint
            assert http.patch("/bmcs/bmc-1", json={"address": "10.1.0.3"}).status_code == 200
    finally:
        server.stop()


def test_bad_input_names_line_and_field_and_writes_nothing(project, tmp_path):
    data = tmp_path / "data"
    header = {"fabricaExport": 1, "project": "device-api", "kinds": {
        "Device": {"plural": "devices", "count": 2, "resourceVersion": "5"}},
        "exportedAt": "2026-01-01T00:00:00Z"}

    def device(uid: str, name: str) -> dict:
        return {"apiVersion": "v1", "kind": "Device", "schemaVersion": "v1",
                "metadata": {"uid": uid, "name": name, "labels": {}, "annotations": {},
                             "createdAt": "2026-01-01T00:00:00Z",
                             "updatedAt": "2026-01-01T00:00:00Z", "generation": 1},
                "spec": {"type": "server", "ipAddress": "10.0.0.1"}, "status": {}}

    good = [json.dumps(header), json.dumps(device("dev-0000000a", "a")),
            json.dumps(device("dev-0000000b", "b"))]
    cases = {
        "truncated": ("\n".join(good)[:-20], "line 3: the file ends in the middle"),
        "another project": ("\n".join([json.dumps({**header, "project": "other"}), *good[1:]]),
                            "line 1: project: exported from project 'other'"),
        "prefix": ("\n".join([*good[:2], json.dumps(device("bmc-0000000b", "b"))]),
                   "line 3: metadata.uid: 'bmc-0000000b' is not a uid of kind Device"),
        "unknown kind": ("\n".join([*good[:2], json.dumps({**device("dev-0000000b", "b"),
                                                          "kind": "Rack"})]),
                         "line 3: kind: unknown kind 'Rack'"),
        "duplicate": ("\n".join([*good[:2], json.dumps(device("dev-0000000a", "c"))]),
                      "line 3: metadata.uid: dev-0000000a is also on line 2"),
        "invalid": ("\n".join([*good[:2], json.dumps({**device("dev-0000000b", "b"),
                                                     "spec": {"type": "toaster"}})]),
                    "line 3: spec.type:"),
        "short": ("\n".join(good[:2]) + "\n", "line 3: the header announces 2 Device"),
    }
    for case, (text, message) in cases.items():
        result = server_command(project, "import", "--data-dir", str(data), stdin=text,
                                check=False)
        assert result.returncode == 1, case
        assert message in result.stderr and "nothing was imported" in result.stderr, (
            case, result.stderr)
    assert not (data / "devices").exists() or not list((data / "devices").glob("*.json"))
    dry = server_command(project, "import", "--data-dir", str(data), "--dry-run",
                         stdin="\n".join(good) + "\n")
    assert "would import 2 resources" in dry.stdout
    server_command(project, "import", "--data-dir", str(data), stdin="\n".join(good) + "\n")
    again = server_command(project, "import", "--data-dir", str(data), check=False,
                           stdin="\n".join(good) + "\n")
    assert "line 2: metadata.uid: Device dev-0000000a exists" in again.stderr
    server_command(project, "import", "--data-dir", str(data), "--mode", "upsert",
                   stdin="\n".join(good) + "\n")
    only_a = dict(header, kinds={"Device": {"plural": "devices", "count": 1}})
    replaced = server_command(project, "import", "--data-dir", str(data), "--mode", "replace",
                              stdin="\n".join([json.dumps(only_a), good[1]]) + "\n")
    assert "Device removed: 1" in replaced.stdout
    assert sorted(p.name for p in (data / "devices").glob("*.json")) == ["dev-0000000a.json"]


def synthetic_export(path: Path, count: int) -> None:
    header = {"fabricaExport": 1, "project": "device-api", "kinds": {
        "Device": {"plural": "devices", "count": count, "resourceVersion": "1"}},
        "exportedAt": "2026-01-01T00:00:00Z"}
    with open(path, "w") as out:
        out.write(json.dumps(header) + "\n")
        for n in range(count):
            out.write(json.dumps({
                "apiVersion": "v1", "kind": "Device", "schemaVersion": "v1",
                "metadata": {"uid": f"dev-{n:08x}", "name": f"d-{n:06d}",
                             "labels": {"rack": str(n % 7)}, "annotations": {},
                             "createdAt": "2026-01-01T00:00:00Z",
                             "updatedAt": "2026-01-01T00:00:00Z", "generation": 2},
                "spec": {"type": "server", "ipAddress": "10.0.0.1"}, "status": {}}) + "\n")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_mid_import_leaves_whole_batches_on_sql(project, tmp_path, backend):
    source = tmp_path / "many.ndjson"
    synthetic_export(source, 20_000)
    with ExitStack() as stack:
        url = (f"sqlite:///{tmp_path / 'crash.db'}" if backend == "sqlite"
               else stack.enter_context(postgres_database()))
        killed_mid_import(project, source, url)


def killed_mid_import(project: Path, source: Path, url: str) -> None:
    server_command(project, "migrate", "--database-url", url)
    kill_when([sys.executable, "-m", "device_api.server", "import", "--input", str(source),
               "--database-url", url, "--batch-size", "700"], project,
              lambda: sql_counts(url).rows > 0)
    left = sql_counts(url)
    assert 0 < left.rows < 20_000 and left.rows % 700 == 0  # whole batches only
    assert left.logged == left.rows and left.labels == left.rows and left.pending == 0
    done = server_command(project, "import", "--input", str(source), "--database-url", url,
                          "--mode", "upsert")
    assert "Device: 20000" in done.stdout and sql_counts(url).rows == 20_000


def test_kill_9_mid_import_leaves_whole_documents_and_a_consistent_log_on_files(
        project, tmp_path):
    source = tmp_path / "many.ndjson"
    synthetic_export(source, 5_000)
    data = tmp_path / "data"
    devices = data / "devices"

    def started() -> bool:
        return devices.is_dir() and sum(1 for _ in devices.glob("dev-*.json")) > 200

    kill_when([sys.executable, "-m", "device_api.server", "import", "--input", str(source),
               "--data-dir", str(data)], project, started)
    assert 200 < file_documents_checked(data, "devices", "dev-*.json") < 5_000
    done = server_command(project, "import", "--input", str(source), "--data-dir", str(data),
                          "--mode", "upsert")
    assert "Device: 5000" in done.stdout
