"""OpenAPI 3.1 for a set of kinds, built from the same pydantic models that validate.

One document serves two readers: the running server answers it at ``/openapi.json`` and
``fabrica generate`` writes it to the project as ``openapi.json``, so other tools (client
generators, schemathesis, gateways) can read the contract without starting anything. It
lists every route the server answers, every patch media type and every error status.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..._version import __version__
from ...resource import (
    API_VERSION,
    LABEL_VALUE_MAX_LENGTH,
    LABEL_VALUE_PATTERN,
    MAX_SELECTOR_LENGTH,
    MAX_SELECTOR_REQUIREMENTS,
    MAX_SELECTOR_VALUES,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    ApiVersionTable,
    Resource,
    ResourceInfo,
    ServedVersion,
)
from ..http._conditional import ENTITY_TAGS_PATTERN
from ..http._table import ID_PARAM, VERSION_PARAM, offered_operations
from ..http._watch import MAX_TIMEOUT_SECONDS, RESOURCE_VERSION_PATTERN, WATCH_MEDIA_TYPE
from ._field_selector import field_selector_param
from ._openapi_versions import document_versions, version_models

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
    "400": "Invalid JSON, a body that fails validation, bad query parameters, or a "
           "malformed If-Match / If-None-Match",
    "404": "No resource with this uid or name",
    "409": "Duplicate name or stale resourceVersion",
    "412": "If-Match does not match the current ETag",
    "413": "Request body too large; or a patch whose result would be larger than both the "
           "body limit and the current document, or that has more than 10,000 operations",
    "405": "A verb this kind does not offer (list or watch; the Allow header lists the "
           "methods of the path)",
    "415": "Unsupported content type (POST and PUT take JSON; PATCH a patch type)",
    "422": "A patch that cannot be applied to the current document, or would nest it deeper "
           "than 64 levels; or metadata.ownerReferences naming a kind not served here or a "
           "resource that does not exist",
    "503": "Storage temporarily unavailable; retry after Retry-After seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying",
                                "schema": {"type": "integer", "minimum": 0}}}
_PATCH_TYPES = {
    "application/merge-patch+json": "RFC 7386 JSON merge patch; null removes a field",
    "application/json-patch+json": "RFC 6902 JSON patch (every operation, also on nested "
                                   "fields, as the RFC says)",
    "application/shorthand-patch+json": 'Shorthand: {"a.b.c": value} sets nested fields, '
                                        "null removes; keys starting with / are JSON pointers",
    "application/json": "Same as application/merge-patch+json",
}
_ETAG_HEADER = {"ETag": {"description": "The resourceVersion, quoted (strong)",
                         "schema": {"type": "string"}}}
_ENTITY_TAGS = {"type": "string", "pattern": ENTITY_TAGS_PATTERN}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": _ENTITY_TAGS,
             "description": "Write only if the current ETag is one of these (* : if it "
                            "exists); otherwise 412"}
_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                  "schema": _ENTITY_TAGS,
                  "description": "Answer 304 (no body) when the current ETag is one of these"}
_DRY_RUN = {"name": "dryRun", "in": "query", "required": False,
            "schema": {"type": "string", "enum": ["All"]},
            "description": "All: validate and admit the write (hooks included) and answer "
                           "what would be stored, storing and publishing nothing"}
_DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
# The selector grammar of `parse_selector`, with keys and values as the label rules allow
# (a key prefix is written with at most three DNS labels here, to stay within 253).
_SEL_NAME = "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_SEL_KEY = (f"([a-z0-9]([-a-z0-9]{{0,61}}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{{0,61}}[a-z0-9])?)"
            f"{{0,2}}/)?{_SEL_NAME}")
_SEL_VALUE = f"({_SEL_NAME})?"
_SEL_REQ = (f"(!{_SEL_KEY}|{_SEL_KEY}( *(==|!=|=) *{_SEL_VALUE}| +(in|notin) *\\( *"
            f"{_SEL_NAME}( *, *{_SEL_VALUE})* *\\))?)")
SELECTOR_PATTERN = f"^ *({_SEL_REQ} *(, *{_SEL_REQ} *)*)?(?!\\n)$"
# `compile_pattern`: dot-separated segments, * one whole segment, ** only the last one.
EVENT_TYPE_PATTERN = "^([^\\s.*]+\\.|\\*\\.)*([^\\s.*]+|\\*|\\*\\*)(?!\\n)$"
_LIST_PARAMS = [
    {"name": "labelSelector", "in": "query", "required": False,
     # (no maxLength: a fuzzer would send that many multi-byte characters, a URL longer
     # than uvicorn reads, which it refuses in plain text before the app sees it)
     "schema": {"type": "string", "pattern": SELECTOR_PATTERN},
     "description": "Kubernetes label selector: k=v,k!=v,k in (a,b),k notin (a),k,!k "
                    f"(at most {MAX_SELECTOR_LENGTH} characters, "
                    f"{MAX_SELECTOR_REQUIREMENTS} requirements and {MAX_SELECTOR_VALUES} "
                    "values)"},
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 0, "maximum": 1000},
     "description": "Page size; the next page's URL is in the Link header (rel=next)"},
    {"name": "continue", "in": "query", "required": False,
     "schema": {"type": "string", "maxLength": 253,
                "pattern": f"^({_DNS_LABEL}(\\.{_DNS_LABEL})*)?(?!\\n)$"},
     "description": "The token of a previous page's Link header (rel=next)"},
    {"name": "watch", "in": "query", "required": False, "schema": {"type": "boolean"},
     "description": "true: stream changes as newline-delimited JSON watch events "
                    "(application/x-ndjson) instead of answering a list"},
    {"name": "resourceVersion", "in": "query", "required": False,
     "schema": {"type": "string", "pattern": RESOURCE_VERSION_PATTERN},
     "description": "With watch: send every change after this version (a list's "
                    "X-Resource-Version, or the last event's); without it a watch first "
                    "sends every current match as ADDED. Too old: one ERROR event with "
                    "code 410. Newer than any this server has (after a few seconds' wait "
                    "for it): one ERROR event with code 504, reason Timeout (list again). "
                    "Ignored by a plain list"},
    {"name": "allowWatchBookmarks", "in": "query", "required": False,
     "schema": {"type": "boolean"},
     "description": "With watch: periodic BOOKMARK events carrying only "
                    "metadata.resourceVersion, from which the watch can resume"},
    {"name": "timeoutSeconds", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_TIMEOUT_SECONDS},
     "description": "With watch: end the stream after this many seconds (0: no limit)"},
]
_WATCH_EVENT = {
    "type": "object", "required": ["type", "object"],
    "description": "One line of a watch stream; object is the resource (the Status of an "
                   "ERROR, only kind, apiVersion and metadata.resourceVersion for a BOOKMARK)",
    "properties": {"type": {"enum": ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]},
                   "object": {"type": "object"}},
}
_RESOURCE_VERSION_HEADER = {
    "X-Resource-Version": {"description": "The version the list is exactly at: a watch "
                                          "from it continues the list with no gap",
                           "schema": {"type": "string"}}}
_NAME_SCHEMA = {"type": "string", "maxLength": NAME_MAX_LENGTH, "pattern": NAME_PATTERN,
                "description": "A DNS-1123 subdomain, unique within the kind"}
# A label key, annotation key or finalizer: an optional DNS-subdomain prefix and a name,
# each part within its length (a regex can say that where a total maxLength cannot).
_QUALIFIED_NAME = {"type": "string", "pattern": f"^{_SEL_KEY}(?!\\n)$"}
_LABELS_SCHEMA = {
    "type": ["object", "null"],
    "propertyNames": _QUALIFIED_NAME,
    "additionalProperties": {"type": "string", "maxLength": LABEL_VALUE_MAX_LENGTH,
                             "pattern": LABEL_VALUE_PATTERN},
}
_ANNOTATIONS_SCHEMA = {
    "type": ["object", "null"],
    "propertyNames": _QUALIFIED_NAME,
    "additionalProperties": {"type": "string"},
}
_DELETED_SCHEMA = {
    "type": "object",
    "required": ["message", "uid"],
    "properties": {
        "message": {"type": "string"}, "uid": {"type": "string"},
        "finalizers": {"type": "array", "items": {"type": "string"},
                       "description": "Present while deletion waits for these finalizers"},
    },
}
_VERSION_SCHEMA = {
    "type": "object",
    "required": ["versionId", "createdAt", "uid", "name", "spec"],
    "properties": {
        "versionId": {"type": "string"}, "createdAt": {"type": "string", "format": "date-time"},
        "uid": {"type": "string"}, "name": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "spec": {"type": "object"},
        "schemaVersion": {"type": "string",
                          "description": "The API version the spec is shown in"},
    },
}


def build_openapi(
    kinds: Sequence[type[Resource[Any, Any]]],
    *,
    title: str,
    description: str = "",
    events: bool = False,
    strict: bool = True,
    versions: Sequence[type[ServedVersion[Any, Any]]] = (),
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a service serving `kinds`, and the other API `versions`
    of those kinds (`ServedVersion` classes).

    `events` says whether the service streams ``GET /events`` (events or reconciliation
    on); `strict` whether it refuses unknown spec and status fields (validation mode
    ``strict``), which the schemas then say with ``additionalProperties: false``. The result
    depends only on the arguments and the fabrica version, so writing it with
    ``json.dumps(..., indent=2)`` gives the same bytes every time.
    """
    # internal kinds have no routes: nothing of them is documented
    kinds = [cls for cls in kinds if cls.resource_info.rules.served]
    versions = [v for v in versions if v.version_info.kind.resource_info.rules.served]
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for cls in kinds:
        info = cls.resource_info
        models += [(cls, "serialization"), (info.spec_type, "validation"),
                   (info.status_type, "validation")]
    table = ApiVersionTable(kinds, versions)
    models += version_models(kinds, table)
    _, defs = models_json_schema(models, ref_template=_REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR_SCHEMA
    if any(cls.resource_info.versioning for cls in kinds):
        schemas["SpecVersion"] = _VERSION_SCHEMA
    paths: dict[str, Any] = {}
    tags: list[dict[str, str]] = []
    for cls in kinds:
        info = cls.resource_info
        refs = _refs(schemas, cls, info)
        spec_schema = schemas[refs["spec"].rsplit("/", 1)[-1]]
        if strict:
            spec_schema["additionalProperties"] = False
            schemas[refs["status"].rsplit("/", 1)[-1]]["additionalProperties"] = False
        status_schema = schemas[refs["status"].rsplit("/", 1)[-1]]
        schemas[f"{info.kind}Create"] = _write_schema(info, refs, spec_schema, create=True)
        schemas[f"{info.kind}Write"] = _write_schema(info, refs, spec_schema, create=False)
        paths.update(_paths(info, refs, (_patch_body(spec_schema), _patch_body(status_schema))))
        tags.append({"name": info.kind, "description": info.description or info.kind})
    paths.update(_system_paths(events))
    tags.append({"name": "system", "description": "Health, metrics, events and this document"})
    document = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__, "description": description},
        "tags": tags,
        "paths": paths,
        "components": {"schemas": schemas},
    }
    document_versions(document, kinds, table, strict=strict, refs=partial(_refs, schemas),
                      write_schema=_write_schema)
    return document


