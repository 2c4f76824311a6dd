"""OpenAPI for API versions: each served version's schemas, and how to negotiate them.

`build_openapi` documents each kind in its storage version first; this module then adds,
for a kind serving several versions, one media type per version on every body and response
(``application/json;version=v1``, ``application/merge-patch+json;version=v1``, ...) with
that version's schemas, so generators and fuzzers see each shape. For every kind it adds
the negotiation itself: the ``X-Schema-Version`` response header (and ``Warning`` /
``Deprecation`` where a version is deprecated), 406 for an Accept naming no served version
and 415 for such a Content-Type. Plain ``application/json`` stays the default version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from ...resource import ApiVersions, ApiVersionTable, Resource, ResourceInfo
from ..http._negotiate import SCHEMA_VERSION_HEADER

__all__ = ["document_versions", "version_models"]

AnyKind = type[Resource[Any, Any]]
Refs = Callable[[type, ResourceInfo], dict[str, str]]
WriteSchema = Callable[..., dict[str, Any]]

_WRITES = ("post", "put", "patch")
_VERSION_HEADER = {SCHEMA_VERSION_HEADER: {
    "description": "The API version of this answer (see the kind's description)",
    "schema": {"type": "string"}}}
_DEPRECATION_HEADERS = {
    "Warning": {"description": '299 - "KIND VERSION is deprecated; use ..." when the '
                               "version answered in is deprecated",
                "schema": {"type": "string"}},
    "Deprecation": {"description": "true when the version answered in is deprecated",
                    "schema": {"type": "string"}},
}


def version_models(kinds: Sequence[AnyKind], table: ApiVersionTable) -> list[Any]:
    """The pydantic models of every non-storage version, for the one schema pass."""
    models: list[Any] = []
    for cls in kinds:
        versions = table.of(cls)
        for name in versions.names[1:]:
            models += [(versions.model(name), "serialization"),
                       (versions.spec_type(name), "validation"),
                       (versions.status_type(name), "validation")]
    return models


def document_versions(
    document: dict[str, Any],
    kinds: Sequence[AnyKind],
    table: ApiVersionTable,
    *,
    strict: bool,
    refs: Refs,
    write_schema: WriteSchema,
) -> None:
    """Add each kind's API versions to `document` (built for the storage versions)."""
    schemas = document["components"]["schemas"]
    tags = {tag["name"]: tag for tag in document["tags"]}
    for cls in kinds:
        versions = table.of(cls)
        info = cls.resource_info
        by_version = {name: _version_refs(versions, name, schemas, strict, refs, write_schema)
                      for name in versions.names}
        tag = tags[info.kind]
        tag["description"] = f"{tag['description']}. {_negotiation_text(versions)}"
        for path, item in document["paths"].items():
            if path == f"/{info.plural}" or path.startswith(f"/{info.plural}/"):
                for method, op in item.items():
                    if method != "parameters":
                        _document_operation(method, op, versions, by_version)


def _version_refs(versions: ApiVersions, name: str, schemas: dict[str, Any], strict: bool,
                  refs: Refs, write_schema: WriteSchema) -> dict[str, str]:
    """The schema references of one version; a served version's write schemas are made here."""
    model = versions.model(name)
    view = versions.kind.resource_info
    if name == versions.storage:
        return refs(model, view)
    served = versions.info(name)
    assert served is not None
    view = _view(view, served.spec_type, served.status_type)
    found = refs(model, view)
    found["write"] = found["write"].replace(view.kind + "Write", model.__name__ + "Write")
    found["create"] = found["create"].replace(view.kind + "Create", model.__name__ + "Create")
    spec_schema = schemas[found["spec"].rsplit("/", 1)[-1]]
    if strict:
        spec_schema["additionalProperties"] = False
        schemas[found["status"].rsplit("/", 1)[-1]]["additionalProperties"] = False
    resource_schema = schemas[found["resource"].rsplit("/", 1)[-1]]
    if served.deprecated:
        resource_schema["deprecated"] = True
    for create, key in ((True, "create"), (False, "write")):
        schema = write_schema(view, found, spec_schema, create=create)
        for branch in schema["anyOf"]:
            branch["properties"]["schemaVersion"] = {"type": "string", "const": name}
        schemas[found[key].rsplit("/", 1)[-1]] = schema
    return found


