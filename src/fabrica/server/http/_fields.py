"""``?fieldSelector=`` on lists and watches (SPEC section 10): parsed against the kind's
selectable fields into the `Selector` the cache and storage serve, or a 400 that lists the
fields that can be selected."""

from __future__ import annotations

from dataclasses import replace

from ...resource import FieldSelectorError, KindRules, Selector, parse_field_selector
from ._errors import APIError

__all__ = ["with_fields"]


def with_fields(selector: Selector, text: str | None, rules: KindRules) -> Selector:
    """`selector` with the requirements of the field selector `text` (if any)."""
    try:
        fields = parse_field_selector(text, rules.selectable)
    except FieldSelectorError as exc:
        can = ", ".join(rules.selectable)
        raise APIError(400, f"invalid fieldSelector: {exc}",
                       [{"field": "fieldSelector",
                         "message": f"{exc} (fields that can be selected: {can})"}]) from None
    return replace(selector, fields=fields) if fields else selector
