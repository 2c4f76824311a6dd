"""`ResourceReconciler`: the base every generated ``KindReconcilerBase`` extends.

A project's ``rack_reconciler.py`` defines ``async def reconcile_rack(self, rack)``: look at
the rack as it is now, act, and write what was observed into ``rack.status``. This base does
everything around it: it loads the typed resource (a deleted one needs no work), records the
``Ready`` condition with ``observedGeneration`` unless the user's code set it, saves status,
and returns the requeue that keeps the object under periodic watch. An exception marks Ready
False and is retried with backoff by the controller; a `TerminalError` is recorded and
not retried.

A reconcile never writes a status older than the one stored. Its status was decided from
the state it read; the save lands only while the stored resourceVersion is that one or one
this reconcile wrote itself (a reconciler may save progress mid-way, as the rack example
does). If anyone else wrote the object meanwhile (an API status or spec write, another
process's reconcile during a shard hand-over) the save is dropped and the key requeued at
once: the next reconcile decides from the fresh state (level-triggered), where re-applying
the old decision onto the new state would roll it back.

Kinds whose reconciler class defines ``finalize_KIND`` get the finalizer
``fabrica.io/KIND-reconciler``: deleting such a resource calls ``finalize_KIND`` first, and
the resource goes once it returns.

`emit` publishes a reconciler's own event (``PREFIX.KIND.REASON``). The events a call of
``reconcile_KIND`` or ``finalize_KIND`` emits are published when it returns or raises, before
the status it leaves is saved: a reconciler that records "already emitted" in that status
can lose the event to no crash; a crash between the two re-sends it at the next reconcile,
with the same event id (at-least-once, duplicates recognisable by ``id``). A reconcile
overtaken by another writer drops its events with its status (the next one decides both).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel

from ..events import check_reason
from ..resource import (
    Resource,
    find_condition,
    sensitive_exclude,
    sensitive_fields,
    set_condition,
)
from ..storage import NotFound
from ..store import Emission
from ._client import ReconcileClient, own_writes
from ._result import Request, Result, TerminalError

__all__ = ["OVERTAKEN", "ResourceReconciler"]

R = TypeVar("R", bound=Resource[Any, Any])
# Emissions of the reconcile running in this task; tasks it starts share the list.
_PENDING: ContextVar[list[Emission] | None] = ContextVar("fabrica_emissions", default=None)
_EVENT_IDS = uuid.UUID("6f1c2a8e-5b0d-4c57-9a51-2f3f0e6b9d41")
#: What an overtaken reconcile returns (see the module docstring): requeued at once, and
#: counted apart (``fabrica_reconcile_total{result="overtaken"}``) by its identity.
OVERTAKEN = Result(requeue_after=0.0)


class ResourceReconciler(Generic[R]):
    """Reconciles one kind; subclasses set `kind` and define ``reconcile_<kind>``."""

    kind: ClassVar[type[Resource[Any, Any]]]

    def __init__(self, client: ReconcileClient, *, requeue_after: float | None = 300.0) -> None:
        self.client = client
        self.requeue_after = requeue_after
        self.log = logging.getLogger(f"fabrica.reconcile.{self.kind.resource_info.singular}")

    @classmethod
    def user_method(cls) -> str:
        return f"reconcile_{cls.kind.resource_info.singular}"

    @classmethod
    def is_implemented(cls) -> bool:
        """Whether the project wrote ``reconcile_<kind>``: only then is the kind reconciled."""
        return callable(getattr(cls, cls.user_method(), None))

    @property
    def finalizer(self) -> str | None:
        singular = self.kind.resource_info.singular
        return f"fabrica.io/{singular}-reconciler" if self._finalize_method() else None

    def emit(
        self,
        obj: Resource[Any, Any],
        reason: str,
        data: Mapping[str, Any] | BaseModel | None = None,
    ) -> None:
        """Publish ``PREFIX.KIND.REASON`` about `obj`, with `data` under ``data.details``.

        `reason` is a lower-case word (``[a-z][a-z0-9]*``, at most 63 characters) and not one
        of created, updated, patched, deleted; `data` a mapping of JSON values or a model.
        Anything else raises ValueError or TypeError here, in the reconciler, and nothing is
        published. Call it from ``reconcile_KIND`` or ``finalize_KIND``: the event goes out
        when that returns (or raises), before the status is saved, on the bus every write's
        events take. Its id is derived from `obj`'s stored version, `reason` and how many
        such events this call emitted before, so a reconcile re-run on the same state (after
        a crash before its status save) re-sends the same id.
        """
        pending = _PENDING.get()
        if pending is None:
            raise RuntimeError("emit() is for reconcile_<kind> and finalize_<kind>; it was "
                               "called outside a reconcile")
        if not isinstance(obj, Resource) or not obj.uid:
            raise TypeError(f"emit() needs a stored resource, not {type(obj).__name__}")
        check_reason(reason)
        details = _json_details(data)
        repeat = sum(1 for e in pending if e.resource.uid == obj.uid and e.reason == reason)
        key = f"{obj.resource_info.kind}/{obj.uid}/{obj.metadata.resource_version}/{reason}"
        event_id = str(uuid.uuid5(_EVENT_IDS, f"{key}/{repeat}"))
        pending.append(Emission(obj, reason, details, event_id))

    async def reconcile(self, request: Request) -> Result:
        try:
            obj = await self._get(request.uid)
        except NotFound:
            return Result()  # gone: nothing to drive anywhere
        if obj.metadata.deletion_timestamp is not None:
            await self._finalize(obj)
            return Result()
        with own_writes(obj) as ours:
            if self.finalizer and self.finalizer not in obj.metadata.finalizers:
                obj = await self.client.add_finalizer(obj, self.finalizer)
            return await self._reconcile(obj, ours)

    # -- internals -----------------------------------------------------------------------

    async def _reconcile(self, obj: R, ours: set[str]) -> Result:
        before = _ready_state(obj)
        pending: list[Emission] = []
        try:
            result: Result | None = await self._run(getattr(self, self.user_method()), obj,
                                                    pending)
        except TerminalError as exc:
            self._mark_ready(obj, False, "ReconcileFailed", str(exc), before)
            if not await self._settle(obj, ours, pending):
                return OVERTAKEN  # decided on a state that is gone: decide again
            self.log.warning("%s %s failed for good: %s", self.kind.__name__, obj.name, exc)
            return Result()
        except Exception as exc:
            self._mark_ready(obj, False, "ReconcileError", f"{type(exc).__name__}: {exc}",
                             before)
            await self._settle(obj, ours, pending)
            raise
        self._mark_ready(obj, True, "Reconciled", "", before)
        if not await self._settle(obj, ours, pending):
            return OVERTAKEN
        if result is None:
            return Result(requeue_after=self.requeue_after)
        return result

    async def _settle(self, obj: R, ours: set[str], pending: list[Emission]) -> bool:
        """Publish what the reconcile emitted, then save its status: both only while the
        object is as this reconcile read or wrote it. False (nothing published or saved)
        when it was overtaken: its decisions were made on a state that is gone."""
        if pending:
            current = await self.client.get_or_none(self.kind, obj.uid)
            if current is not None and current.metadata.resource_version not in ours:
                return False
            await self._publish(pending)
        return await self._save_status(obj, ours)

    async def _get(self, uid: str) -> R:
        # `kind` is the class R stands for; a ClassVar cannot be typed with R to say so.
        return cast(R, await self.client.get(self.kind, uid))

    def _finalize_method(self) -> Any:
        return getattr(self, f"finalize_{self.kind.resource_info.singular}", None)

    async def _finalize(self, obj: R) -> None:
        finalizer = self.finalizer
        if finalizer is None or finalizer not in obj.metadata.finalizers:
            return
        pending: list[Emission] = []
        try:
            await self._run(self._finalize_method(), obj, pending)
        finally:
            await self._publish(pending)
        try:
            await self.client.remove_finalizer(obj, finalizer)
        except NotFound:
            pass  # removed by someone else meanwhile: nothing left to hold

    async def _run(self, method: Callable[[R], Awaitable[Any]], obj: R,
                   pending: list[Emission]) -> Any:
        """Call the project's method, collecting what it emits into `pending`."""
        token = _PENDING.set(pending)
        try:
            return await method(obj)
        finally:
            _PENDING.reset(token)

    async def _publish(self, pending: list[Emission]) -> None:
        for emission in pending:
            await self.client.emit(emission)

    def _mark_ready(self, obj: R, ok: bool, reason: str, message: str, before: Any) -> None:
        """Record Ready unless the user's code already decided it during this reconcile."""
        status = obj.status
        generation = obj.metadata.generation
        if "observed_generation" in type(status).model_fields:
            status.observed_generation = generation
        user_decided = _ready_state(obj) != before
        if "conditions" in type(status).model_fields:
            if user_decided:
                ready = find_condition(status.conditions, "Ready")
                if ready is not None:
                    ready.observed_generation = generation
            else:
                set_condition(status.conditions, "Ready", ok, reason, message, generation)
        if "ready" in type(status).model_fields and not user_decided:
            status.ready = ok

    async def _save_status(self, obj: R, ours: set[str]) -> bool:
        """Save our status if the stored object is still the one we read or last wrote
        (`ours`); no write when the status is what is stored. False when someone else
        wrote it meanwhile: then nothing is written (a conflict at the compare-and-swap
        re-reads and finds that too)."""
        wanted: BaseModel = obj.status
        overtaken = False

        def change(current: Resource[Any, Any]) -> Resource[Any, Any] | None:
            nonlocal overtaken
            overtaken = current.metadata.resource_version not in ours
            if overtaken or _dump(current.status) == _dump(wanted):
                return None  # overtaken, or nothing new: no write, no event, no echo
            return current.model_copy(update={"status": wanted})

        try:
            await self.client.modify_status(self.kind, obj.uid, change)
        except NotFound:
            return True  # deleted meanwhile: its status goes with it
        if overtaken:
            self.log.debug("%s %s changed during its reconcile: status not saved, again",
                           self.kind.__name__, obj.name)
        return not overtaken


def _ready_state(obj: Resource[Any, Any]) -> Any:
    status = obj.status
    fields = type(status).model_fields
    ready = find_condition(status.conditions, "Ready") if "conditions" in fields else None
    cond = None if ready is None else (ready.status, ready.reason, ready.message)
    return cond, getattr(status, "ready", None) if "ready" in fields else None


def _json_details(data: Mapping[str, Any] | BaseModel | None) -> dict[str, Any] | None:
    if data is None:
        return None
    if isinstance(data, BaseModel):  # (a spec's secrets stay out of the event)
        hidden: Any = (sensitive_exclude(type(data)) if isinstance(data, Resource)
                       else {name for name, _ in sensitive_fields(type(data))} or None)
        return data.model_dump(mode="json", by_alias=True, exclude=hidden)
    if not isinstance(data, Mapping):
        raise TypeError(f"emit() data must be a mapping or a model, not {type(data).__name__}")
    try:  # a copy made now, in JSON values: later changes to `data` do not leak in
        return cast(dict[str, Any], json.loads(json.dumps(dict(data), allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"emit() data must hold JSON values only: {exc}") from None


def _dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json")
