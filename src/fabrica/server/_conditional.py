"""ETags and conditional requests (RFC 9110 section 13) on top of resourceVersion.

The ETag is the resourceVersion, quoted: strong, since a resourceVersion names exactly one
state of one resource. ``If-Match`` uses strong comparison (a weak tag never matches);
``If-None-Match`` uses weak comparison, as the RFC says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from ..resource import Resource
from ._errors import APIError

__all__ = [
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


def _parse(header: str) -> EntityTags:
    if header.strip() == "*":
        return EntityTags(True, frozenset(), frozenset())
    strong, weak = set(), set()
    for part in header.split(","):
        part = part.strip()
        if part.startswith("W/"):
            weak.add(part[2:])
        elif part:
            strong.add(part if part.startswith('"') else f'"{part}"')
    return EntityTags(False, frozenset(strong), frozenset(weak))


def if_match(request: Request) -> EntityTags | None:
    header = request.headers.get("if-match")
    return None if header is None else _parse(header)


def if_none_match_hits(request: Request, tag: str) -> bool:
    header = request.headers.get("if-none-match")
    return header is not None and _parse(header).matches_tag(tag, weak_comparison=True)


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
