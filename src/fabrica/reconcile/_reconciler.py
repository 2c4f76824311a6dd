"""`ResourceReconciler`: the base every generated ``KindReconcilerBase`` extends.

A project's ``rack_reconciler.py`` defines ``async def reconcile_rack(self, rack)``: look at
the rack as it is now, act, and write what was observed into ``rack.status``. This base does
everything around it: it loads the typed resource (a deleted one needs no work), records the
``Ready`` condition with ``observedGeneration`` unless the user's code set it, saves status
with compare-and-swap (retried on conflict, since status belongs to the reconciler), and
returns the requeue that keeps the object under periodic watch. An exception marks Ready
False and is retried with backoff by the controller; a `TerminalError` is recorded and
not retried.

Kinds whose reconciler class defines ``finalize_KIND`` get the finalizer
``fabrica.io/KIND-reconciler``: deleting such a resource calls ``finalize_KIND`` first, and
the resource goes once it returns.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel

from ..resource import Resource, find_condition, set_condition
from ..storage import NotFound
from ._client import ReconcileClient
from ._result import Request, Result, TerminalError

__all__ = ["ResourceReconciler"]

R = TypeVar("R", bound=Resource[Any, Any])


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

    async def reconcile(self, request: Request) -> Result:
        try:
            obj = await self._get(request.uid)
        except NotFound:
            return Result()  # gone: nothing to drive anywhere
        if obj.metadata.deletion_timestamp is not None:
            await self._finalize(obj)
            return Result()
        if self.finalizer and self.finalizer not in obj.metadata.finalizers:
            obj = await self.client.add_finalizer(obj, self.finalizer)
        before = _ready_state(obj)
        try:
            result: Result | None = await getattr(self, self.user_method())(obj)
        except TerminalError as exc:
            self._mark_ready(obj, False, "ReconcileFailed", str(exc), before)
            await self._save_status(obj)
            self.log.warning("%s %s failed for good: %s", self.kind.__name__, obj.name, exc)
            return Result()
        except Exception as exc:
            self._mark_ready(obj, False, "ReconcileError", f"{type(exc).__name__}: {exc}",
                             before)
            await self._save_status(obj)
            raise
        self._mark_ready(obj, True, "Reconciled", "", before)
        await self._save_status(obj)
        if result is None:
            return Result(requeue_after=self.requeue_after)
        return result

    # -- internals -----------------------------------------------------------------------

    async def _get(self, uid: str) -> R:
        # `kind` is the class R stands for; a ClassVar cannot be typed with R to say so.
        return cast(R, await self.client.get(self.kind, uid))

    def _finalize_method(self) -> Any:
        return getattr(self, f"finalize_{self.kind.resource_info.singular}", None)

    async def _finalize(self, obj: R) -> None:
        finalizer = self.finalizer
        if finalizer is None or finalizer not in obj.metadata.finalizers:
            return
        await self._finalize_method()(obj)
        try:
            await self.client.remove_finalizer(obj, finalizer)
        except NotFound:
            pass  # removed by someone else meanwhile: nothing left to hold

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

    async def _save_status(self, obj: R) -> None:
        """Put our status onto the current object (the store retries on conflict, since
        status belongs to the reconciler); no write when the status is what is stored."""
        wanted: BaseModel = obj.status

        def change(current: Resource[Any, Any]) -> Resource[Any, Any] | None:
            if _dump(current.status) == _dump(wanted):
                return None  # nothing new: no write, no event, no echo reconcile
            return current.model_copy(update={"status": wanted})

        try:
            await self.client.modify_status(self.kind, obj.uid, change)
        except NotFound:
            pass  # deleted meanwhile: its status goes with it


def _ready_state(obj: Resource[Any, Any]) -> Any:
    status = obj.status
    fields = type(status).model_fields
    ready = find_condition(status.conditions, "Ready") if "conditions" in fields else None
    cond = None if ready is None else (ready.status, ready.reason, ready.message)
    return cond, getattr(status, "ready", None) if "ready" in fields else None


def _dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json")
