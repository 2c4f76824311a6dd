"""`fabrica version`, `fabrica init` and `fabrica add resource`, run in-process with CliRunner."""

from __future__ import annotations

import ast
import datetime
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from fabrica import ServiceSettings, __version__
from fabrica.cli import main
from fabrica.codegen import (
    NOT_YET_AVAILABLE,
    config_from_yaml,
    discover_resources,
    pending_features,
)

Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`run("init", "x")`: invoke fabrica in tmp_path (or wherever a test chdirs to)."""
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def project(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh `rack-inventory` project, the current directory."""
    assert run("init", "rack-inventory").exit_code == 0
    root = tmp_path / "rack-inventory"
    monkeypatch.chdir(root)
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def load_yaml(root: Path) -> dict:
    return yaml.safe_load((root / ".fabrica.yaml").read_text())


# --- version ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["version"], ["--version"]])
def test_version(run: Run, args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"fabrica {__version__}"


# --- init ------------------------------------------------------------------------------


def test_init_defaults(run: Run, tmp_path: Path) -> None:
    result = run("init", "rack-inventory")
    assert result.exit_code == 0, result.output
    data = load_yaml(tmp_path / "rack-inventory")
    assert data["project"]["name"] == "rack-inventory"
    assert data["project"]["module"] == "rack_inventory"
    assert data["project"]["description"] == ""
    assert data["project"]["created"] == datetime.date.today()
    assert data["features"] == {
        "validation": {"enabled": True, "mode": "strict"},
        "events": {"enabled": False, "bus_type": "memory", "nats_url": "nats://127.0.0.1:4222"},
        "reconciliation": {"enabled": False, "worker_count": 5, "requeue_delay": 5},
        "storage": {"enabled": True, "type": "file", "db_driver": "sqlite"},
        "auth": {"enabled": False},
    }
    assert result.stderr == ""  # nothing enabled that this release lacks


def test_init_every_option(run: Run, tmp_path: Path) -> None:
    result = run(
        "init", "inv", "--module", "inventory", "--description", 'Racks, "nodes" & BMCs',
        "--storage-type", "ent", "--db", "mysql", "--events", "--events-bus", "nats",
        "--nats-url", "nats://bus:4222", "--reconcile", "--reconcile-workers", "3",
        "--reconcile-requeue", "0.5", "--auth", "--validation-mode", "warn",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = load_yaml(tmp_path / "inv")
    assert data["project"]["name"] == "inv"
    assert data["project"]["module"] == "inventory"
    assert data["project"]["description"] == 'Racks, "nodes" & BMCs'
    assert data["features"] == {
        "validation": {"enabled": True, "mode": "warn"},
        "events": {"enabled": True, "bus_type": "nats", "nats_url": "nats://bus:4222"},
        "reconciliation": {"enabled": True, "worker_count": 3, "requeue_delay": 0.5},
        "storage": {"enabled": True, "type": "sql", "db_driver": "mysql"},
        "auth": {"enabled": True},
    }
    assert (tmp_path / "inv" / "inventory" / "settings_generated.py").is_file()


def test_init_kafka_records_the_bus_and_depends_on_the_kafka_extra(run: Run, tmp_path: Path
                                                                   ) -> None:
    result = run("init", "inv", "--events", "--events-bus", "kafka", "--kafka-bootstrap",
                 "k1:9092,k2:9092", "--kafka-topic", "acme.inv", "--kafka-partitions", "12")
    assert result.exit_code == 0, result.output
    assert load_yaml(tmp_path / "inv")["features"]["events"] == {
        "enabled": True, "bus_type": "kafka", "nats_url": "nats://127.0.0.1:4222",
        "kafka_bootstrap": "k1:9092,k2:9092", "kafka_topic": "acme.inv",
        "kafka_partitions": 12}
    assert '"pyfabrica[kafka]>=' in (tmp_path / "inv" / "pyproject.toml").read_text()
    generated = (tmp_path / "inv" / "inv" / "settings_generated.py").read_text()
    assert "kafka_topic='acme.inv'" in generated or 'kafka_topic="acme.inv"' in generated
    read = config_from_yaml((tmp_path / "inv" / ".fabrica.yaml").read_text()).settings
    assert (read.events_bus, read.kafka_bootstrap, read.topic, read.kafka_partitions) == (
        "kafka", "k1:9092,k2:9092", "acme.inv", 12)
    assert result.stderr == ""


def test_init_reports_no_feature_as_not_available_yet(run: Run) -> None:
    args = "init svc --events --events-bus nats --reconcile --storage-type sql --auth"
    result = run(*args.split())
    assert result.exit_code == 0, result.output
    everything = ServiceSettings(
        "svc",
        "svc",
        storage_type="sql",
        events=True,
        events_bus="nats",
        reconcile=True,
        auth=True,
    )
    assert pending_features(everything) == list(NOT_YET_AVAILABLE) == []
    assert "not available yet" not in result.stderr


def test_init_auth_writes_the_policy_once(run: Run, tmp_path: Path) -> None:
    from fabrica.auth import DEFAULT_MODEL, DEFAULT_POLICY

    assert run("init", "svc", "--auth").exit_code == 0
    auth = tmp_path / "svc" / "auth"
    assert (auth / "model.conf").read_text() == DEFAULT_MODEL
    assert (auth / "policy.csv").read_text() == DEFAULT_POLICY
    (auth / "policy.csv").write_text("p, admin, *, *\n")  # the user's file from now on
    (auth / "model.conf").unlink()
    os.chdir(tmp_path / "svc")
    result = run("generate")
    assert result.exit_code == 0, result.output
    assert (auth / "policy.csv").read_text() == "p, admin, *, *\n"
    assert (auth / "model.conf").read_text() == DEFAULT_MODEL  # missing: created again
    assert not (tmp_path / "plain" / "auth").exists()
    assert run("init", str(tmp_path / "plain")).exit_code == 0
    assert not (tmp_path / "plain" / "auth").exists()


def test_init_events_and_reconcile_are_available(run: Run) -> None:
    result = run("init", "svc", "--events", "--reconcile")
    assert result.exit_code == 0, result.output
    assert "not available yet" not in result.stderr


@pytest.mark.parametrize(
    ("args", "module"),
    [
        (["rack-inventory"], "rack_inventory"),
        (["svc", "--module", "github.com/you/rack-svc"], "rack_svc"),
        (["svc", "--module", "my_pkg"], "my_pkg"),
        (["my.svc"], "my_svc"),
    ],
)
def test_init_module_name(run: Run, tmp_path: Path, args: list[str], module: str) -> None:
    assert run("init", *args).exit_code == 0
    root = tmp_path / args[0]
    assert load_yaml(root)["project"]["module"] == module
    assert (root / module / "resources_generated.py").is_file()


def test_init_dot_uses_current_directory(run: Run, tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "edge-api"
    root.mkdir()
    monkeypatch.chdir(root)
    assert run("init", ".").exit_code == 0
    assert load_yaml(root)["project"] == {
        "name": "edge-api",
        "module": "edge_api",
        "description": "",
        "created": datetime.date.today(),
    }


def test_init_db_implies_sql(run: Run, tmp_path: Path) -> None:
    assert run("init", "svc", "--db", "postgres").exit_code == 0
    assert load_yaml(tmp_path / "svc")["features"]["storage"]["type"] == "sql"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reconcile"], "--reconcile needs --events"),
        (["--storage-type", "file", "--db", "postgres"], "--db postgres needs --storage-type sql"),
        (["--module", "9lives"], "not a valid Python identifier"),
        (["--module", "class"], "is a Python keyword"),
        (["--module", "json"], "would hide the 'json' module"),
        (["--module", "fabrica"], "would hide the 'fabrica' module"),
        (["--reconcile-workers", "0"], "--reconcile-workers"),
        (["--validation-mode", "loose"], "--validation-mode"),
    ],
)
def test_init_refuses(run: Run, tmp_path: Path, args: list[str], message: str) -> None:
    result = run("init", "svc", *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "svc").exists()


def test_init_refuses_bad_project_name(run: Run, tmp_path: Path) -> None:
    result = run("init", "bad name")
    assert result.exit_code == 1
    assert "not a valid Python distribution name" in result.stderr
    assert not (tmp_path / "bad name").exists()


def test_init_refuses_existing_project(run: Run, tmp_path: Path) -> None:
    assert run("init", "svc").exit_code == 0
    before = tree(tmp_path / "svc")
    result = run("init", "svc", "--events")
    assert result.exit_code == 1
    assert ".fabrica.yaml already exists" in result.stderr
    assert tree(tmp_path / "svc") == before


def test_init_keeps_existing_files(run: Run, tmp_path: Path) -> None:
    root = tmp_path / "svc"
    root.mkdir()
    (root / "README.md").write_text("mine\n")
    assert run("init", "svc").exit_code == 0
    assert (root / "README.md").read_text() == "mine\n"
    assert (root / "pyproject.toml").is_file()


# --- add resource ----------------------------------------------------------------------


def test_add_resource_writes_starter(run: Run, project: Path) -> None:
    result = run("add", "resource", "Device")
    assert result.exit_code == 0, result.output
    assert "fabrica generate" in result.stdout
    path = project / "rack_inventory" / "resources" / "device.py"
    source = path.read_text()
    assert 'class Device(Resource[DeviceSpec, DeviceStatus], prefix="device"):' in source
    assert "plural=" not in source and "versioning" not in source
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= {"fabrica", "pydantic", "typing"}

    (device,) = discover_resources(project, "rack_inventory")
    info = device.resource_info
    assert (info.kind, info.prefix, info.plural, info.versioning) == (
        "Device",
        "device",
        "devices",
        False,
    )
    assert info.spec_type().model_dump() == {"description": ""}
    assert info.status_type().model_dump() == {"phase": "", "message": "", "ready": False}


def test_add_resource_with_options(run: Run, project: Path) -> None:
    args = ["RackTemplate", "--prefix", "rt", "--plural", "templates", "--with-versioning"]
    assert run("add", "resource", *args).exit_code == 0
    (cls,) = discover_resources(project, "rack_inventory")
    info = cls.resource_info
    assert (info.kind, info.prefix, info.plural, info.versioning) == (
        "RackTemplate",
        "rt",
        "templates",
        True,
    )
    assert info.status_type().model_dump()["version"] == ""


def test_add_resource_refuses_existing_file(run: Run, project: Path) -> None:
    path = project / "rack_inventory" / "resources" / "device.py"
    assert run("add", "resource", "Device").exit_code == 0
    path.write_text(path.read_text() + "# mine\n")
    before = path.read_bytes()
    result = run("add", "resource", "Device", "--prefix", "dev")
    assert result.exit_code == 1
    assert "rack_inventory/resources/device.py already exists" in result.stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize("kind", ["device", "Rack-Template", "9Lives", "Rack_Template", ""])
def test_add_resource_refuses_invalid_kind(run: Run, project: Path, kind: str) -> None:
    before = tree(project)
    result = run("add", "resource", kind)
    assert result.exit_code == 1
    assert "is not valid: it must match ^[A-Z][A-Za-z0-9]*$" in result.stderr
    assert tree(project) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Chassisx"], "prefix 'chassi' is already used by Chassis"),
        (["Chassisx", "--prefix", "chassi"], "prefix 'chassi' is already used by Chassis"),
        (["Frame", "--plural", "chassis"], "plural 'chassis' is already used by Chassis"),
        (["Frame", "--prefix", "Fr"], "prefix 'Fr' is not valid"),
        (["Frame", "--plural", "Frames"], "plural 'Frames' is not valid"),
    ],
)
def test_add_resource_refuses_collisions(
    run: Run, project: Path, args: list[str], message: str
) -> None:
    assert run("add", "resource", "Chassis").exit_code == 0
    before = tree(project)
    result = run("add", "resource", *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert tree(project) == before


def test_add_resource_refuses_when_a_resource_file_is_broken(run: Run, project: Path) -> None:
    (project / "rack_inventory" / "resources" / "rack.py").write_text(
        "import nowhere_to_be_found\n"
    )
    result = run("add", "resource", "Device")
    assert result.exit_code == 1
    assert "cannot check the new kind against the existing ones" in result.stderr
    assert "rack_inventory/resources/rack.py does not import: ModuleNotFoundError" in result.stderr
    assert not (project / "rack_inventory" / "resources" / "device.py").exists()


def test_add_resource_outside_a_project(run: Run, tmp_path: Path) -> None:
    result = run("add", "resource", "Device")
    assert result.exit_code == 1
    assert "no .fabrica.yaml here: run fabrica init first" in result.stderr
    assert list(tmp_path.iterdir()) == []
