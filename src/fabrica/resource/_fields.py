"""Field selectors (SPEC section 10): ``?fieldSelector=spec.mac=aa:bb,status.phase!=Ready``.

Kubernetes syntax: requirements joined by commas (AND), each ``path=value``, ``path==value``
or ``path!=value``, where a path is a JSON field path of the wire format (``spec.rackUID``).
Only a kind's selectable fields (`KindRules.selectable`: ``metadata.name``, ``status.phase``
when the status has one, and its ``Indexed()`` fields) may be named, so that every list or
watch by a field is answered from an index.

Values compare as text: the stored JSON value's text (``42``, ``true``; an unset value or
``null`` is the empty text, as Kubernetes reads an unset field), strings in Unicode NFC as
unique keys compare them, so ``spec.serial=é`` finds the serial however its ``é`` was
composed. Text in a selector is as written: ``\\,``, ``\\=`` and ``\\\\`` escape a comma,
an equals sign and a backslash inside a value (as Kubernetes escapes them).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from ._rules import field_value

__all__ = [
    "MAX_FIELD_SELECTOR_LENGTH",
    "MAX_FIELD_SELECTOR_REQUIREMENTS",
    "FieldRequirement",
    "FieldSelectorError",
    "FieldValues",
    "document_fields",
    "field_text",
    "parse_field_selector",
]

#: Bounds, so that a hostile selector costs little to refuse: it is refused by its length
#: before it is split, and by its number of terms before any is looked at.
MAX_FIELD_SELECTOR_LENGTH: Final = 4096
MAX_FIELD_SELECTOR_REQUIREMENTS: Final = 20

#: path → the value's text (`field_text`) for one object.
FieldValues = Callable[[str], str]


class FieldSelectorError(ValueError):
    """A field selector that cannot be parsed, is too large or names a field that cannot
    be selected; `selectable` lists those that can (for the 400's message)."""

    def __init__(self, message: str, selectable: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.selectable = tuple(selectable)


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    operator: Literal["=", "!="]
    value: str

    def matches(self, values: FieldValues) -> bool:
        return (values(self.path) == self.value) == (self.operator == "=")


def field_text(value: Any) -> str:
    """A stored JSON value as a field selector compares it (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def document_fields(document: Mapping[str, Any]) -> FieldValues:
    """The field values of a wire document, read when asked."""
    return lambda path: field_text(field_value(document, path))


def parse_field_selector(text: str | None, selectable: Iterable[str]
                         ) -> tuple[FieldRequirement, ...]:
    """The requirements of `text` (none for an empty one); `FieldSelectorError` when it is
    malformed, too large, or names a field not in `selectable`."""
    if text is None or not text.strip():
        return ()
    fields = tuple(selectable)
    if len(text) > MAX_FIELD_SELECTOR_LENGTH:
        raise FieldSelectorError(
            f"a field selector may have at most {MAX_FIELD_SELECTOR_LENGTH} characters")
    terms = _split(text, ",")
    if len(terms) > MAX_FIELD_SELECTOR_REQUIREMENTS:
        raise FieldSelectorError(
            f"a field selector may have at most {MAX_FIELD_SELECTOR_REQUIREMENTS} terms, "
            f"not {len(terms)}")
    return tuple(_requirement(term, fields) for term in terms)


def _requirement(term: str, selectable: tuple[str, ...]) -> FieldRequirement:
    for operator in ("!=", "==", "="):
        index = _find(term, operator)
        if index >= 0:
            path = term[:index].strip()
            value = _unescape(term[index + len(operator):].strip())
            break
    else:
        raise FieldSelectorError(f"{_shown(term.strip())} is not field=value, field==value "
                                 "or field!=value", selectable)
    if path not in selectable:
        raise FieldSelectorError(
            f"{_shown(path)} cannot be selected; the fields that can: {', '.join(selectable)}",
            selectable)
    return FieldRequirement(path, "!=" if operator == "!=" else "=",
                            unicodedata.normalize("NFC", value))


def _split(text: str, separator: str) -> list[str]:
    """`text` split at each unescaped `separator` (in one pass: a long text of separators
    costs its length, never its square)."""
    parts: list[str] = []
    start = index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == separator:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts


def _find(term: str, operator: str) -> int:
    """The first unescaped `operator` in `term`, or -1."""
    index = 0
    while index < len(term):
        if term[index] == "\\":
            index += 2
            continue
        if term.startswith(operator, index):
            return index
        index += 1
    return -1


def _unescape(value: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            out.append(value[index + 1])
            index += 2
            continue
        if char in ",=":
            raise FieldSelectorError(f"a value may not hold an unescaped {char!r}: "
                                     f"{_shown(value)} (write \\{char})")
        out.append(char)
        index += 1
    return "".join(out)


def _shown(text: str) -> str:
    """`text` quoted for an error message, cut short (a message never echoes kilobytes)."""
    return repr(text if len(text) <= 64 else text[:64] + "...")
