"""Owner references are checked when they are written, so none dangles from the start.

The rule (Kubernetes-like, but refused where Kubernetes would collect silently): a create
or an update that adds an ``ownerReferences`` entry must name a kind this service serves
(else `OwnerReferenceError` on ``metadata.ownerReferences.N.kind``) and the uid of a
resource of that kind that exists now (else on ``...N.uid``); HTTP answers both with 422.
References the resource already had are not checked again: an owner deleted since is the garbage
collector's business (it deletes the dependent), and a dependent held by a finalizer must
still be writable to release it.

Every write takes this path, the API's and the reconcilers'. An owner deleted between the
check and the write is caught after it: the garbage collector hears of every write of a
dependent and deletes it if none of its owners exists any more (`_gc.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from ..resource import OwnerReference, Resource
from ..storage import NotFound, Storage

__all__ = ["OwnerReferenceError", "check_owners", "owner_exists"]

AnyResource = Resource[Any, Any]


class OwnerReferenceError(ValueError):
    """An owner reference that cannot be written: `part` ``"kind"`` (not served here) or
    ``"uid"`` (no such resource); `field` is its JSON path."""

    def __init__(self, index: int, part: Literal["kind", "uid"], message: str) -> None:
        super().__init__(message)
        self.part = part
        self.field = f"metadata.ownerReferences.{index}.{part}"
        self.message = message


def _added(refs: Sequence[OwnerReference], before: Iterable[OwnerReference] = ()
                 ) -> list[tuple[int, OwnerReference]]:
    """The references in `refs` (with their index) whose uid `before` did not have."""
    had = {ref.uid for ref in before}
    return [(index, ref) for index, ref in enumerate(refs) if ref.uid not in had]


async def check_owners(storage: Storage, kinds: Mapping[str, type[AnyResource]],
                       refs: Sequence[OwnerReference],
                       before: Iterable[OwnerReference] = ()) -> None:
    """Refuse (`OwnerReferenceError`) a reference added by this write that names a kind
    not served here or a resource that does not exist."""
    for index, ref in _added(refs, before):
        cls = kinds.get(ref.kind)
        if cls is None:
            served = ", ".join(sorted(kinds)) or "none"
            raise OwnerReferenceError(index, "kind", f"owner kind {ref.kind!r} is not served "
                                      f"by this service (kinds: {served})")
        if not await owner_exists(storage, cls, ref.uid):
            raise OwnerReferenceError(index, "uid", f"owner {ref.kind} {ref.uid} does not "
                                      "exist")


async def owner_exists(storage: Storage, cls: type[AnyResource], uid: str) -> bool:
    """Whether a `cls` with this uid exists (by uid only: a name is no reference)."""
    info = cls.resource_info
    if not info.is_uid(uid):
        return False
    try:
        await storage.get(info.plural, uid)
    except NotFound:
        return False
    return True
