"""The three patch formats, applied to a JSON document (a spec or a status).

- merge patch (RFC 7386), for ``application/merge-patch+json``, ``application/json`` or no
  content type: objects merge recursively, ``null`` removes a field;
- JSON patch (RFC 6902), ``application/json-patch+json`` (`_json_patch.py`);
- shorthand, ``application/shorthand-patch+json``: ``{"a.b.c": value}`` sets a nested field,
  creating parents, ``null`` removes it. A key starting with ``/`` is a JSON pointer instead,
  for field names that contain dots (``~1`` stands for ``/`` and ``~0`` for ``~``). Keys are
  applied in a fixed order, parents before children, whatever order the client sent.

A patch that is not of its format's shape is a 400; one that cannot apply to this document
(a missing path, a failed ``test``) is a 422; an unknown content type is a 415.

Bounds: a patch of a few bytes must not build a document of gigabytes, nor one nested past
what later readers can recurse into. The result of any patch may be at most `limit` bytes
of compact JSON (413; the server passes the larger of its body limit and the current
document's size) and `MAX_DEPTH` levels deep (422). Each format is held to that while it
runs, not only at the end: JSON patch per operation (its copies measured before they are
made), shorthand per parent it creates. A merge patch cannot grow a document by more than
its own size, which the body limit already bounds, so its result is measured once.
"""

from __future__ import annotations

from typing import Any

from ._bounds import MAX_DEPTH, copy_json, measure
from ._errors import APIError
from ._json_patch import apply_json_patch

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


def apply_patch(document: dict[str, Any], patch: Any, fmt: str, limit: int,
                what: str = "document") -> Any:
    """`document` patched, at most `limit` bytes of JSON and `MAX_DEPTH` levels deep;
    `what` names the document in errors. `document` is the caller's own copy and may be
    changed, also by a patch that fails (a second copy of a large document costs as much
    memory as the document)."""
    if fmt == JSON_PATCH:
        result = apply_json_patch(document, patch, limit)
    elif fmt == SHORTHAND:
        result = _shorthand(document, patch, limit, what)
    else:
        result = merge_patch(document, patch)
    size, depth = measure(result, limit)
    if depth > MAX_DEPTH:
        raise APIError(422, f"the patched {what} would be nested deeper than {MAX_DEPTH} "
                       "levels")
    if size > limit:
        raise too_large(what, limit)
    return result


def too_large(what: str, limit: int) -> APIError:
    return APIError(413, f"the patched {what} would be larger than {limit} bytes of JSON "
                    "(the larger of the request body limit and its current size)")


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy_json(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _shorthand(document: dict[str, Any], patch: Any, limit: int, what: str) -> Any:
    if not isinstance(patch, dict):
        raise APIError(400, "a shorthand patch must be an object of path: value")
    parsed = sorted(((_path(key), value) for key, value in patch.items()), key=lambda i: i[0])
    result = document
    # The parents a key creates take more room than the key did in the body: each one
    # comes out of what the limit leaves, before it is made.
    room = _Room(limit - measure(document, limit)[0], what, limit)
    for path, value in parsed:
        _set_path(result, path, copy_json(value), room)
    return result


class _Room:
    def __init__(self, left: int, what: str, limit: int) -> None:
        self.left, self.what, self.limit = left, what, limit

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise too_large(self.what, self.limit)


def _path(key: str) -> tuple[str, ...]:
    if key.startswith("/"):
        parts = key[1:].split("/")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in parts]
    else:
        parts = key.split(".")
    if not key or any(p == "" for p in parts):
        raise APIError(400, f"invalid shorthand path {key[:200]!r}")
    if len(parts) >= MAX_DEPTH:
        raise APIError(422, f"shorthand path {key[:200]!r} has {len(parts)} parts: it "
                       f"would nest the document deeper than {MAX_DEPTH} levels")
    return tuple(parts)


def _set_path(document: dict[str, Any], path: tuple[str, ...], value: Any, room: _Room
              ) -> None:
    node: Any = document
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            if value is None:
                return  # removing below a missing parent: nothing to do
            room.take(len(part) + 6)  # "part":{} and a comma
            child = node[part] = {}
        if not isinstance(child, dict):
            if value is None:
                return
            shown = ".".join(path[: depth + 1])[:200]
            raise APIError(422, f"shorthand patch cannot descend into {shown!r}: not an object")
        node = child
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
