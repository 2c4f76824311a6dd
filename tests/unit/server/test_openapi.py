"""The OpenAPI document: valid 3.1, complete (every route, patch type and error), and the
same whether the server answers it or `fabrica generate` writes it to the project."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import Field
from starlette.routing import Mount, Route

from fabrica import Model, Resource, ServiceSettings
from fabrica.server import build_openapi, create_app
from fabrica.storage import FileStorage
from tests._support.app import Device, serve_in_process
from tests._support.e2e import EXAMPLES, RACK_FILES


class ConfigSpec(Model):
    value: str = Field("", max_length=64)


class ConfigStatus(Model):
    phase: str = ""
    version: str = ""


class Config(Resource[ConfigSpec, ConfigStatus], prefix="cfg", versioning=True):
    """A versioned kind."""


KINDS = [Device, Config]
PATCH_TYPES = {"application/merge-patch+json", "application/json-patch+json",
               "application/shorthand-patch+json", "application/json"}
ERRORS = {
    ("/devices", "get"): {"400", "406", "503"},
    ("/devices", "post"): {"400", "406", "409", "413", "415", "422", "503"},
    ("/devices/{id}", "get"): {"400", "404", "406", "503"},
    ("/devices/{id}", "put"): {"400", "404", "406", "409", "412", "413", "415", "422",
                               "503"},
    ("/devices/{id}", "patch"): {"400", "404", "406", "409", "412", "413", "415", "422",
                                 "503"},
    ("/devices/{id}", "delete"): {"400", "404", "406", "409", "412", "503"},
    ("/devices/{id}/status", "put"): {"400", "404", "406", "409", "412", "413", "415", "503"},
    ("/devices/{id}/status", "patch"): {"400", "404", "406", "409", "412", "413", "415", "422",
                                        "503"},
    ("/configs/{id}/versions", "get"): {"404", "406", "503"},
    ("/configs/{id}/versions/{versionId}", "get"): {"404", "406", "503"},
    ("/configs/{id}/versions/{versionId}", "delete"): {"404", "406", "503"},
    ("/events", "get"): {"400"},
}


def settings(**changes: Any) -> ServiceSettings:
    return ServiceSettings(project="device-api", package="device_api", **changes)


def app_for(tmp_path: Path, **changes: Any) -> Any:
    return create_app(KINDS, FileStorage(tmp_path / "data"), settings=settings(**changes))


def served_operations(app: Any) -> set[tuple[str, str]]:
    """Every (path, method) the app answers, in OpenAPI's spelling."""
    found = set()
    for route in app.routes:
        if isinstance(route, Mount):  # the Swagger UI's static files
            continue
        assert isinstance(route, Route)
        path = route.path
        found |= {(path, m.lower()) for m in route.methods or () if m != "HEAD"}
    return found


def documented_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in doc["paths"].items()
            for method in item if method != "parameters"}


@pytest.mark.parametrize("events", [False, True])
def test_every_served_route_is_documented_and_valid(tmp_path: Path, events: bool) -> None:
    app = app_for(tmp_path, events=events)
    doc = build_openapi(KINDS, title="device-api", events=events)
    validate(doc)
    assert documented_operations(doc) == served_operations(app)
    assert (("/events", "get") in documented_operations(doc)) is events
    assert {"/metrics", "/health", "/openapi.json", "/docs",
            "/configs/{id}/versions/{versionId}"} <= set(doc["paths"])
    assert "/devices/{id}/versions" not in doc["paths"]  # Device keeps no versions


def test_patch_media_types_and_error_responses() -> None:
    doc = build_openapi(KINDS, title="t", events=True)
    for path in ("/devices/{id}", "/devices/{id}/status", "/configs/{id}"):
        assert set(doc["paths"][path]["patch"]["requestBody"]["content"]) == PATCH_TYPES
    for (path, method), codes in ERRORS.items():
        op = doc["paths"][path][method]
        assert {c for c in op["responses"] if c >= "400"} == codes, (path, method)
        for code in codes:
            schema = op["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
    for code in ("503",):
        assert "Retry-After" in doc["paths"]["/devices"]["get"]["responses"][code]["headers"]
    get = doc["paths"]["/devices/{id}"]["get"]["responses"]
    assert {"200", "304"} <= set(get) and "ETag" in get["200"]["headers"]
    assert "Location" in doc["paths"]["/devices"]["post"]["responses"]["201"]["headers"]


def test_schemas_carry_the_constraints() -> None:
    schemas = build_openapi(KINDS, title="t")["components"]["schemas"]
    spec = schemas["DeviceSpec"]
    assert spec["properties"]["port"] | {"minimum": 1, "maximum": 65535} == \
        spec["properties"]["port"]
    assert spec["properties"]["type"]["enum"] == ["server", "switch", "router", "storage"]
    assert spec["required"] == ["type", "ipAddress"] and spec["additionalProperties"] is False
    assert schemas["DeviceStatus"]["properties"]["errorCount"]["minimum"] == 0
    assert schemas["ConfigSpec"]["properties"]["value"]["maxLength"] == 64
    envelope, flat = schemas["DeviceCreate"]["anyOf"]
    assert flat["required"] == ["name", "type", "ipAddress"]
    assert flat["properties"]["name"]["pattern"].startswith("^[a-z0-9]")
    assert envelope["properties"]["metadata"]["required"] == ["name"]
    assert "required" not in schemas["DeviceWrite"]["anyOf"][0]["properties"]["metadata"]
    lenient = build_openapi(KINDS, title="t", strict=False)["components"]["schemas"]
    assert "additionalProperties" not in lenient["DeviceSpec"]


async def test_the_server_answers_the_document_it_was_built_with(tmp_path: Path) -> None:
    app = app_for(tmp_path, events=True, description="devices")
    async with serve_in_process(app) as client:
        served = (await client.get("/openapi.json")).json()
    assert served == build_openapi(KINDS, title="device-api", description="devices",
                                   events=True)
    assert served["info"]["description"] == "devices"
    assert [tag["name"] for tag in served["tags"]] == ["Device", "Config", "system"]


def rack_kinds() -> list[type[Resource[Any, Any]]]:
    kinds = []
    for name in RACK_FILES:
        path = EXAMPLES / "rack-reconciliation" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"rack_example_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # pydantic looks generic classes up there
        spec.loader.exec_module(module)
        kinds += [v for v in vars(module).values() if isinstance(v, type)
                  and issubclass(v, Resource) and v.__module__ == module.__name__
                  and v.__pydantic_generic_metadata__["origin"] is None]  # not Resource[...]
    return kinds


def test_the_rack_example_kinds_validate() -> None:
    kinds = rack_kinds()
    assert sorted(k.resource_info.kind for k in kinds) == sorted(
        ["RackTemplate", "Rack", "Chassis", "Blade", "BMC", "Node"])
    doc = build_openapi(kinds, title="rack-inventory", events=True)
    validate(doc)
    assert {"/racktemplates", "/racks/{id}/status", "/chassis/{id}", "/bmcs", "/events"} <= set(
        doc["paths"])
    rack = doc["components"]["schemas"]["RackSpec"]["properties"]["templateUID"]
    assert rack["minLength"] == 1
