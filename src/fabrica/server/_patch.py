"""The three patch formats, applied to a JSON document (a spec or a status).

- merge patch (RFC 7386), for ``application/merge-patch+json``, ``application/json`` or no
  content type: objects merge recursively, ``null`` removes a field;
- JSON patch (RFC 6902), ``application/json-patch+json``, by the `jsonpatch` library;
- shorthand, ``application/shorthand-patch+json``: ``{"a.b.c": value}`` sets a nested field,
  creating parents, ``null`` removes it. A key starting with ``/`` is a JSON pointer instead,
  for field names that contain dots (``~1`` stands for ``/`` and ``~0`` for ``~``). Keys are
  applied in a fixed order, parents before children, whatever order the client sent.

A patch that is not of its format's shape is a 400; one that cannot apply to this document
(a missing path, a failed ``test``) is a 422; an unknown content type is a 415.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from ._errors import APIError

__all__ = ["MEDIA_TYPES", "apply_patch", "patch_format"]

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
SHORTHAND = "application/shorthand-patch+json"
MEDIA_TYPES = (MERGE, JSON_PATCH, SHORTHAND, "application/json")


def patch_format(content_type: str | None) -> str:
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type in ("", "application/json", MERGE):
        return MERGE
    if media_type in (JSON_PATCH, SHORTHAND):
        return media_type
    raise APIError(415, f"unsupported patch content type {media_type!r}; use one of "
                   f"{MERGE}, {JSON_PATCH} or {SHORTHAND}")


def apply_patch(document: dict[str, Any], patch: Any, fmt: str) -> Any:
    """Return the patched copy of `document`; `document` itself is never modified."""
    if fmt == JSON_PATCH:
        return _json_patch(document, patch)
    if fmt == SHORTHAND:
        return _shorthand(document, patch)
    return merge_patch(document, patch)


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _json_patch(document: dict[str, Any], patch: Any) -> Any:
    if not isinstance(patch, list):
        raise APIError(400, "a JSON patch must be an array of operations")
    try:
        operations = jsonpatch.JsonPatch(patch)
        return operations.apply(document, in_place=False)
    except (jsonpatch.InvalidJsonPatch, TypeError, AttributeError) as exc:
        raise APIError(400, f"invalid JSON patch: {exc}") from None
    except jsonpatch.JsonPatchTestFailed as exc:
        raise APIError(422, f"JSON patch test failed: {exc}") from None
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException, LookupError,
            ValueError) as exc:
        raise APIError(422, f"JSON patch cannot be applied: {exc}") from None


def _shorthand(document: dict[str, Any], patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise APIError(400, "a shorthand patch must be an object of path: value")
    parsed = sorted(((_path(key), value) for key, value in patch.items()), key=lambda i: i[0])
    result = copy.deepcopy(document)
    for path, value in parsed:
        _set_path(result, path, value)
    return result


def _path(key: str) -> tuple[str, ...]:
    if key.startswith("/"):
        parts = key[1:].split("/")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in parts]
    else:
        parts = key.split(".")
    if not key or any(p == "" for p in parts):
        raise APIError(400, f"invalid shorthand path {key!r}")
    return tuple(parts)


def _set_path(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node: Any = document
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            if value is None:
                return  # removing below a missing parent: nothing to do
            child = node[part] = {}
        if not isinstance(child, dict):
            if value is None:
                return
            shown = ".".join(path[: depth + 1])
            raise APIError(422, f"shorthand patch cannot descend into {shown!r}: not an object")
        node = child
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
