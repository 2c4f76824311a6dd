"""How large and how deep a JSON document is, and copies and comparisons of one, all
without recursion: a document a patch builds may be far deeper than the interpreter's
recursion limit before anyone gets to refuse it, and none of these may fail on it.

`measure` counts a document's size as its compact JSON text would be (strings in
characters, numbers by their digits): a cheap stand-in for the memory it holds, which grows
with it. It stops as soon as a limit is passed, so measuring costs no more than the limit.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_DEPTH", "copy_json", "json_equal", "measure"]

#: Nesting of objects and arrays allowed in a request body or in a document built from one:
#: far below the recursion limit of everything that reads them later (validation, encoders).
MAX_DEPTH = 64

_LOG10_2 = 0.30103


def measure(value: Any, limit: int, max_depth: int = MAX_DEPTH) -> tuple[int, int]:
    """(size, depth) of `value`: the length of its compact JSON text, about, and its
    nesting (a scalar 0, ``[]`` 1, ``[[]]`` 2). Counting stops once size passes `limit` or
    depth passes `max_depth`: the answer is then over that bound, not exact."""
    if not isinstance(value, dict | list):
        return _scalar_size(value), 0
    size, deepest = 0, 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    push, pop = stack.append, stack.pop
    while stack:
        item, depth = pop()
        if isinstance(item, dict):
            # braces, commas, and per member its key, quotes and colon
            size += 1 + 4 * len(item) + sum(map(len, item)) if item else 2
            children: Any = item.values()
        else:
            size += 1 + len(item) if item else 2  # brackets and commas
            children = item
        below = depth + 1
        for child in children:
            kind = type(child)
            if kind is str:
                size += len(child) + 2
            elif kind is dict or kind is list or isinstance(child, dict | list):
                if below > deepest:
                    deepest = below
                    if deepest > max_depth:
                        return size, deepest
                push((child, below))
            else:
                size += _scalar_size(child)
        if size > limit:
            return size, deepest
    return size, deepest


def _scalar_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value) + 2
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    if isinstance(value, int):
        if value.bit_length() < 14_000:  # str() refuses past 4,300 digits: estimated then
            return len(str(value))
        return int(value.bit_length() * _LOG10_2) + 2
    return len(repr(value)) if isinstance(value, float) else 4


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (objects and arrays copied, scalars shared)."""
    if not isinstance(value, dict | list):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    push, pop = stack.append, stack.pop
    while stack:
        source, target = pop()
        pairs = source.items() if isinstance(source, dict) else enumerate(source)
        if isinstance(target, list):
            target.extend(source)  # scalars in place now, containers replaced below
        for key, child in pairs:
            if isinstance(child, dict | list):
                copy: Any = {} if isinstance(child, dict) else []
                push((child, copy))
                target[key] = copy
            elif isinstance(target, dict):
                target[key] = child
    return root


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON means it: 1 and 1.0 are equal, 1 and true are not, an object's
    members in any order, an array's in its order."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, dict):
            if not isinstance(y, dict) or x.keys() != y.keys():
                return False
            stack.extend((x[key], y[key]) for key in x)
        elif isinstance(x, list):
            if not isinstance(y, list) or len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif isinstance(x, bool) or isinstance(y, bool) or x is None or y is None:
            if x is not y:
                return False
        elif isinstance(x, str) or isinstance(y, str):
            if not (isinstance(x, str) and isinstance(y, str) and x == y):
                return False
        elif x != y:  # two numbers
            return False
    return True
