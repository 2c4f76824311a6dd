"""Admission hooks: a project's own checks, run by the store before anything is stored.

A project writes one `Hooks` subclass per kind (``PKG/hooks/KIND.py``, SPEC section 10)::

    class BMCHooks(Hooks[BMC]):
        async def admit(self, ctx: WriteContext, new: BMC, old: BMC | None) -> BMC | None:
            if not await ctx.exists(Rack, new.spec.rack_uid):
                raise Reject(422, "no such rack", field="spec.rackUID")
            return None

They run in the store, not in the HTTP handlers, so every writer meets them: API requests,
reconcilers and the garbage collector alike (Kubernetes runs admission on every write for
the same reason). They run inside the write's retry loop, after the write is validated and
before its compare-and-swap; a retried write runs them again on the state it retries on,
so a hook's decision is always about the state that is then stored. A hook may return a
changed object (defaulting), which is validated again as the kind's model.

`Reject` is the hook saying no, with a status a client can act on. Any other exception,
and a hook that takes longer than its `timeout`, is a `HookFailed`: the store logs the
traceback and the client gets a 500 naming only the hook. Either way nothing is stored.

`WriteContext` tells a hook who writes what: the operation, the actor (the token's subject
and roles, or ``system:controller``), whether it is a dry run (then the hook must not act
on the outside world), and a read-only view of the store for checks across kinds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Literal, TypeVar, get_args

from pydantic import ValidationError

from ..resource import Resource, parse_selector
from ..storage import NotFound

if TYPE_CHECKING:
    from ._store import ResourceStore

__all__ = [
    "REJECT_STATUSES",
    "Actor",
    "HookFailed",
    "HookSpans",
    "Hooks",
    "Operation",
    "Reject",
    "WriteContext",
    "hooks_by_kind",
    "overrides",
    "run_admit",
    "run_admit_delete",
]

log = logging.getLogger("fabrica.hooks")

K = TypeVar("K", bound=Resource[Any, Any])
R = TypeVar("R", bound=Resource[Any, Any])
AnyResource = Resource[Any, Any]
Operation = Literal["create", "update", "patch", "status", "delete"]
#: The statuses a hook may answer with: a bad request, not allowed, a conflict with other
#: resources, or a request that is well-formed but breaks the project's rules.
REJECT_STATUSES: Final = (400, 403, 409, 422)
#: How long a hook may take by default; a slower one fails its own write only.
DEFAULT_HOOK_TIMEOUT: Final = 10.0


class Reject(Exception):
    """Refuse a write from a hook: the client gets `status` with the error body of SPEC
    section 3 (``details`` names `field` when given, e.g. ``"spec.rackUID"``)."""

    def __init__(self, status: int, message: str, *, field: str | None = None) -> None:
        if status not in REJECT_STATUSES:
            raise ValueError(f"Reject status must be one of {REJECT_STATUSES}, not {status}")
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class HookFailed(Exception):
    """A hook raised something other than `Reject`, or did not finish in time. The message
    names only the hook: what it raised is in the log, never in an answer."""

    def __init__(self, hook: str, reason: str = "failed") -> None:
        super().__init__(f"hook {hook} {reason}")
        self.hook = hook


@dataclass(frozen=True)
class Actor:
    """Who writes: a token's subject and roles; ``system:controller`` for reconcilers and
    the garbage collector; ``anonymous`` on a service without auth."""

    subject: str
    roles: tuple[str, ...] = ()


class WriteContext:
    """What a hook knows about the write it admits, and a read-only view of the store."""

    def __init__(self, store: ResourceStore, operation: Operation, actor: Actor,
                 dry_run: bool) -> None:
        self._store = store
        self.operation: Operation = operation
        self.actor = actor
        self.dry_run = dry_run

    async def get(self, kind: type[R], id: str) -> R:
        """The stored `kind` by uid or name (`fabrica.NotFound` if none)."""
        return await self._store.get(kind, id)

    async def get_or_none(self, kind: type[R], id: str) -> R | None:
        try:
            return await self._store.get(kind, id)
        except NotFound:
            return None

    async def exists(self, kind: type[AnyResource], id: str) -> bool:
        return await self.get_or_none(kind, id) is not None

    async def list(self, kind: type[R], *, label_selector: str | None = None) -> list[R]:
        """The stored resources of `kind`, ordered by name, optionally by label selector
        (``"rack=r1,role!=spare"``)."""
        selector = parse_selector(label_selector) if label_selector else None
        return await self._store.list(kind, selector=selector or None)

    def __repr__(self) -> str:
        return (f"WriteContext(operation={self.operation!r}, actor={self.actor!r}, "
                f"dry_run={self.dry_run})")


class Hooks(Generic[K]):
    """A kind's admission hooks; subclass ``Hooks[Kind]`` and override what you need.

    `timeout` (seconds) bounds each call; a class may set its own.
    """

    kind: ClassVar[type[Resource[Any, Any]]]
    timeout: ClassVar[float] = DEFAULT_HOOK_TIMEOUT

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            args = get_args(base)
            if args and isinstance(args[0], type) and issubclass(args[0], Resource):
                cls.kind = args[0]
        if not hasattr(cls, "kind"):
            raise TypeError(f"{cls.__name__}: subclass Hooks[Kind], naming the kind")

    async def admit(self, ctx: WriteContext, new: K, old: K | None) -> K | None:
        """Before every create (`old` is None), update, patch and status write. Return None
        to store `new` as it is, or a changed object to store that instead; raise `Reject`
        to refuse."""
        return None

    async def admit_delete(self, ctx: WriteContext, old: K) -> None:
        """Before every delete (also the one that only marks a resource with finalizers);
        raise `Reject` to refuse."""


def overrides(hooks: Hooks[Any], method: str) -> bool:
    """Whether `hooks` defines `method` itself: a stub that defines neither costs a write
    nothing (no copies, no call)."""
    return getattr(type(hooks), method) is not getattr(Hooks, method)


def hooks_by_kind(hooks: Iterable[type[Hooks[Any]] | Hooks[Any]]
                  ) -> dict[type[AnyResource], Hooks[Any]]:
    """One instance per kind; two hook classes for one kind is an error (which would run
    first is not something to leave to import order)."""
    found: dict[type[AnyResource], Hooks[Any]] = {}
    for entry in hooks:
        instance = entry() if isinstance(entry, type) else entry
        if instance.kind in found:
            raise ValueError(f"two hook classes for {instance.kind.__name__}: "
                             f"{type(found[instance.kind]).__name__} and "
                             f"{type(instance).__name__}")
        found[instance.kind] = instance
    return found


#: Puts each hook call in a span (the service's, when it traces; this package never imports
#: OpenTelemetry): called with the phase (``admit``, ``admit_delete``), the kind, the hook
#: class and the `WriteContext`.
HookSpans = Callable[[str, str, str, WriteContext], AbstractContextManager[object]]


async def run_admit(hooks: Hooks[Any], ctx: WriteContext, new: R, old: R | None,
                    spans: HookSpans | None = None) -> R:
    """`new` as the hook admits it. The hook gets a copy of `new` (and `old` must be the
    caller's own copy), so what it returns is the one way to change the write (None: `new`
    as it is); a returned object is validated again."""
    name = f"{type(hooks).__name__}.admit"
    changed = await _bounded(hooks, name, "admit", ctx, spans,
                             lambda: hooks.admit(ctx, new.model_copy(deep=True), old))
    if changed is None:
        return new
    if not isinstance(changed, type(new)):
        log.error("hook %s returned %s, not a %s", name, type(changed).__name__,
                  type(new).__name__)
        raise HookFailed(name, "returned something other than the resource")
    try:  # a hook's object is not validated by assignment: validate it as a body is
        return type(new).model_validate(changed.model_dump(by_alias=True, warnings=False))
    except ValidationError:
        log.exception("hook %s returned an invalid %s", name, type(new).__name__)
        raise HookFailed(name, "returned an invalid resource") from None


async def run_admit_delete(hooks: Hooks[Any], ctx: WriteContext, old: AnyResource,
                           spans: HookSpans | None = None) -> None:
    """`old` must be the caller's own copy (the hook may change it; nothing reads it after)."""
    name = f"{type(hooks).__name__}.admit_delete"
    await _bounded(hooks, name, "admit_delete", ctx, spans,
                   lambda: hooks.admit_delete(ctx, old))


async def _bounded(hooks: Hooks[Any], name: str, phase: str, ctx: WriteContext,
                   spans: HookSpans | None, call: Callable[[], Awaitable[Any]]) -> Any:
    try:
        async with asyncio.timeout(hooks.timeout):
            if spans is None:
                return await call()
            # Inside the timeout: a hook that overran ends its span as cancelled.
            with spans(phase, hooks.kind.resource_info.kind, type(hooks).__name__, ctx):
                return await call()
    except Reject:
        raise
    except TimeoutError:
        log.error("hook %s took longer than %g s; its write is refused", name, hooks.timeout)
        raise HookFailed(name, f"did not finish within {hooks.timeout:g} s") from None
    except Exception:
        log.exception("hook %s failed; its write is refused", name)
        raise HookFailed(name) from None
