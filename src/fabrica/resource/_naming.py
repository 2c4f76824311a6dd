"""Names derived from a kind: plural URL segments, default UID prefixes, DNS-1123 names."""

from __future__ import annotations

import re

__all__ = [
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "UID_PATTERN",
    "default_prefix",
    "is_dns1123_subdomain",
    "is_uid",
    "is_valid_kind",
    "is_valid_plural",
    "is_valid_prefix",
    "pluralize",
]

_KIND = re.compile(r"^[A-Z][A-Za-z0-9]*\Z")
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,15}\Z")
_PLURAL = re.compile(r"^[a-z][a-z0-9-]{0,62}\Z")
_DNS1123_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
# The one definition of names and uids: the server, both storage backends and the OpenAPI
# document all use these (JSON Schema's regex dialect reads them as Python does).
#: A resource name: a DNS-1123 subdomain of at most `NAME_MAX_LENGTH` characters.
NAME_PATTERN = rf"^{_DNS1123_LABEL}(?:\.{_DNS1123_LABEL})*$"
NAME_MAX_LENGTH = 253
#: A uid: the kind's prefix, a dash and 8 to 64 lower-case hex digits (`new_uid` makes 8).
UID_PATTERN = r"^[a-z][a-z0-9]*-[0-9a-f]{8,64}$"
_DNS1123_SUBDOMAIN = re.compile(NAME_PATTERN.removesuffix("$") + r"\Z")  # $ takes "a\n"
_UID = re.compile(UID_PATTERN.removesuffix("$") + r"\Z")
# Kubernetes' own rule (gengo's plural namer) plus the words it would get wrong. Hand-written
# because the English-grammar library we tried costs 1.7 s of import time on every start.
_INVARIANT = frozenset({
    "chassis", "series", "species", "sheep", "fish", "deer", "news", "data", "metadata",
    "hardware", "firmware", "software", "equipment", "information",
})
_IRREGULAR = {
    "person": "people", "child": "children", "man": "men", "woman": "women", "mouse": "mice",
    "goose": "geese", "foot": "feet", "tooth": "teeth", "ox": "oxen", "index": "indexes",
    "matrix": "matrices", "vertex": "vertices", "analysis": "analyses", "basis": "bases",
    "axis": "axes", "crisis": "crises", "datum": "data", "medium": "media",
    "criterion": "criteria", "leaf": "leaves", "life": "lives", "knife": "knives",
    "shelf": "shelves", "half": "halves", "wolf": "wolves", "quiz": "quizzes",
    "potato": "potatoes", "tomato": "tomatoes", "hero": "heroes", "echo": "echoes",
}
_VOWELS = frozenset("aeiou")


def pluralize(word: str) -> str:
    """English plural of a lower-case word: chassis → chassis, policy → policies, bmc → bmcs."""
    if word in _INVARIANT or len(word) < 2:
        return word
    for singular, plural in _IRREGULAR.items():
        if word.endswith(singular) and (word == singular or len(singular) > 3):
            return word[: -len(singular)] + plural
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2] not in _VOWELS:
        return word[:-1] + "ies"
    return word + "s"


def default_prefix(kind: str) -> str:
    """The UID prefix `fabrica add resource` proposes: the lower-cased kind, at most 6 letters."""
    return kind.lower()[:6]


def is_valid_kind(kind: str) -> bool:
    return bool(_KIND.match(kind))


def is_valid_prefix(prefix: str) -> bool:
    return bool(_PREFIX.match(prefix))


def is_valid_plural(plural: str) -> bool:
    return bool(_PLURAL.match(plural))


def is_dns1123_subdomain(name: str) -> bool:
    return len(name) <= NAME_MAX_LENGTH and bool(_DNS1123_SUBDOMAIN.match(name))


def is_uid(value: str, prefix: str | None = None) -> bool:
    """Whether `value` is a well-formed uid (of `prefix`'s kind, when given)."""
    if prefix is not None and not value.startswith(f"{prefix}-"):
        return False
    return bool(_UID.match(value))
