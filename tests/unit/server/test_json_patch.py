"""The bounded JSON Patch (RFC 6902) and the measures behind every patch's bounds."""

from __future__ import annotations

import copy
import json
import re

import pytest

from fabrica.server.http._bounds import MAX_DEPTH, copy_json, json_equal, measure
from fabrica.server.http._errors import APIError
from fabrica.server.http._json_patch import MAX_OPERATIONS, apply_json_patch
from fabrica.server.http._patch import JSON_PATCH, MERGE, SHORTHAND, apply_patch

LIMIT = 1 << 20


def patched(doc, ops, limit=LIMIT):
    return apply_json_patch(copy.deepcopy(doc), ops, limit)


def refused(doc, ops, limit=LIMIT) -> APIError:
    with pytest.raises(APIError) as caught:
        apply_json_patch(copy.deepcopy(doc), ops, limit)
    return caught.value


@pytest.mark.parametrize(("doc", "ops", "expected"), [
    ({"a": 1}, [{"op": "add", "path": "/b", "value": [1]}], {"a": 1, "b": [1]}),
    ({"a": [1, 2]}, [{"op": "add", "path": "/a/1", "value": 9}], {"a": [1, 9, 2]}),
    ({"a": [1, 2]}, [{"op": "add", "path": "/a/2", "value": 9}], {"a": [1, 2, 9]}),
    ({"a": [1, 2]}, [{"op": "add", "path": "/a/-", "value": 9}], {"a": [1, 2, 9]}),
    ({"a": 1}, [{"op": "add", "path": "", "value": [3]}], [3]),
    ({"a/b": 1, "m~n": 2}, [{"op": "remove", "path": "/a~1b"},
                            {"op": "replace", "path": "/m~0n", "value": 3}], {"m~n": 3}),
    ({"a": {"b": 1}}, [{"op": "move", "from": "/a/b", "path": "/c"}], {"a": {}, "c": 1}),
    ({"a": [1, 2, 3]}, [{"op": "move", "from": "/a/0", "path": "/a/2"}], {"a": [2, 3, 1]}),
    ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": {"b": 1}}),
    ({"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"},
                         {"op": "add", "path": "/c/b/-", "value": 2}],
     {"a": {"b": [1]}, "c": {"b": [1, 2]}}),
    ({"n": 1, "f": [1.0, {"x": None}]}, [{"op": "test", "path": "/n", "value": 1.0},
                                         {"op": "test", "path": "/f", "value": [1, {"x": None}]}],
     {"n": 1, "f": [1.0, {"x": None}]}),
    ({"": {"": 5}}, [{"op": "replace", "path": "//", "value": 6}], {"": {"": 6}}),
])
def test_operations(doc, ops, expected):
    assert patched(doc, ops) == expected


@pytest.mark.parametrize(("ops", "status"), [
    ({"op": "add"}, 400),
    ([{"op": "explode", "path": "/a"}], 400),
    ([{"path": "/a"}], 400),
    (["add"], 400),
    ([{"op": "add", "path": "/a"}], 400),  # no value
    ([{"op": "add", "path": "a", "value": 1}], 400),  # not a pointer
    ([{"op": "add", "path": "/a~2", "value": 1}], 400),
    ([{"op": "add", "path": "/a~", "value": 1}], 400),
    ([{"op": "move", "path": "/a"}], 400),  # no from
    ([{"op": "remove", "path": "/nothing"}], 422),
    ([{"op": "remove", "path": ""}], 422),
    ([{"op": "add", "path": "/l/01", "value": 1}], 422),  # a leading zero
    ([{"op": "add", "path": "/l/4", "value": 1}], 422),
    ([{"op": "add", "path": "/l/-1", "value": 1}], 422),
    ([{"op": "replace", "path": "/l/-", "value": 1}], 422),
    ([{"op": "add", "path": "/l/" + "9" * 5000, "value": 1}], 422),
    ([{"op": "add", "path": "/s/x", "value": 1}], 422),  # into a string
    ([{"op": "add", "path": "/x/y", "value": 1}], 422),  # a missing parent
    ([{"op": "replace", "path": "/missing", "value": 1}], 422),
    ([{"op": "move", "from": "/o", "path": "/o/p"}], 422),  # into itself
    ([{"op": "copy", "from": "/missing", "path": "/c"}], 422),
    ([{"op": "test", "path": "/n", "value": True}], 422),  # 1 is not true
    ([{"op": "test", "path": "/missing", "value": None}], 422),
    ([{"op": "test", "path": "/l", "value": [1]}], 422),
])
def test_refusals(ops, status):
    doc = {"l": [1, 2, 3], "s": "text", "n": 1, "o": {"p": 1}}
    assert refused(doc, ops).status == status


