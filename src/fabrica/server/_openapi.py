"""OpenAPI 3.1 for a set of kinds, built from the same pydantic models that validate."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .._version import __version__
from ..resource import Resource, ResourceInfo

__all__ = ["build_openapi"]

_REF = "#/components/schemas/{model}"
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string"},
        "code": {"type": "integer"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_ERRORS = {
    "400": "Invalid JSON or a body that fails validation",
    "404": "No resource with this uid or name",
    "409": "Duplicate name or stale resourceVersion",
    "413": "Request body too large",
}


def build_openapi(
    kinds: list[type[Resource[Any, Any]]], *, title: str, description: str = ""
) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for cls in kinds:
        info = cls.resource_info
        models += [(cls, "serialization"), (info.spec_type, "validation"),
                   (info.status_type, "validation")]
    _, defs = models_json_schema(models, ref_template=_REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR_SCHEMA
    paths: dict[str, Any] = {
        "/health": {"get": {"summary": "Health check", "operationId": "health",
                            "tags": ["system"],
                            "responses": {"200": {"description": "Service is healthy",
                                                  "content": _json({"type": "object"})}}}},
    }
    for cls in kinds:
        info = cls.resource_info
        refs = _refs(schemas, cls, info)
        schemas[f"{info.kind}Write"] = _write_schema(info, refs)
        paths.update(_paths(info, refs))
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__, "description": description},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _refs(schemas: dict[str, Any], cls: type, info: ResourceInfo) -> dict[str, str]:
    def ref(model: type, mode_suffix: str) -> str:
        name = model.__name__
        for candidate in (name, f"{name}-{mode_suffix}"):
            if candidate in schemas:
                return _REF.format(model=candidate)
        return _REF.format(model=name)

    return {
        "resource": ref(cls, "Output"),
        "spec": ref(info.spec_type, "Input"),
        "status": ref(info.status_type, "Input"),
        "write": _REF.format(model=f"{info.kind}Write"),
    }


def _write_schema(info: ResourceInfo, refs: dict[str, str]) -> dict[str, Any]:
    """Envelope or flat: Fabrica's flat body puts metadata beside the spec fields."""
    labels = {"type": "object", "additionalProperties": {"type": "string"}}
    envelope = {
        "type": "object",
        "title": "Envelope",
        "required": ["metadata", "spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string", "const": info.kind},
            "metadata": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "labels": labels,
                               "annotations": labels, "resourceVersion": {"type": "string"}},
            },
            "spec": {"$ref": refs["spec"]},
        },
    }
    flat = {
        "title": "Flat",
        "allOf": [
            {"type": "object",
             "properties": {"name": {"type": "string"}, "labels": labels,
                            "annotations": labels}},
            {"$ref": refs["spec"]},
        ],
    }
    return {"description": f"A {info.kind} to write, as an envelope or flat",
            "oneOf": [envelope, flat]}


def _paths(info: ResourceInfo, refs: dict[str, str]) -> dict[str, Any]:
    kind, plural = info.kind, info.plural
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
                "description": f"The {kind}'s uid or name"}
    resource = _json({"$ref": refs["resource"]})
    write_body = {"required": True, "content": _json({"$ref": refs["write"]})}
    tags = [kind]
    return {
        f"/{plural}": {
            "get": _op(f"list{kind}", f"List {plural}", tags,
                       {"200": {"description": f"All {plural}",
                                "content": _json({"type": "array",
                                                  "items": {"$ref": refs["resource"]}})}}),
            "post": _op(f"create{kind}", f"Create a {kind}", tags,
                        {"201": {"description": "Created", "content": resource}},
                        body=write_body, errors=("400", "409", "413")),
        },
        f"/{plural}/{{id}}": {
            "parameters": [id_param],
            "get": _op(f"get{kind}", f"Get a {kind}", tags,
                       {"200": {"description": "The resource", "content": resource}},
                       errors=("404",)),
            "put": _op(f"update{kind}", f"Replace a {kind}'s spec", tags,
                       {"200": {"description": "Updated", "content": resource}},
                       body=write_body, errors=("400", "404", "409", "413")),
            "delete": _op(f"delete{kind}", f"Delete a {kind}", tags,
                          {"200": {"description": "Deleted", "content": _json({
                              "type": "object", "properties": {
                                  "message": {"type": "string"}, "uid": {"type": "string"}}})}},
                          errors=("404", "409")),
        },
        f"/{plural}/{{id}}/status": {
            "parameters": [id_param],
            "put": _op(f"update{kind}Status", f"Replace a {kind}'s status", tags,
                       {"200": {"description": "Updated", "content": resource}},
                       body={"required": True, "content": _json({"$ref": refs["status"]})},
                       errors=("400", "404", "409", "413")),
        },
    }


def _op(
    operation_id: str,
    summary: str,
    tags: list[str],
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    errors: tuple[str, ...] = (),
) -> dict[str, Any]:
    for code in errors:
        responses[code] = {"description": _ERRORS[code],
                           "content": _json({"$ref": _REF.format(model="Error")})}
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": tags,
                          "responses": responses}
    if body is not None:
        op["requestBody"] = body
    return op


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}
