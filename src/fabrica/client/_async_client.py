"""`AsyncClient`: the typed client for asyncio code, method for method like `Client`.

Reconcilers and servers that call other fabrica services run on an event loop, where a
blocking client would stall every other task; this one awaits ``httpx.AsyncClient``.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import httpx

from ..events import CloudEvent
from ..resource import Resource, ServedVersion
from ._calls import to_json
from ._errors import Conflict, PreconditionFailed
from ._raw import DEFAULT_SERVER, DEFAULT_TIMEOUT, JSON, AsyncRawClient, JSONList
from ._typed import Body, R, create_body, item_id, resolve, split_target, update_body
from ._watch import WatchEvent, typed_event

__all__ = ["AsyncClient"]


class AsyncClient:
    """Asynchronous typed client; arguments and methods as for `Client`, awaited.

    `transport` is an ``httpx.AsyncBaseTransport``, e.g. ``httpx.ASGITransport(app=...)``
    to talk to a fabrica app in-process.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_SERVER,
        kinds: Iterable[type[Resource[Any, Any]]] = (),
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.2,
        headers: Mapping[str, str] | None = None,
        api_version: str | None = None,
        versions: Iterable[type[ServedVersion[Any, Any]]] = (),
        on_warning: Callable[[str], None] | None = None,
        token: str | None = None,
    ) -> None:
        self.raw = AsyncRawClient(base_url, kinds, transport=transport, timeout=timeout,
                                  retries=retries, backoff=backoff, headers=headers,
                                  api_version=api_version, versions=versions,
                                  on_warning=on_warning, token=token)
        self.kinds = self.raw.kinds

    async def aclose(self) -> None:
        await self.raw.aclose()

    async def health(self) -> JSON:
        return await self.raw.health()

    async def ready(self) -> JSON:
        return await self.raw.ready()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def iter_list(
        self, kind: type[R] | str, selector: str | None = None, limit: int | None = None, *,
        field_selector: str | None = None,
    ) -> AsyncIterator[R]:
        cls = resolve(self.kinds, kind)
        async for page in self.raw.iter_pages(cls, selector, limit,
                                              field_selector=field_selector):
            for item in page:
                yield cls.model_validate(item)

    async def list(
        self, kind: type[R] | str, selector: str | None = None, limit: int | None = None, *,
        field_selector: str | None = None,
    ) -> list[R]:
        return [obj async for obj in self.iter_list(kind, selector, limit,
                                                    field_selector=field_selector)]

    async def watch(
        self,
        kind: type[R] | str,
        label_selector: str | None = None,
        *,
        resource_version: str | None = None,
        allow_bookmarks: bool = False,
        timeout_seconds: int | None = None,
        field_selector: str | None = None,
    ) -> AsyncGenerator[WatchEvent[R]]:
        """As `Client.watch`; close it (``aclose()``) or leave ``async for`` to hang up."""
        cls = resolve(self.kinds, kind)
        events = self.raw.watch(cls, label_selector, resource_version=resource_version,
                                allow_bookmarks=allow_bookmarks, timeout_seconds=timeout_seconds,
                                field_selector=field_selector)
        async with contextlib.aclosing(events):
            async for event in events:
                yield typed_event(event, cls.model_validate)

    async def list_with_version(
        self, kind: type[R] | str, label_selector: str | None = None, *,
        field_selector: str | None = None,
    ) -> tuple[builtins.list[R], str | None]:
        cls = resolve(self.kinds, kind)
        items, version = await self.raw.list_with_version(cls, label_selector,
                                                          field_selector=field_selector)
        return [cls.model_validate(item) for item in items], version

    async def get(self, kind: type[R] | str, id: str) -> R:
        cls = resolve(self.kinds, kind)
        return cls.model_validate(await self.raw.get(cls, id))

    async def create(
        self,
        kind: type[R] | str,
        name: str,
        spec: Body,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> R:
        cls = resolve(self.kinds, kind)
        body = create_body(name, spec, labels, annotations)
        return cls.model_validate(await self.raw.create(cls, body))

    async def update(self, obj: R, if_match: str | None = None) -> R:
        body = update_body(obj)
        data = await self.raw.replace(type(obj), item_id(obj), body, if_match)
        return type(obj).model_validate(data)

    async def patch(
        self,
        kind: type[R] | str,
        id: str,
        patch: Any,
        patch_type: str = "merge",
        if_match: str | None = None,
    ) -> R:
        cls = resolve(self.kinds, kind)
        return cls.model_validate(await self.raw.patch(cls, id, patch, patch_type, if_match))

    async def update_status(
        self,
        target: R | type[R] | str | tuple[type[R] | str, str],
        *args: Any,
        if_match: str | None = None,
    ) -> R:
        kind, id, status = split_target(target, args, "status", own_status=True)
        cls: type[R] = resolve(self.kinds, kind)
        data = await self.raw.replace_status(cls, id, to_json(status), if_match)
        return cls.model_validate(data)

    async def patch_status(
        self,
        target: R | type[R] | str | tuple[type[R] | str, str],
        *args: Any,
        patch_type: str = "merge",
        if_match: str | None = None,
    ) -> R:
        kind, id, patch = split_target(target, args, "patch")
        cls: type[R] = resolve(self.kinds, kind)
        data = await self.raw.patch_status(cls, id, patch, patch_type, if_match)
        return cls.model_validate(data)

    async def delete(
        self, kind: type[Resource[Any, Any]] | str, id: str, if_match: str | None = None
    ) -> JSON:
        return await self.raw.delete(kind, id, if_match)

    async def versions(
        self, kind: type[Resource[Any, Any]] | str, id: str
    ) -> JSONList:
        return await self.raw.versions(kind, id)

    async def get_version(
        self, kind: type[Resource[Any, Any]] | str, id: str, version: str
    ) -> JSON:
        return await self.raw.get_version(kind, id, version)

    async def delete_version(
        self, kind: type[Resource[Any, Any]] | str, id: str, version: str
    ) -> JSON:
        return await self.raw.delete_version(kind, id, version)

    async def watch_events(
        self, pattern: str | None = None, on_open: Callable[[], None] | None = None
    ) -> AsyncIterator[CloudEvent]:
        async for event in self.raw.watch_events(pattern, on_open):
            yield CloudEvent.from_dict(event)

    async def update_with_retry(
        self,
        kind: type[R] | str,
        id: str,
        mutate: Callable[[R], R | None],
        attempts: int = 5,
    ) -> R:
        for attempt in range(attempts):
            obj = await self.get(kind, id)
            obj = mutate(obj) or obj
            try:
                return await self.update(obj)
            except (Conflict, PreconditionFailed):
                if attempt + 1 == attempts:
                    raise
        raise ValueError("attempts must be at least 1")
