"""`fabrica add version KIND VERSION` and how `fabrica generate` wires served versions."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fabrica import ServiceSettings
from fabrica.cli import main
from fabrica.codegen import discover_project, init_project
from tests._support.versions import EXAMPLE

PKG = "device_api"
DEVICE_V1 = Path(__file__).resolve().parents[3] / "examples" / "device" / "device.py"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A device-api project whose Device is the SPEC's (stored in v1), the current dir."""
    root = tmp_path / "device-api"
    init_project(root, ServiceSettings(project="device-api", package=PKG))
    shutil.copy(DEVICE_V1, root / PKG / "resources" / "device.py")
    monkeypatch.chdir(root)
    return root


def resources(root: Path) -> Path:
    return root / PKG / "resources"


def test_the_file_has_the_spec_shape(project: Path) -> None:
    result = run("add", "version", "Device", "v1", "--deprecated")
    assert result.exit_code == 0, result.output
    assert "created device_api/resources/device_v1.py" in result.output
    text = (resources(project) / "device_v1.py").read_text()
    code = text.split('\n"""\n', 1)[1]  # after the module docstring
    assert code.startswith(textwrap.dedent('''
        from typing import Literal

        from pydantic import Field

        from fabrica import Model, ServedVersion

        from .device import Device, DeviceSpec, DeviceStatus


        class DeviceV1Spec(Model):
            type: Literal["server", "switch", "router", "storage"]
            ip_address: str = Field(alias="ipAddress")
            port: int = Field(443, ge=1, le=65535)
            tags: dict[str, str] = {}


        class DeviceV1(ServedVersion[DeviceV1Spec, DeviceStatus], of=Device, version="v1",
                       deprecated=True):
        '''))
    for line in ("    @staticmethod\n    def spec_to_storage(spec: DeviceV1Spec) -> DeviceSpec:",
                 "    @staticmethod\n    def spec_from_storage(spec: DeviceSpec) -> DeviceV1Spec:",
                 "# status_to_storage / status_from_storage"):
        assert line in text
    assert "device.py still stores v1" in text
    # Still the storage version: generate says what to do, and writes nothing.
    refused = run("generate")
    assert refused.exit_code == 1
    assert "v1 is already Device's storage version" in refused.output
    assert "device_v1.py:" in refused.output


def test_generate_wires_the_version_once_the_kind_moved_on(project: Path) -> None:
    assert run("add", "version", "Device", "v1", "--deprecated").exit_code == 0
    # What the README walks through: device.py moves on to v2, the conversions are edited.
    shutil.copy(EXAMPLE / "device.py", resources(project) / "device.py")
    shutil.copy(EXAMPLE / "device_v1.py", resources(project) / "device_v1.py")
    done = run("generate")
    assert done.exit_code == 0, done.output
    assert "also served: Device v1 (deprecated)" in done.output
    generated = (project / PKG / "resources_generated.py").read_text()
    assert "from .resources.device_v1 import DeviceV1\n" in generated
    assert "VERSIONS = (\n    DeviceV1,  # Device v1\n)" in generated
    assert "versions=VERSIONS" in (project / PKG / "server" / "server_generated.py").read_text()
    assert 'setdefault("versions", VERSIONS)' in (
        project / PKG / "client" / "client_generated.py").read_text()
    assert '"application/json;version=v1"' in (project / "openapi.json").read_text()
    again = run("generate")
    assert "updated" not in again.output and "created" not in again.output


def test_a_newer_version_starts_as_a_working_copy(project: Path) -> None:
    assert run("add", "version", "device", "v2beta1").exit_code == 0
    found = discover_project(project, PKG)
    (served,) = found.versions
    assert served.__name__ == "DeviceV2beta1" and not served.version_info.deprecated
    assert "Device is stored in v1" in (resources(project) / "device_v2beta1.py").read_text()
    assert run("generate").exit_code == 0


