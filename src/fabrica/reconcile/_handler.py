"""`OwnerHandler`: which keys an event puts on the work queues (controller-runtime's
event handler: ``EnqueueRequestForObject`` plus ``EnqueueRequestForOwner``, transitively).

- the resource itself, when its kind is reconciled, except status-only writes: a kind's
  reconciler writes its own status, and hearing that echo would loop forever
  (controller-runtime's GenerationChanged predicate);
- the nearest reconciled ancestor along ``ownerReferences``: a rack hears that a node three
  levels down (node → blade → chassis → rack) was deleted, and puts it back.

Owners are looked up in a map fed by the events themselves, falling back to a read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from ..events import ResourceEvent

__all__ = ["OwnerHandler", "Owners"]

#: (kind, owner references as (kind, uid)) of one resource.
Owners = tuple[str, list[tuple[str, str]]]

_MAX_OWNER_DEPTH = 8


class OwnerHandler:
    def __init__(
        self,
        reconciled: Collection[str],
        enqueue: Callable[[str, str], None],
        load_owners: Callable[[str, str], Awaitable[Owners | None]],
    ) -> None:
        self.reconciled = reconciled
        self.enqueue = enqueue
        self.load_owners = load_owners
        # uid → (kind, owner references) of resources seen in events: the ancestor walk.
        self._owners: dict[str, Owners] = {}

    async def __call__(self, event: ResourceEvent) -> None:
        if event.kind in self.reconciled and not event.status_only:
            self.enqueue(event.kind, event.uid)
        owners = event.owners
        if event.action == "deleted":
            self._owners.pop(event.uid, None)
        else:
            self._owners[event.uid] = (event.kind, owners)
        for owner_kind, owner_uid in owners:
            await self._enqueue_ancestor(owner_kind, owner_uid)

    async def _enqueue_ancestor(self, kind: str, uid: str, depth: int = 0) -> None:
        if kind in self.reconciled:
            self.enqueue(kind, uid)
            return
        if depth >= _MAX_OWNER_DEPTH:
            return
        known = self._owners.get(uid)
        if known is None:
            known = await self.load_owners(kind, uid)
            if known is not None:
                self._owners[uid] = known
        for owner_kind, owner_uid in known[1] if known else ():
            await self._enqueue_ancestor(owner_kind, owner_uid, depth + 1)
