"""`Change`: what the store tells its listeners after every successful write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..resource import Resource

__all__ = ["Action", "Change", "ChangeListener", "UpdateType"]

Action = Literal["created", "updated", "patched", "deleted"]
UpdateType = Literal["spec", "status", "metadata"]


@dataclass(frozen=True)
class Change:
    """One committed write. `resource` is the new state (the last state for a delete)."""

    action: Action
    resource: Resource[Any, Any]
    previous: Resource[Any, Any] | None = None
    update_type: UpdateType | None = None


ChangeListener = Callable[[Change], Awaitable[None]]
