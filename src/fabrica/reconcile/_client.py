"""`ReconcileClient`: what a reconciler uses to read and write resources.

It writes through the same `ResourceStore` as the HTTP API, so every write a reconciler makes
publishes its events and can trigger further reconciles, exactly like a write over HTTP.
`ensure` is the create-if-absent a crash-safe reconciler is built on: with deterministic
child names, running the same reconcile twice (or after a crash halfway) creates nothing
twice.

Each write it makes to the object being reconciled is noted (`own_writes`): the reconcile
base saves its status only over the state it read or over its own writes, never over
someone else's newer one (see `ResourceReconciler`).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from ..resource import Resource, Selector, parse_selector
from ..storage import AlreadyExists, NotFound
from ..store import Emission, NewResource, Part, ResourceStore

__all__ = ["ReconcileClient", "own_writes"]

R = TypeVar("R", bound=Resource[Any, Any])
AnyResource = Resource[Any, Any]
# (uid, resourceVersions) of the object the reconcile running in this task reconciles: the
# version it read and those it wrote itself since. Tasks it starts share the set.
_OWN: ContextVar[tuple[str, set[str]] | None] = ContextVar("fabrica_own_writes", default=None)


@contextmanager
def own_writes(obj: AnyResource) -> Iterator[set[str]]:
    """Within the block, the versions of `obj` that are this reconcile's: the one it read,
    and each one the `ReconcileClient` writes for it (in this task or tasks it starts)."""
    versions = {obj.metadata.resource_version}
    token = _OWN.set((obj.uid, versions))
    try:
        yield versions
    finally:
        _OWN.reset(token)


def _note(written: R) -> R:
    own = _OWN.get()
    if own is not None and own[0] == written.uid:
        own[1].add(written.metadata.resource_version)
    return written


class ReconcileClient:
    def __init__(self, store: ResourceStore) -> None:
        self._store = store

    async def get(self, cls: type[R], id: str) -> R:
        """By uid or name; raises `fabrica.NotFound`."""
        return await self._store.get(cls, id)

    async def get_or_none(self, cls: type[R], id: str) -> R | None:
        try:
            return await self._store.get(cls, id)
        except NotFound:
            return None

    async def list(
        self,
        cls: type[R],
        selector: str | Selector | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> list[R]:
        """Every resource of `cls` matching a label selector and/or exact `labels`."""
        parsed = parse_selector(selector) if isinstance(selector, str) or selector is None \
            else selector
        if labels:
            exact = ",".join(f"{key}={value}" for key, value in labels.items())
            parsed = Selector(parsed.requirements + parse_selector(exact).requirements)
        return await self._store.list(cls, selector=parsed or None)

    async def create(
        self,
        cls: type[R],
        name: str,
        spec: Any,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        owner: AnyResource | None = None,
        finalizers: builtins.list[str] | None = None,
    ) -> R:
        """Create; with `owner`, the new resource is deleted when its owner is. Metadata
        that breaks the model's rules is `fabrica.resource.InvalidMetadata`, as over HTTP."""
        owners = [owner.owner_reference()] if owner is not None else None
        spec_model = cls.resource_info.spec_type.model_validate(spec) \
            if isinstance(spec, Mapping) else spec
        return await self._store.create(
            cls, name, spec_model, labels=dict(labels or {}), annotations=dict(annotations or {}),
            owner_references=owners, finalizers=finalizers,
        )

    @staticmethod
    def new(
        cls: type[R],
        name: str,
        spec: Any,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        owner: AnyResource | None = None,
        finalizers: builtins.list[str] | None = None,
    ) -> NewResource:
        """One child for `create_many`, described as `create` takes it."""
        return NewResource(cls, name, spec, labels=dict(labels or {}),
                           annotations=dict(annotations or {}),
                           owner_references=[owner.owner_reference()] if owner else [],
                           finalizers=list(finalizers or []))

    async def create_many(self, children: Iterable[NewResource]) -> builtins.list[Any]:
        """Create many resources of one kind in one step (one transaction on SQL, one
        batched durable write on files), each validated, admitted and published as by
        `create` (build them with `new`). If any child cannot be created, none is:
        `fabrica.store.CreateManyError` names it (``index``, ``name``, ``error``)."""
        return await self._store.create_many(list(children))

    async def ensure(
        self,
        cls: type[R],
        name: str,
        spec: Any,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        owner: AnyResource | None = None,
    ) -> R:
        """The resource called `name`, created from `spec` if it does not exist yet.

        An existing resource is returned as it is: its spec is not compared or changed.
        """
        existing = await self.get_or_none(cls, name)
        if existing is not None:
            return existing
        try:
            return await self.create(cls, name, spec, labels=labels, annotations=annotations,
                                     owner=owner)
        except AlreadyExists:  # another writer won the race; theirs is as good as ours
            return await self._store.get(cls, name)

    async def update(self, obj: R) -> R:
        """Write spec and metadata; `fabrica.Conflict` if `obj` is stale,
        `fabrica.resource.InvalidMetadata` if its metadata breaks the model's rules."""
        return _note(await self._store.update(obj))

    async def update_status(self, obj: R) -> R:
        """Write status; `fabrica.Conflict` if `obj` is stale."""
        return _note(await self._store.update_status(obj))

    async def update_status_many(self, objs: Iterable[R]) -> builtins.list[R]:
        """Write the status of many resources of one kind in one step (one transaction on
        SQL), each as `update_status` would; if any is stale (`fabrica.Conflict`) or gone,
        none is written (on SQL)."""
        return [_note(obj) for obj in await self._store.update_status_many(list(objs))]

    async def delete(self, cls: type[R], id: str) -> None:
        try:
            await self._store.delete(cls, id)
        except NotFound:
            pass

    async def modify(self, cls: type[R], id: str, change: Callable[[R], R | None]) -> R:
        """Change spec and metadata with `change(current)`, re-read and retried on conflict
        (return None from `change` for no write). See `ResourceStore.modify`."""
        return await self._modify(cls, id, change, "main")

    async def modify_status(self, cls: type[R], id: str, change: Callable[[R], R | None]
                            ) -> R:
        """Like `modify`, for the status."""
        return await self._modify(cls, id, change, "status")

    async def add_finalizer(self, obj: R, finalizer: str) -> R:
        """`obj` as stored with `finalizer` among its finalizers (retried on conflict)."""
        def change(current: R) -> R | None:
            if finalizer in current.metadata.finalizers:
                return None
            current.metadata.finalizers = [*current.metadata.finalizers, finalizer]
            return current

        return await self._modify(type(obj), obj.uid, change, "main")

    async def remove_finalizer(self, obj: R, finalizer: str) -> R:
        """`obj` as stored without `finalizer` (retried on conflict). Removing the last
        finalizer of a resource marked for deletion removes the resource."""
        def change(current: R) -> R | None:
            if finalizer not in current.metadata.finalizers:
                return None
            current.metadata.finalizers = [f for f in current.metadata.finalizers
                                           if f != finalizer]
            return current

        return await self._modify(type(obj), obj.uid, change, "main")

    async def emit(self, emission: Emission) -> None:
        """Publish a reconciler's own event now (`ResourceReconciler.emit` queues them)."""
        await self._store.emit(emission)

    async def _modify(self, cls: type[R], id: str, change: Callable[[R], R | None],
                      part: Part) -> R:
        """`ResourceStore.modify`, noting the result as an own write when it wrote (the
        last call of `change` asked for a write: the store committed just that)."""
        wrote = False

        def tracked(current: R) -> R | None:
            nonlocal wrote
            wanted = change(current)
            wrote = wanted is not None
            return wanted

        result = await self._store.modify(cls, id, tracked, part=part)
        return _note(result) if wrote else result
