"""Who is writing: the actor every `Change` (and so every CloudEvent) carries.

A context variable, so no write signature has to thread it through: the HTTP layer sets
it per request (the token's ``sub``), the controller's workers and the garbage collector set
`SYSTEM_CONTROLLER` for their tasks, and a `Change` made during a write picks it up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar, Token

__all__ = [
    "ANONYMOUS",
    "SYSTEM_CONTROLLER",
    "acting_as",
    "current_actor",
    "current_roles",
    "reset_actor",
    "reset_roles",
    "set_actor",
    "set_roles",
]

SYSTEM_CONTROLLER = "system:controller"
"""The actor of every write a reconciler or the garbage collector makes."""

ANONYMOUS = "anonymous"
"""The actor of API writes on a service that runs without auth."""

_ACTOR: ContextVar[str] = ContextVar("fabrica_actor", default=ANONYMOUS)
# The actor's roles, for hooks that decide by role (`WriteContext.actor`).
_ROLES: ContextVar[tuple[str, ...]] = ContextVar("fabrica_roles", default=())


def current_actor() -> str:
    return _ACTOR.get()


def set_actor(actor: str) -> Token[str]:
    """Make `actor` the writer for the rest of the current task (a worker's whole life), or
    until `reset_actor` with the token returned."""
    return _ACTOR.set(actor)


def reset_actor(token: Token[str]) -> None:
    _ACTOR.reset(token)


def current_roles() -> tuple[str, ...]:
    return _ROLES.get()


def set_roles(roles: tuple[str, ...]) -> Token[tuple[str, ...]]:
    """The current actor's roles (a token's), until `reset_roles` with the token returned."""
    return _ROLES.set(roles)


def reset_roles(token: Token[tuple[str, ...]]) -> None:
    _ROLES.reset(token)


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Within the block, writes are made by `actor`."""
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)
