"""Kubernetes label rules and label selectors.

Selectors use the Kubernetes string syntax: requirements joined by commas (AND), each one
of ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` or ``!k``. As in
Kubernetes, ``!=`` and ``notin`` also match objects that lack the key. A parsed `Selector`
is a plain value, so storage backends can translate it (SQL pushes it into the query).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._fields import FieldRequirement, FieldValues

__all__ = [
    "LABEL_KEY_MAX_LENGTH",
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_MAX_LENGTH",
    "LABEL_VALUE_PATTERN",
    "MAX_SELECTOR_LENGTH",
    "MAX_SELECTOR_REQUIREMENTS",
    "MAX_SELECTOR_VALUES",
    "Requirement",
    "Selector",
    "SelectorError",
    "label_key_error",
    "label_value_error",
    "parse_selector",
]

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_NAME_RE = re.compile(rf"^{_NAME}\Z")
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_PREFIX_RE = re.compile(rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*\Z")
# For schemas (OpenAPI): the checks below add the per-part lengths a regex cannot say.
#: A label or annotation key (also a finalizer): an optional DNS-subdomain prefix and a name.
LABEL_KEY_PATTERN = rf"^(?:{_DNS_LABEL}(?:\.{_DNS_LABEL})*/)?{_NAME}$"
LABEL_KEY_MAX_LENGTH = 253 + 1 + 63
#: A label value: empty, or a name.
LABEL_VALUE_PATTERN = rf"^(?:{_NAME})?$"
LABEL_VALUE_MAX_LENGTH = 63

Operator = Literal["=", "!=", "in", "notin", "exists", "!"]


def label_key_error(key: str) -> str | None:
    """Why `key` is not a valid label (or annotation) key, or None when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _PREFIX_RE.match(prefix)):
        return "prefix must be a DNS-1123 subdomain of at most 253 characters"
    if not name or len(name) > 63 or not _NAME_RE.match(name):
        return ("name part must be at most 63 characters: letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def label_value_error(value: str) -> str | None:
    if value == "" or (len(value) <= LABEL_VALUE_MAX_LENGTH and _NAME_RE.match(value)):
        return None
    return ("must be empty or at most 63 characters: letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit")


class SelectorError(ValueError):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.position = position


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # != and notin


@dataclass(frozen=True)
class Selector:
    """Label requirements and, from ``?fieldSelector=``, field requirements (all must
    hold). Where a selector may have field requirements, `matches` needs the object's
    field values too."""

    requirements: tuple[Requirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str], fields: FieldValues | None = None) -> bool:
        if self.fields:
            if fields is None:  # a caller that forgot them would select wrongly
                raise TypeError("this selector has field requirements: pass the fields")
            if not all(r.matches(fields) for r in self.fields):
                return False
        return all(r.matches(labels) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements or self.fields)


#: Bounds of a selector, so that parsing and matching one costs little whoever sent it
#: (each requirement is tested on every object listed or watched; SQL runs one subquery
#: per requirement).
MAX_SELECTOR_LENGTH = 16_384
MAX_SELECTOR_REQUIREMENTS = 100
MAX_SELECTOR_VALUES = 1000


def parse_selector(text: str | None) -> Selector:
    """Parse a Kubernetes label selector; `SelectorError` says where it went wrong.

    At most `MAX_SELECTOR_LENGTH` characters, `MAX_SELECTOR_REQUIREMENTS` requirements and
    `MAX_SELECTOR_VALUES` values in all."""
    if text is None or not text.strip():
        return Selector()
    if len(text) > MAX_SELECTOR_LENGTH:
        raise SelectorError(f"a selector may have at most {MAX_SELECTOR_LENGTH} characters",
                            MAX_SELECTOR_LENGTH)
    selector = Selector(tuple(_Parser(text).requirements()))
    if len(selector.requirements) > MAX_SELECTOR_REQUIREMENTS:
        raise SelectorError(f"a selector may have at most {MAX_SELECTOR_REQUIREMENTS} "
                            "requirements", 0)
    if sum(len(r.values) for r in selector.requirements) > MAX_SELECTOR_VALUES:
        raise SelectorError(f"a selector may have at most {MAX_SELECTOR_VALUES} values", 0)
    return selector


_TOKEN = re.compile(r"\s*(?:(?P<op>==|!=|=|\(|\)|,|!)|(?P<word>[^\s=!(),]+))")
_TRAILING_SPACE = re.compile(r"\s*\Z")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []  # (kind, value, position)
        pos = 0
        while pos < len(text):
            if _TRAILING_SPACE.match(text, pos):  # (not text[pos:]: a copy per token)
                break
            match = _TOKEN.match(text, pos)
            if match is None:  # pragma: no cover - the pattern accepts every character
                raise SelectorError("unexpected character", pos)
            start = match.start("op") if match.group("op") else match.start("word")
            kind = "op" if match.group("op") else "word"
            self.tokens.append((kind, match.group(kind), start))
            pos = match.end()
        self.index = 0

    def requirements(self) -> list[Requirement]:
        result = [self._requirement()]
        while self._peek() is not None:
            self._expect("op", ",")
            result.append(self._requirement())
        return result

    def _requirement(self) -> Requirement:
        token = self._peek()
        if token == ("op", "!"):
            self.index += 1
            return Requirement(self._key(), "!")
        key = self._key()
        token = self._peek()
        if token is None or token == ("op", ","):
            return Requirement(key, "exists")
        kind, value, pos = self.tokens[self.index]
        self.index += 1
        if kind == "op" and value in ("=", "=="):
            return Requirement(key, "=", (self._value(),))
        if kind == "op" and value == "!=":
            return Requirement(key, "!=", (self._value(),))
        if kind == "word" and value in ("in", "notin"):
            return Requirement(key, value, self._value_set())  # type: ignore[arg-type]
        raise SelectorError(f"expected an operator (=, ==, !=, in, notin), found {value!r}", pos)

    def _key(self) -> str:
        kind, value, pos = self._next("a label key")
        if kind != "word":
            raise SelectorError(f"expected a label key, found {value!r}", pos)
        if (problem := label_key_error(value)) is not None:
            raise SelectorError(f"invalid label key {value!r}: {problem}", pos)
        return value

    def _value(self) -> str:
        token = self._peek()
        if token is None or token[0] == "op":
            return ""  # `k=` selects the empty value, as in Kubernetes
        _, value, pos = self._next("a value")
        if (problem := label_value_error(value)) is not None:
            raise SelectorError(f"invalid label value {value!r}: {problem}", pos)
        return value

    def _value_set(self) -> tuple[str, ...]:
        self._expect("op", "(")
        if self._peek() == ("op", ")"):
            raise SelectorError("a value set needs at least one value",
                                self.tokens[self.index][2])
        values = [self._value()]
        while self._peek() == ("op", ","):
            self.index += 1
            values.append(self._value())
        self._expect("op", ")")
        return tuple(values)

    def _peek(self) -> tuple[str, str] | None:
        if self.index >= len(self.tokens):
            return None
        kind, value, _ = self.tokens[self.index]
        return kind, value

    def _next(self, wanted: str) -> tuple[str, str, int]:
        if self.index >= len(self.tokens):
            raise SelectorError(f"expected {wanted}, found the end", len(self.text))
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _expect(self, kind: str, value: str) -> None:
        got_kind, got, pos = self._next(repr(value))
        if (got_kind, got) != (kind, value):
            raise SelectorError(f"expected {value!r}, found {got!r}", pos)