_READY = {"type": "object", "required": ["status", "checks"], "properties": {
    "status": {"type": "string", "enum": ["ready", "not ready"]},
    "checks": {"type": "object", "additionalProperties": {"type": "string"}}}}


def _system_paths(events: bool) -> dict[str, Any]:
    tags = ["system"]
    paths: dict[str, Any] = {
        "/health": {"get": _op("health", "Health check", tags, {"200": {
            "description": "Service is healthy", "content": _json({
                "type": "object", "required": ["status"],
                "properties": {"status": {"type": "string"}, "service": {"type": "string"},
                               "instance": {"type": "string"},
                               "version": {"type": "string"}, "storage": {"type": "string"},
                               "resources": {"type": "array", "items": {"type": "string"}}},
            })}})},
        "/ready": {"get": _op("ready", "Readiness: storage, events and role answer", tags, {
            "200": {"description": "Ready", "content": _json(_READY)},
            "503": {"description": "Not ready: the failing checks say why",
                    "content": _json(_READY)}})},
        "/metrics": {"get": _op("metrics", "Prometheus metrics", tags, {"200": {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}}}})},
        "/openapi.json": {"get": _op("openapi", "This OpenAPI document", tags, {"200": {
            "description": "OpenAPI 3.1", "content": _json({"type": "object"})}})},
        "/docs": {"get": _op("docs", "Swagger UI for this API", tags, {"200": {
            "description": "An HTML page", "content": {"text/html": {
                "schema": {"type": "string"}}}}})},
    }
    if events:
        paths["/events"] = {"get": _op(
            "events", "Stream CloudEvents (server-sent events)", tags,
            {"200": {"description": "One structured CloudEvent 1.0 JSON per data: line; the "
                                    "stream stays open",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
            params=[{"name": "type", "in": "query", "required": False,
                     "schema": {"type": "string", "pattern": EVENT_TYPE_PATTERN},
                     "description": "Event type pattern: * matches one segment, ** the rest, "
                                    "e.g. io.fabrica.device.*"},
                    {"name": "Last-Event-ID", "in": "header", "required": False,
                     "schema": {"type": "string"},
                     "description": "Resume right after this event id, if the bus still "
                                    "holds it (else an event: fabrica.resync message)"}],
            errors=("400",))}
    return paths


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
        "create": _REF.format(model=f"{info.kind}Create"),
    }


def _write_schema(
    info: ResourceInfo, refs: dict[str, str], spec: dict[str, Any], *, create: bool
) -> dict[str, Any]:
    """Envelope or flat: Fabrica's flat body puts metadata beside the spec fields.

    The flat form copies the spec's properties (their ``$ref``s stay valid) rather than
    combining schemas, so ``additionalProperties: false`` of a strict spec still holds.
    A create needs the name; a replace may leave it out.
    """
    # A replace may leave the name out (or null); a create must give it.
    name = _NAME_SCHEMA if create else {"anyOf": [_NAME_SCHEMA, {"type": "null"}]}
    metadata: dict[str, Any] = {
        "type": "object",
        "properties": {
            "name": name, "labels": _LABELS_SCHEMA, "annotations": _ANNOTATIONS_SCHEMA,
            "resourceVersion": {"type": ["string", "null"]},
            # null, as leaving them out: unchanged on a replace
            "finalizers": {"type": ["array", "null"], "items": _QUALIFIED_NAME},
            "ownerReferences": {"type": ["array", "null"],
                                "items": {"$ref": _REF.format(model="OwnerReference")}},
        },
    }
    if create:
        metadata["required"] = ["name"]
    # What makes a body an envelope: metadata (a create needs it, for the name) and the
    # spec, which may be left out when every spec field has a default.
    needs_spec = bool(spec.get("required"))
    envelope: dict[str, Any] = {
        "type": "object",
        "title": "Envelope",
        "required": [*(["metadata"] if create else []), *(["spec"] if needs_spec else [])],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": info.kind},
            "schemaVersion": {"enum": [info.version, None]},
            "metadata": metadata,
            "spec": {"$ref": refs["spec"]},
        },
    }
    ignored = {"apiVersion": {"const": API_VERSION}, "kind": {"const": info.kind},
               "schemaVersion": {"enum": [info.version, None]}, "uid": {},
               "status": {"description": "Ignored: writes here never change status"}}
    flat: dict[str, Any] = {
        "type": "object",
        "title": "Flat",
        "properties": {**ignored, "name": name, "labels": _LABELS_SCHEMA,
                       "annotations": _ANNOTATIONS_SCHEMA, **spec.get("properties", {})},
    }
    if not envelope["required"]:
        envelope["anyOf"] = [{"required": ["metadata"]}, {"required": ["spec"]}]
        del envelope["required"]
    required = [*(["name"] if create else []), *spec.get("required", [])]
    if required:
        flat["required"] = required
    if "additionalProperties" in spec:
        flat["additionalProperties"] = spec["additionalProperties"]
    # anyOf, not oneOf: without strictness, an envelope is also a flat body.
    action = "create" if create else "write"
    return {"description": f"A {info.kind} to {action}, as an envelope or flat",
            "anyOf": [envelope, flat]}


