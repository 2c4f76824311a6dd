"""Request bodies: size limit, JSON parsing, and the two shapes a write may take.

Fabrica accepts a *flat* body (``{"name", "labels", "annotations", ...spec fields}``) and
the Kubernetes *envelope* (``{"metadata": {...}, "spec": {...}}``); both end up as a
`WriteRequest`. Validation follows the project's mode: ``strict`` rejects unknown fields,
``warn`` drops them and says so in a ``Warning`` header, ``disabled`` drops them silently.
The metadata rules (labels, annotations, finalizers, owner references) are the resource
model's, which the store applies to every writer; they raise `InvalidMetadata`, a 400.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaValidator
from starlette.requests import Request

from ..resource import (
    API_VERSION,
    OwnerReference,
    ResourceInfo,
    check_annotations,
    check_finalizers,
    check_labels,
    check_owner_references,
    invalid_text_path,
    is_dns1123_subdomain,
)
from ._bounds import MAX_DEPTH
from ._errors import APIError, validation_details

__all__ = [
    "WriteRequest",
    "check_json_content_type",
    "check_new_name",
    "parse_status",
    "parse_write",
    "read_json",
    "read_json_object",
    "validate_model",
]

_FLAT_META = ("name", "labels", "annotations")
_IGNORED_TOP = frozenset({"apiVersion", "kind", "schemaVersion", "status", "uid"})
_RESOURCE_KEYS = frozenset({"apiVersion", "kind", "schemaVersion", "metadata", "spec", "status"})


@dataclass
class WriteRequest:
    name: str | None
    name_field: str
    labels: dict[str, str] | None
    annotations: dict[str, str] | None
    spec: BaseModel
    resource_version: str | None = None
    warnings: list[str] = field(default_factory=list)
    finalizers: list[str] | None = None
    owner_references: list[OwnerReference] | None = None


_PATCH_MEDIA_TYPES = frozenset({"application/merge-patch+json", "application/json-patch+json",
                                "application/shorthand-patch+json"})


def check_json_content_type(request: Request) -> None:
    """POST and PUT take JSON: ``application/json`` (or another ``application/*+json``
    type), or no Content-Type at all. Only the media type decides: parameters such as
    ``charset`` or ``version`` are left to whoever reads them."""
    header = request.headers.get("content-type")
    if header is None:
        return
    media_type = header.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
        and media_type not in _PATCH_MEDIA_TYPES
    ):
        return
    hint = "; patch formats go with PATCH" if media_type in _PATCH_MEDIA_TYPES else ""
    raise APIError(415, f"unsupported content type {media_type or header!r}: send "
                   f"application/json{hint}")


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    body = await read_json(request, limit)
    if not isinstance(body, dict):
        raise APIError(400, "request body must be a JSON object")
    return body


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise APIError(400, "request body is empty; expected a JSON object")
    try:
        text = raw.decode("utf-8")  # RFC 8259: JSON on the wire is UTF-8
    except UnicodeDecodeError as exc:
        raise APIError(400, f"request body is not UTF-8: {exc.reason} at byte {exc.start}"
                       ) from None
    try:
        body = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}") from None
    _check_depth(body, raw)
    if "\\u" in text and (path := invalid_text_path(body)) is not None:
        raise APIError(400, f"invalid {path or 'body'}: not valid Unicode text",
                       [{"field": path, "message": "holds a lone UTF-16 surrogate"}])
    return body


def _not_json(literal: str) -> Any:
    raise ValueError(f"{literal} is not a JSON number")


def _finite(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):  # 1e400: too large for any float field
        raise ValueError(f"number {literal[:40]} is out of range")
    return value


def _check_depth(body: Any, raw: bytes) -> None:
    """Refuse documents nested deeper than `MAX_DEPTH`: every later step (validation,
    storage encoders, events) recurses, and none should meet its recursion limit."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        item, depth = stack.pop()
        children = (item.values() if isinstance(item, dict)
                    else item if isinstance(item, list) else ())
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_DEPTH:
                    raise APIError(400, f"request body nested deeper than {MAX_DEPTH} levels")
                stack.append((child, depth + 1))


def parse_write(info: ResourceInfo, body: dict[str, Any], mode: str) -> WriteRequest:
    spec_fields = info.spec_type.model_fields
    is_envelope = any(
        isinstance(body.get(key), dict) and key not in spec_fields for key in ("metadata", "spec")
    )
    if is_envelope:
        return _parse_envelope(info, body, mode)
    return _parse_flat(info, body, mode)


def parse_status(
    info: ResourceInfo, body: dict[str, Any], mode: str
) -> tuple[BaseModel, list[str]]:
    """A bare status object; a whole resource is accepted too, as Kubernetes sends it."""
    if (
        isinstance(body.get("status"), dict)
        and set(body) <= _RESOURCE_KEYS
        and "status" not in info.status_type.model_fields
    ):
        check_identity(info, body)
        body = body["status"]
    return validate_model(info.status_type, body, mode, "status")


def check_identity(info: ResourceInfo, body: dict[str, Any], spec_fields: Any = ()) -> None:
    """An envelope's ``apiVersion`` and ``kind``, when given, must be this kind's: a body
    meant for another kind or API is refused, never stored as this one. A flat body's spec
    may have fields of those names; then they are spec."""
    for field_name, expected in (("apiVersion", API_VERSION), ("kind", info.kind)):
        if field_name in spec_fields or field_name not in body:
            continue
        value = body[field_name]
        if value == expected:
            continue
        shown = value if isinstance(value, str) else json.dumps(value)
        raise APIError(400, f"{field_name} {shown!r} does not match {expected!r}",
                       [{"field": field_name, "message": f"must be {expected}"}])


def _parse_envelope(info: ResourceInfo, body: dict[str, Any], mode: str) -> WriteRequest:
    check_identity(info, body)
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict):
        raise APIError(400, "metadata must be an object",
                       [{"field": "metadata", "message": "must be an object"}])
    spec_body = body.get("spec", {})
    if not isinstance(spec_body, dict):
        raise APIError(400, "spec must be an object",
                       [{"field": "spec", "message": "must be an object"}])
    spec, warnings = validate_model(info.spec_type, spec_body, mode, "spec")
    version = metadata.get("resourceVersion")
    if version is not None and not isinstance(version, str):
        raise APIError(400, "metadata.resourceVersion must be a string",
                       [{"field": "metadata.resourceVersion", "message": "must be a string"}])
    return WriteRequest(
        name=_name(metadata.get("name"), "metadata.name"),
        name_field="metadata.name",
        labels=check_labels(metadata.get("labels"), "metadata.labels"),
        annotations=check_annotations(metadata.get("annotations"), "metadata.annotations"),
        spec=spec,
        resource_version=version or None,
        warnings=warnings,
        finalizers=check_finalizers(metadata.get("finalizers")),
        owner_references=check_owner_references(metadata.get("ownerReferences")),
    )


def _parse_flat(info: ResourceInfo, body: dict[str, Any], mode: str) -> WriteRequest:
    spec_fields = _field_names(info.spec_type)
    check_identity(info, body, spec_fields)
    spec_body = {
        key: value
        for key, value in body.items()
        if key in spec_fields or (key not in _FLAT_META and key not in _IGNORED_TOP)
    }
    spec, warnings = validate_model(info.spec_type, spec_body, mode, "spec")
    return WriteRequest(
        name=_name(body.get("name"), "name"),
        name_field="name",
        labels=check_labels(body.get("labels"), "labels"),
        annotations=check_annotations(body.get("annotations"), "annotations"),
        spec=spec,
        warnings=warnings,
    )


def check_new_name(info: ResourceInfo, write: WriteRequest) -> str:
    """The name of a resource to create: required, and not shaped like this kind's uids,
    since ``/PLURAL/ID`` takes a uid or a name and must find one resource only."""
    if write.name is None:
        raise APIError(400, "name is required",
                       [{"field": "metadata.name", "message": "Field required"}])
    if info.is_uid(write.name):
        raise APIError(400, f"invalid {write.name_field}: {write.name!r} has the shape of a "
                       "uid", [{"field": write.name_field, "message": f"must not look like a "
                                f"{info.kind} uid ({info.prefix}- and 8 or more hex digits)"}])
    return write.name


def validate_model(
    model: type[BaseModel], data: dict[str, Any], mode: str, path: str
) -> tuple[BaseModel, list[str]]:
    validator = _fail_fast(model)
    try:
        if mode == "strict":
            # JSON types as declared: no "443" or true for an integer. Validated as JSON
            # text, where strict still reads dates, UUIDs and enums from their strings.
            text = json.dumps(_integral_floats_as_ints(data))
            value = validator.validate_json(text, strict=True, extra="forbid")
        else:
            value = validator.validate_python(data, extra="ignore")
    except ValidationError as exc:
        raise APIError(400, f"invalid {path}", validation_details(exc, path)) from None
    warnings: list[str] = []
    if mode == "warn":
        try:
            validator.validate_python(data, extra="forbid")
        except ValidationError as exc:
            warnings = [
                f"unknown field {d['field']!r} ignored"
                for d, err in zip(validation_details(exc, path), exc.errors(), strict=True)
                if err["type"] == "extra_forbidden"
            ]
    return value, warnings


_FAIL_FAST: dict[type[BaseModel], SchemaValidator] = {}
_COLLECTIONS = frozenset({"list", "dict", "tuple", "set", "frozenset"})
#: Where a core schema holds other schemas (not its defaults, examples or metadata).
_SCHEMA_KEYS = ("schema", "items_schema", "keys_schema", "values_schema", "choices",
                "fields", "definitions", "steps", "lax_schema", "strict_schema",
                "json_schema", "python_schema", "arguments_schema", "return_schema",
                "extras_schema", "extras_keys_schema")


def _fail_fast(model: type[BaseModel]) -> SchemaValidator:
    """`model`'s validator, except that each array or object stops at its first invalid
    member. Pydantic reports every one, and a body of a megabyte of ``[0,0,...]`` for a
    list of strings made 520,000 errors and half a gigabyte; now a body makes at most as
    many errors as its model has fields. Built once per model, from its core schema."""
    validator = _FAIL_FAST.get(model)
    if validator is None:
        schema = copy.deepcopy(model.__pydantic_core_schema__)
        stack: list[Any] = [schema]
        while stack:
            node = stack.pop()
            if isinstance(node, list | tuple):
                stack.extend(node)
            elif isinstance(node, dict) and isinstance(node.get("type"), str):  # a schema
                if node["type"] in _COLLECTIONS:
                    node["fail_fast"] = True
                stack.extend(node[key] for key in _SCHEMA_KEYS if key in node)
            elif isinstance(node, dict):  # names to schemas: fields, tagged choices
                stack.extend(node.values())
        # Not prebuilt: that would reuse the validators of nested models as they are.
        validator = _FAIL_FAST[model] = SchemaValidator(schema, None, _use_prebuilt=False)
    return validator


def _integral_floats_as_ints(value: Any) -> Any:
    """JSON has one number type: 443.0 is the integer 443 (JSON Schema says so too), which
    pydantic's strict mode would refuse for an ``int`` field. `value` itself when it holds
    no such float (most bodies): a copy of a megabyte of objects costs some 25 MB."""
    return _as_ints(value) if _has_integral_float(value) else value


def _has_integral_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and item.is_integer():
            return True
    return False


def _as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_ints(v) for v in value]
    return value


def _field_names(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        names.add(name)
        if info.alias:
            names.add(info.alias)
    return names


def _name(value: Any, field_path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not is_dns1123_subdomain(value):
        raise APIError(
            400,
            f"invalid {field_path}: {value!r}",
            [{"field": field_path, "message": "must be a DNS-1123 subdomain: lower-case "
              "letters, digits, '-' and '.', starting and ending with a letter or digit, "
              "at most 253 characters"}],
        )
    return value