@pytest.mark.parametrize(("args", "message"), [
    (("Device", "2"), "version '2' is not valid"),
    (("Device", "v1beta"), "version 'v1beta' is not valid"),
    (("Device", "V1"), "version 'V1' is not valid"),
    (("Rack", "v2"), "there is no kind 'Rack' in this project (kinds: Device)"),
])
def test_bad_arguments(project: Path, args: tuple[str, str], message: str) -> None:
    result = run("add", "version", *args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert sorted(p.name for p in resources(project).glob("*.py")) == ["__init__.py", "device.py"]


def test_never_overwrites_and_never_serves_twice(project: Path) -> None:
    assert run("add", "version", "Device", "v2alpha1").exit_code == 0
    path = resources(project) / "device_v2alpha1.py"
    path.write_text(path.read_text() + "# mine\n")
    again = run("add", "version", "Device", "v2alpha1")
    assert again.exit_code == 1 and "device_v2alpha1.py already exists" in again.output
    assert path.read_text().endswith("# mine\n")
    path.rename(resources(project) / "other.py")
    twice = run("add", "version", "Device", "v2alpha1")
    assert twice.exit_code == 1
    assert "Device v2alpha1 is already served by DeviceV2alpha1" in twice.output


def test_generate_refuses_a_version_served_twice(project: Path) -> None:
    assert run("add", "version", "Device", "v2alpha1").exit_code == 0
    source = (resources(project) / "device_v2alpha1.py").read_text()
    (resources(project) / "copy.py").write_text(source.replace("DeviceV2alpha1(", "Again("))
    result = run("generate")
    assert result.exit_code == 1
    assert "Device v2alpha1 is served twice: by Again (device_api/resources/copy.py) and " \
           "DeviceV2alpha1 (device_api/resources/device_v2alpha1.py)" in result.output


def test_generate_names_a_missing_conversion(project: Path) -> None:
    assert run("add", "version", "Device", "v2alpha1").exit_code == 0
    path = resources(project) / "device_v2alpha1.py"
    source = path.read_text()
    start = source.index("    @staticmethod\n    def spec_from_storage")
    path.write_text(source[:start] + "    pass\n")
    result = run("generate")
    assert result.exit_code == 1
    assert "device_v2alpha1.py does not import" in result.output
    assert "missing the conversion spec_from_storage" in result.output


def test_the_copy_brings_the_names_its_spec_uses(project: Path) -> None:
    """Imports (relative ones too) and the module's own helpers the Spec refers to."""
    (resources(project) / "common.py").write_text("PORTS = (22, 443)\n")
    (resources(project) / "device.py").write_text(textwrap.dedent('''
        import datetime as dt
        from typing import Literal

        from pydantic import Field

        from fabrica import Condition, Model, Resource

        from .common import PORTS

        DEFAULT = "server"


        class Address(Model):
            ip: str = ""


        class DeviceSpec(Model):
            type: Literal["server", "switch"] = DEFAULT
            address: Address = Field(default_factory=Address)
            port: int = PORTS[1]
            since: dt.date | None = None
            last: Condition | None = None


        class DeviceStatus(Model):
            ok: bool = False


        class Device(Resource[DeviceSpec, DeviceStatus], prefix="dev", version="v2"):
            """A device."""
        '''))
    assert run("add", "version", "Device", "v1").exit_code == 0
    text = (resources(project) / "device_v1.py").read_text()
    assert ("import datetime as dt\nfrom typing import Literal\n\nfrom pydantic import Field\n\n"
            "from fabrica import Condition, Model, ServedVersion\n\nfrom .common import PORTS\n"
            "from .device import DEFAULT, Address, Device, DeviceSpec, DeviceStatus\n") in text
    done = run("generate")
    assert done.exit_code == 0, done.output
    (served,) = discover_project(project, PKG).versions
    spec = served.version_info.spec_type(type="switch")
    assert spec.port == 443 and served.spec_to_storage(spec).type == "switch"
