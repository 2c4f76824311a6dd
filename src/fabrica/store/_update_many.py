"""`ResourceStore.update_status_many`: the status of many resources of one kind in one
storage write.

Each resource goes through what `ResourceStore.update_status` does to it (compare-and-swap
on the resourceVersion it was read at, the kind's admission hook for a status write, spec
and metadata kept as stored, its events), all *before* anything is written; the current
states come from one read (`BulkStorage.get_many`). Then the storage writes the lot as one
batch (`BulkStorage.write_batch`, mode ``update``): one transaction on SQL, so a stale
resource leaves none of them written (and one commit: a rack's 714 chassis and blade
status writes were 714 syncs to disk on SQLite); on files each document swapped on its own.

Unlike `modify`, nothing is retried: a resource written by someone else since it was read
is a `Conflict`, as for `update_status`.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from ..resource import Resource
from ..storage import BulkItem, BulkStorage, Document, NotFound
from ._changes import Change
from ._hooks import run_admit
from ._store import ResourceStore, _check, _with_stored_version

__all__ = ["update_status_many"]

AnyResource = Resource[Any, Any]


async def update_status_many(store: ResourceStore, objs: Sequence[AnyResource]
                             ) -> builtins.list[AnyResource]:
    """See the module docstring; returns the resources as stored, in the order given."""
    if not objs:
        return []
    cls = type(objs[0])
    if any(type(obj) is not cls for obj in objs):
        raise ValueError(f"update_status_many writes one kind per call, not "
                         f"{sorted({type(o).resource_info.kind for o in objs})}")
    storage = store.storage
    if not isinstance(storage, BulkStorage):
        raise TypeError(f"the {storage.name} storage cannot write batches")
    plural = cls.resource_info.plural
    stored = await storage.get_many(plural, [obj.uid for obj in objs])
    hooks = store._hooks.get(cls)
    changes: dict[str, tuple[AnyResource, AnyResource]] = {}  # uid: (current, new)
    for obj in objs:
        if obj.uid in changes:
            raise ValueError(f"{cls.resource_info.kind} {obj.uid} given twice")
        doc = stored.get(obj.uid)
        if doc is None:
            raise NotFound(plural, obj.uid)
        current = store._load(cls, doc)
        _check(current, None, obj.metadata.resource_version)
        wanted = obj
        if hooks is not None:
            wanted = await run_admit(hooks, store._context("status", False), obj,
                                     current.model_copy(deep=True))
        changes[obj.uid] = (current, await store._commit_status(current, wanted, "updated",
                                                                dry_run=True))

    def change(doc: Document) -> Change:
        current, new = changes[doc["metadata"]["uid"]]
        return Change("updated", _with_stored_version(new, doc), current, "status")

    events = store._events(change)
    written = await storage.write_batch(
        plural, [BulkItem(store._dump(new)) for _, new in changes.values()], mode="update",
        outbox=events.get("outbox"))
    done = []
    for doc in written:
        done.append(found := change(doc))
        await store._notify(found, events)
    return [found.resource for found in done]
