"""`Change`: what the store tells its listeners after every successful write; `Emission`:
an event a reconciler asks the store to publish about a resource."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..resource import Resource
from ._actor import current_actor

__all__ = ["Action", "Change", "ChangeListener", "Emission", "EmissionListener", "UpdateType"]

Action = Literal["created", "updated", "patched", "deleted"]
UpdateType = Literal["spec", "status", "metadata"]


@dataclass(frozen=True)
class Change:
    """One committed write. `resource` is the new state (the last state for a delete);
    `actor` who made it (the token's ``sub``, ``system:controller``...), taken from the
    writer's context when the change is made."""

    action: Action
    resource: Resource[Any, Any]
    previous: Resource[Any, Any] | None = None
    update_type: UpdateType | None = None
    actor: str = field(default_factory=current_actor)


ChangeListener = Callable[[Change], Awaitable[None]]


@dataclass(frozen=True)
class Emission:
    """``PREFIX.KIND.REASON`` about `resource`, asked for by its reconciler.

    `reason` has been checked (`fabrica.events.check_reason`) and `details` are plain JSON
    values; `id` is the event id, the same each time the same emission is re-sent; `actor`
    is taken from the emitter's context (``system:controller`` in a reconcile).
    """

    resource: Resource[Any, Any]
    reason: str
    details: Mapping[str, Any] | None
    id: str
    actor: str = field(default_factory=current_actor)


EmissionListener = Callable[[Emission], Awaitable[None]]
