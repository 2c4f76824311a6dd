"""JSON Patch (RFC 6902) with JSON Pointers (RFC 6901), applied within bounds.

Written here rather than taken from a library because a patch of a few hundred bytes can
ask for unbounded work: each ``copy`` may double the document (``copy /items to
/items/-`` seventeen times is 131,072 items), and cheap ``move`` chains nest it a level per
operation until any recursive reader fails. So, before each operation runs:

- a ``copy`` is measured first, and refused (413) once the bytes copied by the whole patch
  would pass `limit`: no copy is made that would break the bound;
- a value may not land deeper than `MAX_DEPTH` (422);
- a patch has at most `MAX_OPERATIONS` operations (413), as Kubernetes allows.

The caller checks the result as a whole (`_patch.py`): its size and, since a ``move`` is
not measured, its depth. Nothing here recurses, so any document it builds on the way can be
measured and refused. Malformed operations are 400; one that cannot apply to this document
(a missing path, a failed ``test``) is 422.
"""

from __future__ import annotations

import re
from typing import Any

from ._bounds import MAX_DEPTH, copy_json, json_equal, measure
from ._errors import APIError

__all__ = ["MAX_OPERATIONS", "apply_json_patch"]

MAX_OPERATIONS = 10_000
_OPS = ("add", "remove", "replace", "move", "copy", "test")
_BAD_ESCAPE = re.compile(r"~(?![01])")


def apply_json_patch(document: Any, operations: Any, limit: int) -> Any:
    """`operations` applied to `document`, which they change; `limit` bounds the bytes
    their copies add."""
    if not isinstance(operations, list):
        raise APIError(400, "a JSON patch must be an array of operations")
    if len(operations) > MAX_OPERATIONS:
        raise APIError(413, f"a JSON patch may have at most {MAX_OPERATIONS} operations, "
                       f"this one has {len(operations)}")
    patch = _Patch(document, limit)
    for index, operation in enumerate(operations):
        patch.apply(index, operation)
    return patch.document


