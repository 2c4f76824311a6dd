"""`Principal`: who a verified token speaks for, and the roles its claims give."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Principal", "roles_from_claims"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The token's subject (``sub``) and its roles (from ``scope`` and ``roles``)."""

    sub: str
    roles: tuple[str, ...] = ()

    def describe(self) -> str:
        roles = ", ".join(self.roles) or "none"
        return f"{self.sub} (roles: {roles})"


def roles_from_claims(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """Roles from ``scope`` (OAuth 2: space-separated; some issuers send a list) and
    ``roles`` (a list, or a space-separated string), in order, without repeats."""
    found: list[str] = []
    for claim in ("scope", "roles"):
        value = claims.get(claim)
        items = value.split() if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            continue
        for item in items:
            if isinstance(item, str) and item and item not in found:
                found.append(item)
    return tuple(found)