def test_the_operations_given_are_left_as_they_were():
    """The store may apply a patch again after a conflict: a value the first run added and
    a later operation changed must not come back changed."""
    ops = [{"op": "add", "path": "/a", "value": {"b": [1]}},
           {"op": "add", "path": "/a/b/-", "value": 2}]
    sent = copy.deepcopy(ops)
    assert patched({}, ops) == patched({}, ops) == {"a": {"b": [1, 2]}}
    assert ops == sent


def test_copies_are_measured_before_they_are_made():
    doc = {"x": "y" * 100}
    size = measure(doc["x"], LIMIT)[0]
    ops = [{"op": "copy", "from": "/x", "path": f"/c{i}"} for i in range(10)]
    assert len(patched(doc, ops, limit=10 * size)) == 11
    error = refused(doc, ops, limit=10 * size - 1)
    assert error.status == 413 and "operation 9" in error.message


def test_doubling_is_refused_within_the_first_operations():
    error = refused({"l": [1]}, [{"op": "copy", "from": "/l", "path": "/l/-"}] * 1000)
    assert error.status == 413
    assert 15 < int(re.search(r"operation (\d+):", error.message)[1]) < 20  # 2**20 > 1 MiB


def test_no_value_lands_deeper_than_the_limit():
    ok = [{"op": "add", "path": "/a", "value": _nest(MAX_DEPTH - 1)}]
    assert measure(patched({}, ok), LIMIT)[1] == MAX_DEPTH
    too_deep = [{"op": "add", "path": "/a", "value": _nest(MAX_DEPTH)}]
    assert refused({}, too_deep).status == 422
    assert refused({}, [{"op": "copy", "from": "", "path": "/a"}] * 100).status == 422
    assert refused({"a": 1}, [{"op": "add", "path": "/a" * 65, "value": 1}]).status == 422


def test_moves_that_nest_are_caught_by_the_result_check():
    ops = []
    for _ in range(200):
        ops += [{"op": "add", "path": "/t", "value": {}},
                {"op": "move", "from": "/k", "path": "/t/k"},
                {"op": "move", "from": "/t", "path": "/k"}]
    result = patched({"k": {}}, ops)  # built without recursion
    assert measure(result, LIMIT, max_depth=10**6)[1] == 202
    with pytest.raises(APIError) as caught:
        apply_patch({"k": {}}, ops, JSON_PATCH, LIMIT)
    assert caught.value.status == 422


def test_at_most_ten_thousand_operations():
    ops = [{"op": "test", "path": "/a", "value": 1}]
    assert patched({"a": 1}, ops * MAX_OPERATIONS) == {"a": 1}
    assert refused({"a": 1}, ops * (MAX_OPERATIONS + 1)).status == 413


@pytest.mark.parametrize(("fmt", "patch"), [
    (MERGE, {"big": "z" * 2000}),
    (SHORTHAND, {"big": "z" * 2000}),
    (SHORTHAND, {f"k{i}.a.b.c.d.e": 1 for i in range(60)}),
    (JSON_PATCH, [{"op": "add", "path": "/big", "value": "z" * 2000}]),
])
def test_every_format_keeps_results_within_the_limit(fmt, patch):
    with pytest.raises(APIError) as caught:
        apply_patch({"a": 1}, patch, fmt, 1000, "spec")
    assert caught.value.status == 413 and "patched spec" in caught.value.message


def test_shorthand_parents_come_out_of_the_limit_as_they_are_made():
    key = "a." * 60 + "z"
    assert apply_patch({}, {key: 1}, SHORTHAND, 1000)
    with pytest.raises(APIError) as caught:
        apply_patch({}, {f"k{i}." + key: 1 for i in range(3)}, SHORTHAND, 1000)
    assert caught.value.status == 413


def test_measure_is_the_length_of_compact_json():
    for value in [{}, [], 0, -12, 10**50, 1.5, "é", None, True, False,
                  {"a": [1, {"b": None}], "c": "d", "": []}]:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        assert measure(value, LIMIT)[0] == len(text), value
    assert measure(10**20_000, LIMIT)[0] == 20_002  # estimated: no str() of it
    assert measure(["x" * 100] * 100, 50)[0] > 50  # stops early, over the limit
    assert measure(_nest(1000), LIMIT) == (measure(_nest(65), LIMIT)[0], 65)


def test_copy_and_equality_without_recursion():
    deep = _nest(100_000)
    copied = copy_json(deep)
    assert copied is not deep and json_equal(copied, deep)
    assert not json_equal(deep, _nest(99_999))
    assert json_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not json_equal(1, True) and not json_equal(0, False) and not json_equal(None, 0)
    assert not json_equal("1", 1) and not json_equal({"a": 1}, {"b": 1})


def _nest(depth: int):
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value
