"""The ``fieldSelector`` parameter of a kind's list (SPEC section 10), naming the fields
that kind can be selected by."""

from __future__ import annotations

import re
from typing import Any

from ...resource import MAX_FIELD_SELECTOR_LENGTH, MAX_FIELD_SELECTOR_REQUIREMENTS, KindRules

__all__ = ["field_selector_param"]

# Values as the schema states them: no comma, equals sign or backslash (the server also
# takes them escaped), short enough that a fuzzer's URL stays within what uvicorn reads.
_VALUE = "[^,=\\\\]{0,63}"


def field_selector_param(rules: KindRules) -> dict[str, Any]:
    fields = "|".join(re.escape(path) for path in rules.selectable)
    term = f"({fields}) *(==|!=|=) *{_VALUE}"
    more = min(MAX_FIELD_SELECTOR_REQUIREMENTS, 10) - 1
    return {
        "name": "fieldSelector", "in": "query", "required": False,
        "schema": {"type": "string",
                   "pattern": f"^ *({term}( *, *{term}){{0,{more}}})? *(?!\\n)$"},
        "description": "Select by fields: f=v, f==v, f!=v, comma-separated (all must hold); "
                       f"the fields: {', '.join(rules.selectable)} (any other: 400). At most "
                       f"{MAX_FIELD_SELECTOR_REQUIREMENTS} terms and "
                       f"{MAX_FIELD_SELECTOR_LENGTH} characters. Served from an index; with "
                       "watch=true, a resource that leaves the selection is DELETED and one "
                       "that enters it ADDED"}