def _view(info: ResourceInfo, spec: type[BaseModel], status: type[BaseModel]) -> ResourceInfo:
    return dataclasses.replace(info, spec_type=spec, status_type=status)


def _document_operation(method: str, op: dict[str, Any], versions: ApiVersions,
                        by_version: dict[str, dict[str, str]]) -> None:
    codes = ["406", *(["415"] if method in _WRITES else [])]
    error = next((r for code, r in op["responses"].items() if code >= "400"), None)
    for code in codes:
        if code not in op["responses"] and error is not None:
            op["responses"][code] = {
                "description": "Accept names no API version this kind serves" if code == "406"
                else "Unsupported content type, or a version= this kind does not serve",
                "content": error["content"]}
    op["responses"] = dict(sorted(op["responses"].items()))
    deprecated = any(versions.deprecated(name) for name in versions.names)
    for code, response in op["responses"].items():
        if code < "300" and "content" in response:
            response["headers"] = {**response.get("headers", {}), **_VERSION_HEADER,
                                   **(_DEPRECATION_HEADERS if deprecated else {})}
            if versions.multiple:
                response["content"] = _per_version(response["content"], versions, by_version,
                                                   response=True)
    body = op.get("requestBody")
    if body is not None and versions.multiple:
        body["content"] = _per_version(body["content"], versions, by_version)


def _per_version(content: dict[str, Any], versions: ApiVersions,
                 by_version: dict[str, dict[str, str]], *, response: bool = False
                 ) -> dict[str, Any]:
    """Each media type again with ``;version=V`` for every version, holding V's schemas.
    A bare request media type holds the default version's (a body in another version says
    so in its schemaVersion); a bare response one any version's, default first, for tools
    that match a response's ``application/json;version=V`` to ``application/json``."""
    storage = by_version[versions.storage]
    order = [versions.default, *(v for v in versions.names if v != versions.default)]
    result: dict[str, Any] = {}
    for media, entry in content.items():
        shown = [_swap(entry, storage, by_version[name]) for name in order]
        result[media] = shown[0]
        if response:
            result[media] = {"schema": {"anyOf": [one["schema"] for one in shown]}}
        for name in versions.names:
            result[f"{media};version={name}"] = _swap(entry, storage, by_version[name])
    return result


def _swap(entry: Any, old: dict[str, str], new: dict[str, str]) -> Any:
    """`entry` with each of the storage version's schema references replaced by `new`'s."""
    if isinstance(entry, dict):
        ref = entry.get("$ref")
        if isinstance(ref, str) and len(entry) == 1:
            for key, value in old.items():
                if ref == value:
                    return {"$ref": new[key]}
        return {k: _swap(v, old, new) for k, v in entry.items()}
    if isinstance(entry, list):
        return [_swap(v, old, new) for v in entry]
    return entry


def _negotiation_text(versions: ApiVersions) -> str:
    shown = []
    for name in versions.names:
        notes = [n for n, on in (("storage", name == versions.storage),
                                 ("default", name == versions.default),
                                 ("deprecated", versions.deprecated(name))) if on]
        shown.append(f"{name} ({', '.join(notes)})" if notes else name)
    return (f"API versions: {', '.join(shown)}. Read one with `Accept: "
            "application/json;version=V`, write one with `Content-Type: "
            "application/json;version=V` (or the body's schemaVersion); every answer names "
            f"its version in {SCHEMA_VERSION_HEADER}. Unknown versions: 406 (Accept), 415 "
            "(Content-Type)")
