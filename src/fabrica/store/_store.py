"""`ResourceStore`: typed CRUD over a storage backend, the one path every write takes.

The HTTP server and (later) reconcilers both write through here, so the bookkeeping that
makes a resource Kubernetes-like lives in one place: uids that never overwrite, timestamps,
``generation`` that grows only when the spec changes, status kept apart from spec, and
compare-and-swap on ``resourceVersion`` for every update.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from ..resource import Metadata, Resource, Selector, is_dns1123_subdomain, new_uid, utcnow
from ..storage import AlreadyExists, Conflict, Document, NotFound, Storage

__all__ = ["ResourceStore", "UnknownKind"]

R = TypeVar("R", bound=Resource[Any, Any])
_UID_ATTEMPTS = 8
_FIRST_VERSION = "v1"


class UnknownKind(LookupError):
    pass


class ResourceStore:
    """Typed access to the resources of `kinds`, stored in `storage`."""

    def __init__(
        self,
        storage: Storage,
        kinds: Iterable[type[Resource[Any, Any]]],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.kinds: dict[str, type[Resource[Any, Any]]] = {}
        for cls in kinds:
            self.kinds[cls.resource_info.kind] = cls

    def kind(self, kind: str) -> type[Resource[Any, Any]]:
        try:
            return self.kinds[kind]
        except KeyError:
            raise UnknownKind(kind) from None

    async def create(
        self,
        cls: type[R],
        name: str,
        spec: Any,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> R:
        info = cls.resource_info
        now = self.clock()
        status = info.status_type()
        if info.versioning:
            status.version = _FIRST_VERSION  # type: ignore[attr-defined]
        for attempt in range(_UID_ATTEMPTS):
            obj = cls(
                metadata=Metadata(
                    name=name,
                    uid=new_uid(info.prefix),
                    labels=labels or {},
                    annotations=annotations or {},
                    created_at=now,
                    updated_at=now,
                    generation=1,
                ),
                spec=spec,
                status=status,
            )
            snapshot = _snapshot(obj, _FIRST_VERSION, now) if info.versioning else None
            try:
                doc = await self.storage.create(info.plural, _dump(obj), snapshot)
            except AlreadyExists as exc:
                if exc.field == "uid" and attempt + 1 < _UID_ATTEMPTS:
                    continue  # a random uid collided: draw another, never overwrite
                raise
            return cls.model_validate(doc)
        raise AssertionError("unreachable")

    async def get(self, cls: type[R], id: str) -> R:
        """By uid, or by name; a name may look like a uid, so a uid miss tries the name."""
        info = cls.resource_info
        if info.is_uid(id):
            try:
                return cls.model_validate(await self.storage.get(info.plural, id))
            except NotFound:
                pass
        if not is_dns1123_subdomain(id):
            raise NotFound(info.plural, id)
        return cls.model_validate(await self.storage.get_by_name(info.plural, id))

    async def list(
        self,
        cls: type[R],
        *,
        selector: Selector | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[R]:
        """Ordered by name; `after` and `limit` page through it (see `Storage.list`)."""
        docs = await self.storage.list(
            cls.resource_info.plural, selector=selector, limit=limit, after=after
        )
        return [cls.model_validate(doc) for doc in docs]

    async def list_versions(self, cls: type[R], id: str) -> list[Document]:
        obj = await self.get(cls, id)
        return await self.storage.list_versions(cls.resource_info.plural, obj.uid)

    async def get_version(self, cls: type[R], id: str, version_id: str) -> Document:
        obj = await self.get(cls, id)
        return await self.storage.get_version(cls.resource_info.plural, obj.uid, version_id)

    async def delete_version(self, cls: type[R], id: str, version_id: str) -> None:
        obj = await self.get(cls, id)
        await self.storage.delete_version(cls.resource_info.plural, obj.uid, version_id)

    async def update(self, obj: R) -> R:
        """Write `obj`'s spec, labels and annotations; its resourceVersion must be current."""
        current = await self._current(obj)
        spec_changed = _dump_model(current.spec) != _dump_model(obj.spec)
        now = self.clock()
        new = current.model_copy(
            update={
                "spec": obj.spec,
                "metadata": current.metadata.model_copy(
                    update={
                        "labels": dict(obj.metadata.labels),
                        "annotations": dict(obj.metadata.annotations),
                        "generation": current.metadata.generation + int(spec_changed),
                        "updated_at": now,
                    }
                ),
            }
        )
        snapshot = None
        if spec_changed and obj.resource_info.versioning:
            version_id = _next_version_id(current.status.version)
            new.status = current.status.model_copy(update={"version": version_id})
            snapshot = _snapshot(new, version_id, now)
        return await self._swap(current, new, snapshot)

    async def update_status(self, obj: R) -> R:
        """Write `obj`'s status only; spec and generation stay as stored."""
        current = await self._current(obj)
        status = obj.status
        if obj.resource_info.versioning:  # only spec writes move the spec version
            status = status.model_copy(update={"version": current.status.version})
        new = current.model_copy(
            update={
                "status": status,
                "metadata": current.metadata.model_copy(update={"updated_at": self.clock()}),
            }
        )
        return await self._swap(current, new)

    async def delete(self, cls: type[R], id: str, expected_version: str | None = None) -> R:
        obj = await self.get(cls, id)
        if expected_version is not None and expected_version != obj.metadata.resource_version:
            raise Conflict(cls.resource_info.plural, obj.uid, expected_version,
                           obj.metadata.resource_version)
        doc = await self.storage.delete(
            cls.resource_info.plural, obj.uid, obj.metadata.resource_version
        )
        return cls.model_validate(doc)

    async def _current(self, obj: R) -> R:
        info = obj.resource_info
        current = type(obj).model_validate(await self.storage.get(info.plural, obj.uid))
        expected = obj.metadata.resource_version
        if expected != current.metadata.resource_version:
            raise Conflict(info.plural, obj.uid, expected, current.metadata.resource_version)
        return current

    async def _swap(self, current: R, new: R, snapshot: Document | None = None) -> R:
        doc = await self.storage.update(
            current.resource_info.plural, _dump(new), current.metadata.resource_version, snapshot
        )
        return type(current).model_validate(doc)


def _dump(obj: Resource[Any, Any]) -> Document:
    return obj.model_dump(mode="json", by_alias=True)


def _dump_model(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True)


def _snapshot(obj: Resource[Any, Any], version_id: str, at: datetime) -> Document:
    """An immutable record of one spec version (Fabrica's spec history)."""
    meta = obj.metadata
    return {
        "versionId": version_id,
        "createdAt": at.isoformat().replace("+00:00", "Z"),
        "uid": meta.uid,
        "name": meta.name,
        "labels": dict(meta.labels),
        "annotations": dict(meta.annotations),
        "spec": _dump_model(obj.spec),
    }


def _next_version_id(current: str) -> str:
    number = int(current[1:]) if current[:1] == "v" and current[1:].isdigit() else 0
    return f"v{number + 1}"

