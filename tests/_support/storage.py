"""A real `FileStorage` that records which calls it was asked for (reads per write)."""

from __future__ import annotations

from typing import Any

from fabrica.storage import FileStorage


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
