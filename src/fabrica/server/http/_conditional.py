"""ETags and conditional requests (RFC 9110 section 13) on top of resourceVersion.

The ETag is the resourceVersion, quoted: strong, since a resourceVersion names exactly one
state of one resource. ``If-Match`` uses strong comparison (a weak tag never matches);
``If-None-Match`` uses weak comparison, as the RFC says.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from ...resource import Resource
from ._errors import APIError

__all__ = [
    "ENTITY_TAGS_PATTERN",
    "etag",
    "etag_of",
    "if_match",
    "if_match_precondition",
    "if_none_match_hits",
    "precondition_failed",
]


def etag(obj: Resource[Any, Any]) -> str:
    return etag_of(obj.metadata.resource_version)


def etag_of(resource_version: str) -> str:
    return f'"{resource_version}"'


@dataclass(frozen=True)
class EntityTags:
    any: bool
    strong: frozenset[str]
    weak: frozenset[str]

    def matches(self, obj: Resource[Any, Any], weak_comparison: bool = False) -> bool:
        return self.matches_tag(etag(obj), weak_comparison)

    def matches_tag(self, tag: str, weak_comparison: bool = False) -> bool:
        if self.any:
            return True
        return tag in self.strong or (weak_comparison and tag in self.weak)


# RFC 9110: "*" or a list of entity tags, each an optional W/ and a quoted string of
# visible ASCII other than '"'; a bare token (17) is taken as its quoted form, as clients
# often send it. OpenAPI documents the same pattern.
_TAG = r'(?:W/)?"[!#-~]*"|[!#-+\x2d-~]+'
ENTITY_TAGS_PATTERN = rf"^[ \t]*(?:\*|(?:{_TAG})(?:[ \t]*,[ \t]*(?:{_TAG}))*)[ \t]*(?!\n)$"
_ENTITY_TAGS = re.compile(ENTITY_TAGS_PATTERN)
_ONE_TAG = re.compile(_TAG)


def _parse(header: str, name: str) -> EntityTags:
    if not _ENTITY_TAGS.match(header):
        raise APIError(400, f"invalid {name} header: expected * or quoted entity tags such "
                       'as "17" or W/"17"', [{"field": name, "message": "malformed"}])
    if header.strip() == "*":
        return EntityTags(True, frozenset(), frozenset())
    strong, weak = set(), set()
    for tag in _ONE_TAG.findall(header):
        if tag.startswith('W/"'):
            weak.add(tag[2:])
        else:
            strong.add(tag if tag.startswith('"') else f'"{tag}"')
    return EntityTags(False, frozenset(strong), frozenset(weak))


def if_match(request: Request) -> EntityTags | None:
    header = request.headers.get("if-match")
    return None if header is None else _parse(header, "If-Match")


def if_none_match_hits(request: Request, tag: str) -> bool:
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    return _parse(header, "If-None-Match").matches_tag(tag, weak_comparison=True)


def precondition_failed(current: Resource[Any, Any]) -> APIError:
    return APIError(412, f"precondition failed: {current.resource_info.kind} "
                         f"{current.name!r} is at resourceVersion "
                         f"{current.metadata.resource_version!r}, If-Match does not match")


def if_match_precondition(request: Request) -> Callable[[Resource[Any, Any]], None] | None:
    """The request's ``If-Match`` as a store precondition: a 412 when it does not match."""
    tags = if_match(request)
    if tags is None:
        return None

    def check(current: Resource[Any, Any]) -> None:
        if not tags.matches(current):
            raise precondition_failed(current)

    return check
