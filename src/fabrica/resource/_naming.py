"""Names derived from a kind: plural URL segments, default UID prefixes, DNS-1123 names."""

from __future__ import annotations

import re

__all__ = [
    "default_prefix",
    "is_dns1123_subdomain",
    "is_valid_kind",
    "is_valid_plural",
    "is_valid_prefix",
    "pluralize",
]

_KIND = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,15}$")
_PLURAL = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_DNS1123_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(?:\.{_DNS1123_LABEL})*$")
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
    return len(name) <= 253 and bool(_DNS1123_SUBDOMAIN.match(name))
