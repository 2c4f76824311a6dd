"""`ResourceStore.create_many`: many new resources of one kind in one storage write.

Each child goes through what a single `ResourceStore.create` does to it (name and metadata
rules, owner references, the kind's admission hook, Unicode checks, sealed sensitive
values, its first spec snapshot, its unique keys, its events in the outbox), all of them
*before* anything is written; then the storage writes the lot as one batch
(`BulkStorage.write_batch`, mode ``create``): one transaction on SQL, so a crash or a taken
name leaves none of them; on files each document whole or absent, and a batch refused for
a taken name or unique value removes what it had written (`write_batch`'s files).

An invalid child stops the whole call before the write: `CreateManyError` names it by its
index and name and carries the child's own error as its cause (``__cause__``) and as
`CreateManyError.error`, so a caller can tell a 422 from a 409.

Owner references are checked once per distinct owner, not once per child (a rack's 5,376
nodes name 672 blades), in one read per kind.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..resource import Metadata, OwnerReference, Resource, check_metadata, new_uid
from ..storage import AlreadyExists, BulkItem, BulkStorage, Document
from ._changes import Change
from ._owners import OwnerReferenceError, check_owners
from ._secrets import seal_document
from ._store import ResourceStore, _dump, _keys, _snapshot

__all__ = ["CreateManyError", "NewResource", "create_many"]

AnyResource = Resource[Any, Any]


@dataclass(frozen=True)
class NewResource:
    """One resource for `ResourceStore.create_many`: what `ResourceStore.create` takes."""

    cls: type[AnyResource]
    name: str
    spec: Any
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    owner_references: builtins.list[OwnerReference] = field(default_factory=list)
    finalizers: builtins.list[str] = field(default_factory=list)


class CreateManyError(ValueError):
    """Child `index` (called `name`) cannot be created, so none of the batch was."""

    def __init__(self, index: int, name: str, error: Exception) -> None:
        super().__init__(f"child {index} ({name}): {error}")
        self.index, self.name, self.error = index, name, error


@dataclass
class _Prepared:
    obj: AnyResource
    item: BulkItem


async def create_many(store: ResourceStore, children: Sequence[NewResource]
                      ) -> builtins.list[AnyResource]:
    """See the module docstring; returns the created resources in the order given."""
    if not children:
        return []
    cls = children[0].cls
    mixed = next((i for i, c in enumerate(children) if c.cls is not cls), None)
    if mixed is not None:
        raise CreateManyError(mixed, children[mixed].name, ValueError(
            f"a {children[mixed].cls.resource_info.kind} among {cls.resource_info.kind}s: "
            "create_many writes one kind per call"))
    storage = store.storage
    if not isinstance(storage, BulkStorage):
        raise TypeError(f"the {storage.name} storage cannot write batches")
    await _check_owners(store, storage, children)
    prepared = [await _prepare(store, index, child) for index, child in enumerate(children)]
    _refuse_repeats(children, prepared)
    by_uid = {p.obj.uid: p.obj for p in prepared}

    def as_stored(doc: Document) -> AnyResource:
        # Each object is this call's own, built in `_prepared` and seen by nobody yet: it
        # takes its version in place (two model copies each were a tenth of the call). A
        # write run again (see `SQLStorage.write_batch`) sets the version it ends with.
        meta = doc["metadata"]
        obj = by_uid[meta["uid"]]
        obj.metadata.resource_version = meta["resourceVersion"]
        return obj

    events = store._events(lambda doc: Change("created", as_stored(doc)))
    try:
        stored = await storage.write_batch(cls.resource_info.plural,
                                           [p.item for p in prepared], mode="create",
                                           outbox=events.get("outbox"))
    except AlreadyExists as exc:
        raise _naming(children, prepared, exc) from exc
    created = [as_stored(doc) for doc in stored]
    for obj in created:
        await store._notify(Change("created", obj), events)
    return created


async def _check_owners(store: ResourceStore, storage: BulkStorage,
                        children: Sequence[NewResource]) -> None:
    """Each kind's distinct owners looked up in one read (`BulkStorage.get_many`; one at a
    time, a rack's 672 blades took a second of round trips on PostgreSQL). A kind not
    served or an owner missing is reported for the first child naming it, as `create`
    reports it (checked again on its own: it may have been created meanwhile)."""
    first: dict[tuple[str, str], tuple[int, int, OwnerReference]] = {}
    for index, child in enumerate(children):
        for position, ref in enumerate(child.owner_references):
            first.setdefault((ref.kind, ref.uid), (index, position, ref))
    by_kind: dict[str, builtins.list[str]] = {}
    for kind, uid in first:
        by_kind.setdefault(kind, []).append(uid)
    found: set[tuple[str, str]] = set()
    for kind, uids in by_kind.items():
        cls = store.kinds.get(kind)
        if cls is not None:
            found.update((kind, uid) for uid in await storage.get_many(
                cls.resource_info.plural, [u for u in uids if cls.resource_info.is_uid(u)]))
    for key, (index, position, ref) in first.items():
        if key in found:
            continue
        try:
            await check_owners(store.storage, store.kinds, [ref])
        except OwnerReferenceError as exc:
            exc.field = f"metadata.ownerReferences.{position}.{exc.part}"
            raise CreateManyError(index, children[index].name, exc) from exc


async def _prepare(store: ResourceStore, index: int, child: NewResource) -> _Prepared:
    try:
        return await _prepared(store, child)
    except Exception as exc:
        raise CreateManyError(index, child.name, exc) from exc


async def _prepared(store: ResourceStore, child: NewResource) -> _Prepared:
    cls, info = child.cls, child.cls.resource_info
    if info.is_uid(child.name):
        raise ValueError(f"{info.kind} name {child.name!r} has the shape of a uid")
    now = store.clock()
    metadata = Metadata(name=child.name, labels=dict(child.labels),
                        annotations=dict(child.annotations), created_at=now, updated_at=now,
                        generation=1, owner_references=list(child.owner_references),
                        finalizers=list(child.finalizers), uid=new_uid(info.prefix))
    check_metadata(metadata)
    spec = info.spec_type.model_validate(child.spec) if isinstance(child.spec, dict) \
        else child.spec
    status = info.status_type()
    if info.versioning:
        status.version = "v1"  # type: ignore[attr-defined]
    obj = await store._admit_create(cls(metadata=metadata, spec=spec, status=status), False)
    document = _dump(obj)
    history = [_snapshot(obj, "v1", now)] if info.versioning else []
    unique = _keys(info.rules, document).get("unique")
    return _Prepared(obj, BulkItem(seal_document(store.encryption, cls, document), history,
                                   unique))


def _refuse_repeats(children: Sequence[NewResource], prepared: Sequence[_Prepared]) -> None:
    """A name or unique key given twice in the batch: the second child is refused."""
    seen: dict[tuple[str, str], str] = {}
    for index, (child, p) in enumerate(zip(children, prepared, strict=True)):
        keys = [("name", child.name)] + [
            (constraint, key) for constraint, key in (p.item.unique or {}).items() if key]
        for field_, value in keys:
            if (field_, value) in seen:
                raise CreateManyError(index, child.name, AlreadyExists(
                    child.cls.resource_info.plural, field_, value, seen[field_, value]))
            seen[field_, value] = p.obj.uid


def _naming(children: Sequence[NewResource], prepared: Sequence[_Prepared],
            exc: AlreadyExists) -> CreateManyError:
    """The child a refused batch write was refused for: by its name, uid or unique key."""
    for index, (child, p) in enumerate(zip(children, prepared, strict=True)):
        unique = p.item.unique or {}
        if (exc.field == "name" and child.name == exc.value) or (
                exc.field == "uid" and p.obj.uid == exc.value) or (
                unique.get(exc.field) == exc.value and exc.holder != p.obj.uid):
            return CreateManyError(index, child.name, exc)
    return CreateManyError(0, children[0].name, exc)
