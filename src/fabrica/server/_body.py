"""Request bodies: size limit, JSON parsing, and the two shapes a write may take.

Fabrica accepts a *flat* body (``{"name", "labels", "annotations", ...spec fields}``) and
the Kubernetes *envelope* (``{"metadata": {...}, "spec": {...}}``); both end up as a
`WriteRequest`. Validation follows the project's mode: ``strict`` rejects unknown fields,
``warn`` drops them and says so in a ``Warning`` header, ``disabled`` drops them silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from ..resource import (
    OwnerReference,
    ResourceInfo,
    is_dns1123_subdomain,
    label_key_error,
    label_value_error,
)
from ._errors import APIError, validation_details

__all__ = [
    "WriteRequest",
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
    labels: dict[str, str] | None
    annotations: dict[str, str] | None
    spec: BaseModel
    resource_version: str | None = None
    warnings: list[str] = field(default_factory=list)
    finalizers: list[str] | None = None
    owner_references: list[OwnerReference] | None = None


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
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}") from None


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
        body = body["status"]
    return validate_model(info.status_type, body, mode, "status")


def _parse_envelope(info: ResourceInfo, body: dict[str, Any], mode: str) -> WriteRequest:
    kind = body.get("kind")
    if kind not in (None, info.kind):
        raise APIError(400, f"kind {kind!r} does not match {info.kind}",
                       [{"field": "kind", "message": f"must be {info.kind}"}])
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
        labels=_labels(metadata.get("labels"), "metadata.labels"),
        annotations=_annotations(metadata.get("annotations"), "metadata.annotations"),
        spec=spec,
        resource_version=version or None,
        warnings=warnings,
        finalizers=_finalizers(metadata.get("finalizers")),
        owner_references=_owner_references(metadata.get("ownerReferences")),
    )


def _parse_flat(info: ResourceInfo, body: dict[str, Any], mode: str) -> WriteRequest:
    spec_fields = _field_names(info.spec_type)
    spec_body = {
        key: value
        for key, value in body.items()
        if key in spec_fields or (key not in _FLAT_META and key not in _IGNORED_TOP)
    }
    spec, warnings = validate_model(info.spec_type, spec_body, mode, "spec")
    return WriteRequest(
        name=_name(body.get("name"), "name"),
        labels=_labels(body.get("labels"), "labels"),
        annotations=_annotations(body.get("annotations"), "annotations"),
        spec=spec,
        warnings=warnings,
    )


def validate_model(
    model: type[BaseModel], data: dict[str, Any], mode: str, path: str
) -> tuple[BaseModel, list[str]]:
    extra: Literal["forbid", "ignore"] = "forbid" if mode == "strict" else "ignore"
    try:
        value = model.model_validate(data, extra=extra)
    except ValidationError as exc:
        raise APIError(400, f"invalid {path}", validation_details(exc, path)) from None
    warnings: list[str] = []
    if mode == "warn":
        try:
            model.model_validate(data, extra="forbid")
        except ValidationError as exc:
            warnings = [
                f"unknown field {d['field']!r} ignored"
                for d, err in zip(validation_details(exc, path), exc.errors(), strict=True)
                if err["type"] == "extra_forbidden"
            ]
    return value, warnings


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


def _string_map(value: Any, field_path: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise APIError(400, f"invalid {field_path}",
                       [{"field": field_path, "message": "must map strings to strings"}])
    return value


_MAX_ANNOTATIONS_BYTES = 256 * 1024


def _labels(value: Any, field_path: str) -> dict[str, str] | None:
    labels = _string_map(value, field_path)
    if labels is None:
        return None
    details = []
    for key, label in labels.items():
        if (problem := label_key_error(key)) is not None:
            details.append({"field": f"{field_path}.{key}", "message": f"invalid key: {problem}"})
        elif (problem := label_value_error(label)) is not None:
            details.append({"field": f"{field_path}.{key}", "message": f"invalid value: {problem}"})
    if details:
        raise APIError(400, f"invalid {field_path}", details)
    return labels


def _annotations(value: Any, field_path: str) -> dict[str, str] | None:
    annotations = _string_map(value, field_path)
    if annotations is None:
        return None
    details = [
        {"field": f"{field_path}.{key}", "message": f"invalid key: {problem}"}
        for key in annotations
        if (problem := label_key_error(key)) is not None
    ]
    if sum(len(k) + len(v) for k, v in annotations.items()) > _MAX_ANNOTATIONS_BYTES:
        details.append({"field": field_path, "message": "may hold at most 256 KiB"})
    if details:
        raise APIError(400, f"invalid {field_path}", details)
    return annotations


def _finalizers(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, str) and label_key_error(v) is None for v in value
    ):
        raise APIError(400, "invalid metadata.finalizers", [{
            "field": "metadata.finalizers",
            "message": "must be a list of qualified names such as example.com/cleanup"}])
    return list(dict.fromkeys(value))


def _owner_references(value: Any) -> list[OwnerReference] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise APIError(400, "invalid metadata.ownerReferences",
                       [{"field": "metadata.ownerReferences", "message": "must be a list"}])
    refs = []
    for index, item in enumerate(value):
        try:
            refs.append(OwnerReference.model_validate(item))
        except ValidationError as exc:
            raise APIError(400, "invalid metadata.ownerReferences", validation_details(
                exc, f"metadata.ownerReferences.{index}")) from None
    return refs