class _Patch:
    def __init__(self, document: Any, limit: int) -> None:
        self.document = document
        self.limit = limit
        self.copied = 0  # bytes that copy operations added so far

    def apply(self, index: int, operation: Any) -> None:
        op = _member(index, operation, "op")
        if op not in _OPS:
            raise _bad(index, f"unknown op {op!r}; one of {', '.join(_OPS)}")
        path = _pointer(index, _member(index, operation, "path"), "path")
        if op == "remove":
            self.remove(index, path)
        elif op in ("move", "copy"):
            source = _pointer(index, _member(index, operation, "from"), "from")
            (self.move if op == "move" else self.copy)(index, source, path)
        elif "value" not in operation:
            raise _bad(index, f"{op} needs a value")
        elif op == "test":
            self.test(index, path, operation["value"])
        else:
            # A copy: the body must stay as sent, since the store may apply it again.
            value = copy_json(operation["value"])
            self.check_depth(index, path, value)
            (self.add if op == "add" else self.replace)(index, path, value)

    # -- the six operations ----------------------------------------------------------------

    def add(self, index: int, path: list[str], value: Any) -> None:
        if not path:
            self.document = value
            return
        parent = self.parent(index, path)
        key = path[-1]
        if isinstance(parent, dict):
            parent[key] = value
        elif key == "-":
            parent.append(value)
        else:
            parent.insert(_array_index(index, key, len(parent) + 1), value)

    def remove(self, index: int, path: list[str]) -> Any:
        if not path:
            raise _cannot(index, "cannot remove the whole document")
        parent = self.parent(index, path)
        if isinstance(parent, dict):
            if path[-1] not in parent:
                raise _cannot(index, f"no member {_show(path)}")
            return parent.pop(path[-1])
        return parent.pop(_array_index(index, path[-1], len(parent)))

    def replace(self, index: int, path: list[str], value: Any) -> None:
        if not path:
            self.document = value
            return
        parent = self.parent(index, path)
        if isinstance(parent, dict):
            if path[-1] not in parent:
                raise _cannot(index, f"no member {_show(path)} to replace")
            parent[path[-1]] = value
        else:
            parent[_array_index(index, path[-1], len(parent))] = value

    def move(self, index: int, source: list[str], path: list[str]) -> None:
        if source == path:
            self.get(index, source)  # must exist; then there is nothing to do
            return
        if path[: len(source)] == source:
            raise _cannot(index, f"cannot move {_show(source)} into itself")
        self.add(index, path, self.remove(index, source))

    def copy(self, index: int, source: list[str], path: list[str]) -> None:
        value = self.get(index, source)
        left = self.limit - self.copied
        size, depth = measure(value, left, MAX_DEPTH - len(path))
        if size > left:
            raise APIError(413, f"JSON patch operation {index}: copying {_show(source)} "
                           f"would copy more than {self.limit} bytes in one patch")
        self.check_depth(index, path, value, depth)
        self.copied += size
        self.add(index, path, copy_json(value))

    def test(self, index: int, path: list[str], value: Any) -> None:
        try:
            found = self.get(index, path)
        except APIError:
            found = _MISSING
        if found is _MISSING or not json_equal(found, value):
            raise APIError(422, f"JSON patch test failed: operation {index}: "
                           f"{_show(path)} is not the tested value")

    # -- pointers --------------------------------------------------------------------------

    def get(self, index: int, path: list[str]) -> Any:
        if not path:
            return self.document
        parent = self.parent(index, path)
        if isinstance(parent, dict):
            if path[-1] not in parent:
                raise _cannot(index, f"no member {_show(path)}")
            return parent[path[-1]]
        return parent[_array_index(index, path[-1], len(parent))]

    def parent(self, index: int, path: list[str]) -> dict[str, Any] | list[Any]:
        """The object or array holding the last token of `path`."""
        node = self.document
        for depth, token in enumerate(path[:-1]):
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list):
                node = node[_array_index(index, token, len(node))]
            else:
                raise _cannot(index, f"no member {_show(path[: depth + 1])}")
        if not isinstance(node, dict | list):
            raise _cannot(index, f"{_show(path[:-1])} is neither an object nor an array")
        return node

    def check_depth(self, index: int, path: list[str], value: Any,
                    depth: int | None = None) -> None:
        if depth is None:
            depth = measure(value, self.limit, MAX_DEPTH - len(path))[1]
        if len(path) + depth > MAX_DEPTH:  # (the document itself is the first level)
            raise APIError(422, f"JSON patch operation {index}: the document would be nested "
                           f"deeper than {MAX_DEPTH} levels")


_MISSING = object()


def _member(index: int, operation: Any, name: str) -> str:
    if not isinstance(operation, dict):
        raise _bad(index, "an operation must be an object")
    value = operation.get(name)
    if not isinstance(value, str):
        raise _bad(index, f"{name!r} must be a string")
    return value


def _pointer(index: int, text: str, name: str) -> list[str]:
    """A JSON pointer's tokens, unescaped (RFC 6901: ``~1`` is ``/``, ``~0`` is ``~``)."""
    if text == "":
        return []
    if not text.startswith("/"):
        raise _bad(index, f"{name} {text[:80]!r} is not a JSON pointer (starts with /)")
    tokens = text[1:].split("/")
    if len(tokens) > MAX_DEPTH:
        raise APIError(422, f"JSON patch operation {index}: {name} is deeper than "
                       f"{MAX_DEPTH} levels")
    if "~" in text and _BAD_ESCAPE.search(text):
        raise _bad(index, f"{name} {text[:80]!r}: ~ must be followed by 0 or 1")
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _array_index(index: int, token: str, size: int) -> int:
    """An array index token (``0``, or digits without a leading zero) below `size`."""
    if not (token.isascii() and token.isdigit()) or (len(token) > 1 and token[0] == "0"):
        raise _cannot(index, f"{token[:40]!r} is not an array index")
    if len(token) > 18 or int(token) >= size:
        raise _cannot(index, f"array index {token[:40]} is out of range")
    return int(token)


def _show(path: list[str]) -> str:
    text = "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in path)
    return repr(text[:120] if text else "")


def _bad(index: int, message: str) -> APIError:
    return APIError(400, f"invalid JSON patch: operation {index}: {message}")


def _cannot(index: int, message: str) -> APIError:
    return APIError(422, f"JSON patch cannot be applied: operation {index}: {message}")
