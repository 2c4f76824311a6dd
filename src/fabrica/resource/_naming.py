"""Names derived from a kind: plural URL segments, default UID prefixes, DNS-1123 names."""

from __future__ import annotations

import re
from functools import lru_cache

import inflect

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
# Words inflect gets wrong for resource kinds, or that we want to keep invariant.
_INVARIANT = {"chassis", "series", "species", "hardware", "firmware", "software", "metadata"}
_engine = inflect.engine()


@lru_cache(maxsize=256)
def pluralize(word: str) -> str:
    """English plural of a lower-case word: chassis → chassis, policy → policies, bmc → bmcs."""
    if word in _INVARIANT or not word:
        return word
    return str(_engine.plural_noun(word)).lower()  # type: ignore[arg-type]


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
