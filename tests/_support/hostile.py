"""Requests built to make a server do far more work, or hold far more memory, than their size
suggests: patches that double or nest the document per operation, bodies and query strings
at and past the limits, numbers no float or int parser should take. Each case says which
answers are right; all of them leave the resources they aim at as they were.

One catalog for two suites: tests/unit/server/test_hostile_size.py runs it in-process on
several backends (answers, nothing changed), tests/e2e/test_hostile_memory.py against a
generated server in a process of its own, measuring its peak RSS per request.

The kind is `Blob`, whose spec and status take any JSON (`items`, `data`), as a real kind
with free-form fields would; `BLOB_SOURCE` is its file, for generated projects.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

BLOB_SOURCE = '''"""A kind with free-form JSON in its spec and status."""

from typing import Any

from fabrica import Model, Resource


class BlobSpec(Model):
    items: list[Any] = []
    data: dict[str, Any] = {}
    tags: dict[str, str] = {}
    names: list[str] = []


class BlobStatus(Model):
    items: list[Any] = []
    data: dict[str, Any] = {}


class Blob(Resource[BlobSpec, BlobStatus], prefix="blob"):
    """Free-form JSON."""
'''

MIB = 1024 * 1024
#: The body limit the catalog is built for: the server's default (``--max-body-size``).
MAX_BODY = MIB

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
SHORTHAND = "application/shorthand-patch+json"
JSON = "application/json"


def _load_blob() -> Any:
    module = types.ModuleType("hostile_blob")
    sys.modules[module.__name__] = module  # pydantic resolves annotations through it
    exec(compile(BLOB_SOURCE, "hostile_blob.py", "exec"), module.__dict__)
    return module.Blob


Blob = _load_blob()

def _wide(name: str) -> str:
    """A body of about a megabyte of empty objects: the most Python objects per byte."""
    return f'{{"name":"{name}","items":[' + ",".join(["{}"] * ((MAX_BODY - 100) // 3)) + "]}"


#: The resources the cases aim at, made before the first: ``small`` holds a little of
#: everything, ``big`` a spec and a status of about 600 KB each (a patch may copy or grow
#: those only within the limit); neither changes. ``wide`` is written by some cases.
_BIG_ITEMS = ["x" * 1000] * 600
SETUP: list[tuple[str, str, Callable[[], bytes]]] = [
    ("POST", "/blobs", lambda: _dumps({"name": "small", "items": ["a"], "data": {"k": "v"}})),
    ("PUT", "/blobs/small/status", lambda: _dumps({"items": ["a"], "data": {"k": "v"}})),
    ("POST", "/blobs", lambda: _dumps({"name": "big", "items": _BIG_ITEMS})),
    ("PUT", "/blobs/big/status", lambda: _dumps({"items": _BIG_ITEMS})),
    ("POST", "/blobs", lambda: _wide("wide").encode()),
]
TARGETS = ("/blobs/small", "/blobs/big")


@dataclass(frozen=True)
class Case:
    """One request: `body` builds its bytes when sent (some are a megabyte)."""

    name: str
    method: str
    path: str
    expect: frozenset[int]
    body: Callable[[], bytes] | None = None
    content_type: str | None = None
    chunked: bool = False  # sent without Content-Length
    headers: dict[str, str] = field(default_factory=dict)

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.content_type:
            headers["content-type"] = self.content_type
        return headers

    def content(self) -> bytes | AsyncIterator[bytes] | None:
        if self.body is None:
            return None
        raw = self.body()
        if not self.chunked:
            return raw

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(raw), 65536):
                yield raw[start:start + 65536]

        return chunks()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _json(value: Any) -> Callable[[], bytes]:
    return lambda: _dumps(value)


def _text(make: Callable[[], str]) -> Callable[[], bytes]:
    return lambda: make().encode()


def nest(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


# -- patches that double or nest the document -------------------------------------------------

def _move_nesting(levels: int) -> list[dict[str, Any]]:
    """Each three operations wrap /data/k one level deeper, copying nothing."""
    ops: list[dict[str, Any]] = []
    for _ in range(levels):
        ops += [{"op": "add", "path": "/data/t", "value": {}},
                {"op": "move", "from": "/data/k", "path": "/data/t/k"},
                {"op": "move", "from": "/data/t", "path": "/data/k"}]
    return ops


def _shorthand_tree() -> str:
    """About a megabyte of keys, each making 58 parents of its own."""
    keys, size, index = [], 0, 0
    while size < MAX_BODY - 300:
        key = f'"data.k{index}.' + "a." * 57 + 'a":1'
        keys.append(key)
        size += len(key) + 1
        index += 1
    return "{" + ",".join(keys) + "}"


def _patch_cases(part: str) -> list[Case]:
    suffix = "/status" if part == "status" else ""
    small, big = f"/blobs/small{suffix}", f"/blobs/big{suffix}"
    return [
        Case(f"{part}: JSON patch, 64 copies of /items into itself (doubling)", "PATCH", small,
             frozenset({413}), _json([{"op": "copy", "from": "/items", "path": "/items/-"}] * 64),
             JSON_PATCH),
        Case(f"{part}: JSON patch, 64 copies of the root into new members (doubling)", "PATCH",
             small, frozenset({413}),
             _json([{"op": "copy", "from": "", "path": f"/data/k{i}"} for i in range(64)]),
             JSON_PATCH),
        Case(f"{part}: JSON patch, the root copied into itself 1,000 deep", "PATCH", small,
             frozenset({422}), _json([{"op": "copy", "from": "", "path": "/data"}] * 1000),
             JSON_PATCH),
        Case(f"{part}: JSON patch, moves nesting 1,000 deep", "PATCH", small, frozenset({422}),
             _json(_move_nesting(1000)), JSON_PATCH),
        Case(f"{part}: JSON patch, copy and remove 600 KB twenty times (work)", "PATCH", big,
             frozenset({413}),
             _json([{"op": "copy", "from": "/items", "path": "/data/c"},
                    {"op": "remove", "path": "/data/c"}] * 20), JSON_PATCH),
        Case(f"{part}: JSON patch of 10,001 operations", "PATCH", small, frozenset({413}),
             _json([{"op": "test", "path": "/items/0", "value": "a"}] * 10_001), JSON_PATCH),
        Case(f"{part}: JSON patch, a pointer of 1,000 tokens", "PATCH", small, frozenset({422}),
             _json([{"op": "add", "path": "/data" * 1000, "value": 1}]), JSON_PATCH),
        Case(f"{part}: merge patch growing 600 KB by 700 KB", "PATCH", big, frozenset({413}),
             _json({"data": {"more": "y" * 700_000}}), MERGE),
        Case(f"{part}: shorthand growing 600 KB by 700 KB", "PATCH", big, frozenset({413}),
             _json({"data.more": "y" * 700_000}), SHORTHAND),
        Case(f"{part}: shorthand, a megabyte of keys making 58 parents each", "PATCH", small,
             frozenset({413}), _text(_shorthand_tree), SHORTHAND),
        Case(f"{part}: shorthand, one key of 1,000 parts", "PATCH", small, frozenset({422}),
             _json({".".join(["data"] + ["a"] * 999): 1}), SHORTHAND),
        Case(f"{part}: shorthand, a value landing 65 levels deep", "PATCH", small,
             frozenset({422}), _json({"data.a.b": nest(62)}), SHORTHAND),
    ]


# -- numbers no parser should take --------------------------------------------------------------

_BOMBS = {"1e999999": "1e999999", "-1E+999999": "-1E+999999",
          "an integer of 100,000 digits": "1" + "0" * 100_000}


def _bomb_cases() -> list[Case]:
    cases = []
    for label, number in _BOMBS.items():
        writes = [
            ("POST", "/blobs", JSON, '{"name":"bomb","items":[N]}'),
            ("POST", "/blobs", JSON + " (envelope)",
             '{"metadata":{"name":"bomb"},"spec":{"data":{"n":N}}}'),
            ("PUT", "/blobs/small", JSON, '{"name":"small","items":[N]}'),
            ("PATCH", "/blobs/small", MERGE, '{"data":{"n":N}}'),
            ("PATCH", "/blobs/small", JSON_PATCH, '[{"op":"add","path":"/data/n","value":N}]'),
            ("PATCH", "/blobs/small", SHORTHAND, '{"data.n":N}'),
            ("PUT", "/blobs/small/status", JSON, '{"items":[N]}'),
            ("PATCH", "/blobs/small/status", MERGE, '{"data":{"n":N}}'),
            ("PATCH", "/blobs/small/status", JSON_PATCH,
             '[{"op":"add","path":"/data/n","value":N}]'),
            ("PATCH", "/blobs/small/status", SHORTHAND, '{"data.n":N}'),
        ]
        for method, path, content_type, template in writes:
            text = template.replace("N", number)
            cases.append(Case(f"{method} {path} {content_type}: {label}", method, path,
                              frozenset({400}), _text(lambda text=text: text),
                              content_type.split(" ")[0]))
    return cases


# -- sizes and depths of bodies -------------------------------------------------------------------

def _sized(head: str, tail: str, size: int) -> str:
    return head + "z" * (size - len(head) - len(tail)) + tail


def _body_cases() -> list[Case]:
    errors = "{" + ",".join(f'"k{i}":{i}' for i in range(70_000)) + "}"
    zeros = ",".join(["0"] * ((MAX_BODY - 40) // 2))
    return [
        Case("POST, a body one byte over the limit", "POST", "/blobs", frozenset({413}),
             _text(lambda: _sized('{"name":"over","items":["', '"]}', MAX_BODY + 1)), JSON),
        Case("POST, a body at the limit", "POST", "/blobs", frozenset({201}),
             _text(lambda: _sized('{"name":"at","items":["', '"]}', MAX_BODY)), JSON),
        Case("POST, a body over the limit, chunked", "POST", "/blobs", frozenset({413}),
             _text(lambda: '{"name":"over","items":["' + "z" * (2 * MAX_BODY) + '"]}'), JSON,
             chunked=True),
        Case("PUT, a body over the limit", "PUT", "/blobs/small", frozenset({413}),
             _text(lambda: '{"items":["' + "z" * MAX_BODY + '"]}'), JSON),
        Case("PATCH status, a body over the limit", "PATCH", "/blobs/small/status",
             frozenset({413}), _text(lambda: '{"x":"' + "z" * MAX_BODY + '"}'), MERGE),
        Case("POST, a megabyte of empty objects (the most objects per byte)", "POST", "/blobs",
             frozenset({201}), _text(lambda: _wide("wide-2")), JSON),
        Case("PUT, a megabyte of empty objects", "PUT", "/blobs/wide", frozenset({200}),
             _text(lambda: _wide("wide")), JSON),
        Case("GET of a megabyte of empty objects", "GET", "/blobs/wide", frozenset({200})),
        Case("PATCH (merge) of a megabyte of empty objects", "PATCH", "/blobs/wide",
             frozenset({200}), _json({"data": {"x": 1.0}}), MERGE),
        Case("PATCH (JSON patch) of a megabyte of empty objects", "PATCH", "/blobs/wide",
             frozenset({200}), _json([{"op": "test", "path": "/items/0", "value": {}},
                                      {"op": "add", "path": "/data/y", "value": 2}]),
             JSON_PATCH),
        Case("POST, 70,000 fields failing validation at once", "POST", "/blobs",
             frozenset({400}), _text(lambda: '{"name":"errors","tags":' + errors + "}"), JSON),
        Case("POST, 520,000 items failing validation at once", "POST", "/blobs",
             frozenset({400}), _text(lambda: '{"name":"errors","names":[' + zeros + "]}"), JSON),
        Case("PATCH, 260,000 items failing validation at once", "PATCH", "/blobs/small",
             frozenset({400}), _text(lambda: '{"names":[' + zeros[: len(zeros) // 2] + "0]}"),
             MERGE),
        Case("POST, a body nested 65 deep", "POST", "/blobs", frozenset({400}),
             _json({"name": "deep", "data": nest(64)}), JSON),
        Case("POST, a megabyte of [", "POST", "/blobs", frozenset({400}),
             _text(lambda: "[" * (MAX_BODY - 1)), JSON),
        Case("PATCH, a megabyte of [", "PATCH", "/blobs/small", frozenset({400}),
             _text(lambda: "[" * (MAX_BODY - 1)), JSON_PATCH),
    ]


# -- query strings ------------------------------------------------------------------------------

def _query_cases() -> list[Case]:
    """Query strings up to 64 KiB, the most a client (httpx) sends in a URL."""
    many = ",".join(f"k{i}=v" for i in range(8000))
    values = "k in (" + ",".join(f"v{i}" for i in range(2000)) + ")"
    allowed = ",".join(f"k{i}=v" for i in range(100))
    return [
        Case("list, limit of 5,000 digits", "GET", "/blobs?limit=" + "9" * 5000,
             frozenset({400})),
        Case("list, limit=1e999999", "GET", "/blobs?limit=1e999999", frozenset({400})),
        Case("watch, timeoutSeconds of 5,000 digits", "GET",
             "/blobs?watch=true&timeoutSeconds=" + "9" * 5000, frozenset({400})),
        Case("watch, resourceVersion of 5,000 digits", "GET",
             "/blobs?watch=true&resourceVersion=" + "9" * 5000, frozenset({400})),
        Case("list, a continue token of 60,000 characters", "GET",
             "/blobs?continue=" + "a" * 60_000, frozenset({400})),
        Case("list, a labelSelector of 8,000 requirements", "GET",
             "/blobs?labelSelector=" + many, frozenset({400})),
        Case("watch, a labelSelector of 8,000 requirements", "GET",
             "/blobs?watch=true&labelSelector=" + many, frozenset({400})),
        Case("list, a labelSelector of 2,000 values", "GET", "/blobs?labelSelector=" + values,
             frozenset({400})),
        Case("list, a labelSelector of 100 requirements (allowed)", "GET",
             "/blobs?labelSelector=" + allowed, frozenset({200})),
        Case("watch, a labelSelector of 100 requirements (allowed)", "GET",
             "/blobs?watch=true&timeoutSeconds=1&labelSelector=" + allowed, frozenset({200})),
    ]


def cases() -> list[Case]:
    return [*_patch_cases("spec"), *_patch_cases("status"), *_bomb_cases(), *_body_cases(),
            *_query_cases()]