def _paths(
    info: ResourceInfo, refs: dict[str, str], patches: tuple[dict[str, Any], dict[str, Any]]
) -> dict[str, Any]:
    """The kind's paths, from the same table the router is built from (`_table`)."""
    operations = _kind_operations(info, refs, patches)
    params = {
        ID_PARAM: {"name": ID_PARAM, "in": "path", "required": True,
                   "schema": {"type": "string"}, "description": f"The {info.kind}'s uid or name"},
        VERSION_PARAM: {"name": VERSION_PARAM, "in": "path", "required": True,
                        "schema": {"type": "string"}},
    }
    paths: dict[str, Any] = {}
    for op in offered_operations(info):
        if op.path not in paths:
            used = [params[name] for name in (ID_PARAM, VERSION_PARAM)
                    if f"{{{name}}}" in op.path]
            paths[op.path] = {"parameters": used} if used else {}
        paths[op.path][op.method.lower()] = operations[op.name]
    return paths


def _kind_operations(
    info: ResourceInfo, refs: dict[str, str], patches: tuple[dict[str, Any], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each operation of `kind_operations` by name; `patches`: the spec's and the status's
    patch bodies."""
    kind, plural = info.kind, info.plural
    write_body = {"required": True, "content": _json({"$ref": refs["write"]})}
    tags = [kind]
    write_errors = ("400", "404", "409", "412", "413", "415")
    patch_errors = ("400", "404", "409", "412", "413", "415", "422")

    def one(description: str, status: str = "200") -> dict[str, Any]:
        return {status: {"description": description, "headers": _ETAG_HEADER,
                         "content": _json({"$ref": refs["resource"]})}}

    created = one("Created", "201")
    created["201"]["headers"] = {**_ETAG_HEADER, "Location": {
        "description": "The new resource's URL", "schema": {"type": "string"}}}
    version = _json({"$ref": _REF.format(model="SpecVersion")})
    version_deleted = {
        "type": "object", "required": ["message", "versionId"],
        "properties": {"message": {"type": "string"}, "versionId": {"type": "string"}}}
    operations = {
        "list": _op(f"list{kind}", f"List {plural}", tags,
                    {"200": {"description": f"{plural}, ordered by name; with watch=true "
                                            "a stream of watch events, one JSON per line",
                             "headers": {"Link": {"schema": {"type": "string"},
                                                  "description": 'Next page, rel="next"'},
                                         **_RESOURCE_VERSION_HEADER},
                             "content": {**_json({"type": "array",
                                                  "items": {"$ref": refs["resource"]}}),
                                         WATCH_MEDIA_TYPE: {"schema": _WATCH_EVENT}}}},
                    params=[*_LIST_PARAMS, field_selector_param(info.rules)],
                    errors=("400",)),
        "create": _op(f"create{kind}", f"Create a {kind}", tags, created,
                      body={"required": True, "content": _json({"$ref": refs["create"]})},
                      params=[_DRY_RUN], errors=("400", "409", "413", "415", "422")),
        "get": _op(f"get{kind}", f"Get a {kind}", tags,
                   {**one("The resource"), "304": {"description": "Not modified",
                                                   "headers": _ETAG_HEADER}},
                   params=[_IF_NONE_MATCH], errors=("400", "404")),
        "replace": _op(f"update{kind}", f"Replace a {kind}'s spec", tags, one("Updated"),
                       body=write_body, params=[_IF_MATCH, _DRY_RUN],
                       errors=(*write_errors, "422")),
        "patch": _op(f"patch{kind}", f"Patch a {kind}'s spec", tags, one("Patched"),
                     body=patches[0], params=[_IF_MATCH, _DRY_RUN], errors=patch_errors),
        "delete": _op(f"delete{kind}", f"Delete a {kind}", tags,
                      {"200": {"description": "Deleted, or marked for deletion while "
                                              "finalizers remain",
                               "content": _json(_DELETED_SCHEMA)}},
                      params=[_IF_MATCH, _DRY_RUN], errors=("400", "404", "409", "412")),
        "replace_status": _op(
            f"update{kind}Status", f"Replace a {kind}'s status", tags, one("Updated"),
            body={"required": True, "content": _json({"$ref": refs["status"]})},
            params=[_IF_MATCH, _DRY_RUN], errors=write_errors),
        "patch_status": _op(f"patch{kind}Status", f"Patch a {kind}'s status", tags,
                            one("Patched"), body=patches[1], params=[_IF_MATCH, _DRY_RUN],
                            errors=patch_errors),
        "list_versions": _op(
            f"list{kind}Versions", f"List a {kind}'s spec versions", tags,
            {"200": {"description": "Oldest first", "content": _json(
                {"type": "array", "items": {"$ref": _REF.format(model="SpecVersion")}})}},
            errors=("404",)),
        "get_version": _op(f"get{kind}Version", f"Get one spec version of a {kind}", tags,
                           {"200": {"description": "The snapshot", "content": version}},
                           errors=("404",)),
        "delete_version": _op(
            f"delete{kind}Version", f"Delete one spec version of a {kind}", tags,
            {"200": {"description": "Deleted", "content": _json(version_deleted)}},
            errors=("404",)),
    }
    operations["list"] = _list_verbs(info, operations["list"])
    return operations


_WATCH_PARAMS = frozenset({"watch", "resourceVersion", "allowWatchBookmarks", "timeoutSeconds"})


def _list_verbs(info: ResourceInfo, op: dict[str, Any]) -> dict[str, Any]:
    """The list operation as the kind's verbs leave it: without watch, no watch parameters
    and no stream; with only one of list and watch, the other is a 405."""
    rules = info.rules
    if rules.allows("list") and rules.allows("watch"):
        return op
    if not rules.allows("watch"):
        op["parameters"] = [p for p in op["parameters"] if p["name"] not in _WATCH_PARAMS]
        del op["responses"]["200"]["content"][WATCH_MEDIA_TYPE]
    else:
        op["summary"] = f"Watch {info.plural} (watch=true; a plain list is not offered)"
        op["responses"]["200"]["content"] = {
            WATCH_MEDIA_TYPE: op["responses"]["200"]["content"][WATCH_MEDIA_TYPE]}
    op["responses"]["405"] = {"description": _ERRORS["405"],
                              "content": _json({"$ref": _REF.format(model="Error")})}
    return op


def _patch_body(target: dict[str, Any]) -> dict[str, Any]:
    """The three patch formats of `target` (a spec or status schema), each as exact as a
    schema can be: a merge or shorthand patch names the target's fields (null removes an
    optional one), a JSON patch replaces or removes them by pointer. What the schema cannot
    say (a pointer into a nested field, a shorthand path) is still accepted."""
    properties = target.get("properties", {})
    required = set(target.get("required", []))
    merge = _fields_patch(target, _mergeable)
    shorthand = _fields_patch(target, lambda schema: schema)
    operations: list[dict[str, Any]] = [
        {"type": "object", "required": ["op", "path", "value"], "properties": {
            "op": {"enum": ["add", "replace"]}, "path": {"const": f"/{name}"},
            "value": schema}}
        for name, schema in properties.items()]
    optional = sorted(f"/{name}" for name in properties if name not in required)
    if optional:
        operations.append({"type": "object", "required": ["op", "path"], "properties": {
            "op": {"const": "remove"}, "path": {"enum": optional}}})
    json_patch = {"type": "array", "items": {"anyOf": operations} if operations else False}
    schemas = {"application/merge-patch+json": merge, "application/json-patch+json": json_patch,
               "application/shorthand-patch+json": shorthand, "application/json": merge}
    description = "; ".join(f"{media}: {text}" for media, text in _PATCH_TYPES.items())
    return {"required": True, "description": description,
            "content": {media: {"schema": schema} for media, schema in schemas.items()}}


def _fields_patch(
    target: dict[str, Any], value: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """An object naming `target`'s fields, each optional; null removes an optional one."""
    required = set(target.get("required", []))
    patch: dict[str, Any] = {"type": "object", "properties": {
        name: value(schema) if name in required else {"anyOf": [value(schema), {"type": "null"}]}
        for name, schema in target.get("properties", {}).items()}}
    if "additionalProperties" in target:
        patch["additionalProperties"] = target["additionalProperties"]
    return patch


def _mergeable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` as a merge patch may give it: in a map, null removes an entry."""
    extra = schema.get("additionalProperties")
    if not isinstance(extra, dict):
        return schema
    return {**schema, "additionalProperties": {"anyOf": [extra, {"type": "null"}]}}


def _op(
    operation_id: str,
    summary: str,
    tags: list[str],
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An operation; each resource operation also documents 503 (storage unavailable)."""
    if tags != ["system"]:
        errors = (*errors, "503")
    for code in errors:
        responses[code] = {"description": _ERRORS[code],
                           "content": _json({"$ref": _REF.format(model="Error")})}
        if code == "503":
            responses[code]["headers"] = _RETRY_AFTER
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": tags,
                          "responses": responses}
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = params
    return op


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}
