"""Storage test helpers: the documents the storage suites write, and a real `FileStorage`
that records which calls it was asked for (reads per write)."""

from __future__ import annotations

from typing import Any

from fabrica.storage import FileStorage


def doc(name: str, uid: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A Device document as the store hands it to storage (no version yet)."""
    return {"apiVersion": "v1", "kind": "Device", "schemaVersion": "v1",
            "metadata": {"name": name, "uid": uid, "labels": labels or {}, "annotations": {},
                         "createdAt": "2026-01-02T03:04:05.123456Z",
                         "updatedAt": "2026-01-02T03:04:05.123456Z",
                         "resourceVersion": "", "generation": 1},
            "spec": spec, "status": {}}


def short_doc(name: str, uid: str, **spec: Any) -> dict[str, Any]:
    """The least a document needs for the file backend."""
    return {"apiVersion": "v1", "kind": "Device", "metadata": {"name": name, "uid": uid,
            "resourceVersion": ""}, "spec": spec, "status": {}}


def uid(n: int) -> str:
    return f"dev-{n:08x}"


class CountingStorage(FileStorage):
    """The real file backend, counting the calls the store makes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    async def get(self, collection: str, uid: str) -> Any:
        self.calls.append("get")
        return await super().get(collection, uid)

    async def get_by_name(self, collection: str, name: str) -> Any:
        self.calls.append("get_by_name")
        return await super().get_by_name(collection, name)

    async def update(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("update")
        return await super().update(*args, **kwargs)
