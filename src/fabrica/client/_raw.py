"""`RawClient` and `AsyncRawClient`: the fabrica API as JSON in, JSON out.

This is the layer that talks HTTP: paths, patch content types, ``If-Match``, paging through
``Link: rel="next"``, retries and typed errors. It returns exactly what the server sent, which
is what the command line prints and what scripts want when they pass JSON through. The typed
`Client`/`AsyncClient` are built on top and turn that JSON into resource objects.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any

import httpx

from ..resource import Resource, ResourceInfo, ServedVersion
from . import _calls as calls
from ._calls import Call
from ._errors import FabricaError, error_from_response
from ._kinds import KindRef, Kinds
from ._send import (
    Retry,
    open_stream,
    open_stream_async,
    send,
    send_async,
    send_unchecked,
    send_unchecked_async,
)
from ._sse import event_objects, event_objects_async
from ._watch import watch_events, watch_events_async

__all__ = [
    "DEFAULT_SERVER",
    "DEFAULT_TIMEOUT",
    "JSON",
    "RESOURCE_VERSION_HEADER",
    "JSONList",
    "AsyncRawClient",
    "RawClient",
]

DEFAULT_SERVER = "http://localhost:8080"
DEFAULT_TIMEOUT = 10.0
RESOURCE_VERSION_HEADER = "X-Resource-Version"  # on a list: where a watch continues from

JSON = dict[str, Any]
JSONList = list[JSON]  # spelled once here: inside the classes, `list` is the method
KindsArg = Iterable[type[Resource[Any, Any]]] | Kinds
Versions = Iterable[type[ServedVersion[Any, Any]]]
log = logging.getLogger("fabrica.client")


def log_warning(text: str) -> None:
    """The default `on_warning`: a server's ``Warning`` (e.g. a deprecated API version)."""
    log.warning("server warning: %s", text)


def with_token(headers: Mapping[str, str] | None, token: str | None) -> dict[str, str]:
    """`headers` plus ``Authorization: Bearer TOKEN`` when a token is given."""
    merged = dict(headers or {})
    if token:
        merged["Authorization"] = f"Bearer {token}"
    return merged


class _Base:
    """Configuration the sync and async raw clients share."""

    def __init__(
        self, kinds: KindsArg, retries: int, backoff: float, api_version: str | None,
        versions: Versions, on_warning: Callable[[str], None] | None,
    ) -> None:
        self.kinds = kinds if isinstance(kinds, Kinds) else Kinds(kinds, versions, api_version)
        self.retry = Retry(retries=retries, backoff=backoff)
        self.on_warning = on_warning or log_warning

    def _info(self, kind: KindRef) -> ResourceInfo:
        return self.kinds.info(kind)

    def _watch_call(
        self, kind: KindRef, label_selector: str | None, resource_version: str | None,
        allow_bookmarks: bool, timeout_seconds: int | None, field_selector: str | None = None,
    ) -> Call:
        call = calls.watch_call(self._info(kind), resource_version, label_selector,
                                allow_bookmarks, timeout_seconds, field_selector)
        return self._versioned(call, kind)

    def _versioned(self, call: Call, kind: KindRef) -> Call:
        """`call` asking for `kind`'s API version (Accept, and Content-Type of a body)."""
        return calls.with_api_version(call, self.kinds.version(kind))

    def _warn(self, response: httpx.Response) -> httpx.Response:
        for text in calls.warnings_of(response):
            self.on_warning(text)
        return response


class RawClient(_Base):
    """Synchronous JSON client. Arguments as for `Client`, which wraps one of these."""

    def __init__(
        self,
        base_url: str = DEFAULT_SERVER,
        kinds: KindsArg = (),
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.2,
        headers: Mapping[str, str] | None = None,
        api_version: str | None = None,
        versions: Versions = (),
        on_warning: Callable[[str], None] | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(kinds, retries, backoff, api_version, versions, on_warning)
        self.http = httpx.Client(base_url=base_url, transport=transport, timeout=timeout,
                                 headers=with_token(headers, token))

    def close(self) -> None:
        self.http.close()

    def health(self) -> JSON:
        """``GET /health``: the process is alive, and what it is (service, instance...)."""
        return _object(send(self.http, calls.HEALTH, self.retry))

    def ready(self) -> JSON:
        """``GET /ready``: ``{"status": "ready" | "not ready", "checks": {...}}``, the 503
        of a process not ready included (its checks say why)."""
        return _readiness(send_unchecked(self.http, calls.READY, self.retry))

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def iter_pages(
        self, kind: KindRef, selector: str | None = None, limit: int | None = None, *,
        field_selector: str | None = None,
    ) -> Iterator[JSONList]:
        """Each page of the list, following ``Link: rel="next"`` until there is none.
        `selector` is a label selector; `field_selector` selects by fields
        (``"spec.mac=aa:bb"``: the kind's Indexed fields, metadata.name, status.phase)."""
        for response in self._pages(kind, selector, limit, field_selector):
            yield _items(response)

    def list(
        self, kind: KindRef, selector: str | None = None, limit: int | None = None, *,
        field_selector: str | None = None,
    ) -> JSONList:
        return [item for page in self.iter_pages(kind, selector, limit,
                                                 field_selector=field_selector)
                for item in page]

    def list_with_version(
        self, kind: KindRef, selector: str | None = None, *, field_selector: str | None = None
    ) -> tuple[JSONList, str | None]:
        """All matching resources and the list's ``X-Resource-Version``: a watch from that
        version sees every change after the list, none twice (SPEC section 8). With several
        pages, the first page's version: later pages may show some of the replayed changes
        already, which a watcher recognises by each object's own resourceVersion."""
        return _joined(_page(response)
                       for response in self._pages(kind, selector, None, field_selector))

    def watch(
        self,
        kind: KindRef,
        label_selector: str | None = None,
        *,
        resource_version: str | None = None,
        allow_bookmarks: bool = False,
        timeout_seconds: int | None = None,
        field_selector: str | None = None,
    ) -> Generator[JSON]:
        """The watch events of `kind` as their JSON (``{"type", "object"}``), until the
        server ends the stream or the caller stops iterating; see `Client.watch`."""
        with self.open_watch(kind, label_selector, resource_version=resource_version,
                             allow_bookmarks=allow_bookmarks, timeout_seconds=timeout_seconds,
                             field_selector=field_selector) as response:
            yield from watch_events(response.iter_lines())

    @contextlib.contextmanager
    def open_watch(
        self,
        kind: KindRef,
        label_selector: str | None = None,
        *,
        resource_version: str | None = None,
        allow_bookmarks: bool = False,
        timeout_seconds: int | None = None,
        field_selector: str | None = None,
    ) -> Iterator[httpx.Response]:
        """The open response of a watch, for reading its lines (``watch`` does) or cutting
        it short from another thread (the informer's ``stop``)."""
        call = self._watch_call(kind, label_selector, resource_version, allow_bookmarks,
                                timeout_seconds, field_selector)
        with open_stream(self.http, call, self.retry) as response:
            yield self._warn(response)

    def get(self, kind: KindRef, id: str) -> JSON:
        return self._object(calls.get_call(self._info(kind), id), kind)

    def create(self, kind: KindRef, body: Mapping[str, Any]) -> JSON:
        """POST a flat (Fabrica) or envelope (Kubernetes) body as is."""
        return self._object(calls.create_call(self._info(kind), body), kind)

    def replace(
        self, kind: KindRef, id: str, body: Mapping[str, Any], if_match: str | None = None
    ) -> JSON:
        return self._object(calls.replace_call(self._info(kind), id, body, if_match), kind)

    def patch(
        self, kind: KindRef, id: str, patch: Any, patch_type: str = "merge",
        if_match: str | None = None,
    ) -> JSON:
        call = calls.patch_call(self._info(kind), id, patch, patch_type, if_match)
        return self._object(call, kind)

    def replace_status(
        self, kind: KindRef, id: str, status: Mapping[str, Any], if_match: str | None = None
    ) -> JSON:
        call = calls.replace_status_call(self._info(kind), id, status, if_match)
        return self._object(call, kind)

    def patch_status(
        self, kind: KindRef, id: str, patch: Any, patch_type: str = "merge",
        if_match: str | None = None,
    ) -> JSON:
        call = calls.patch_call(self._info(kind), id, patch, patch_type, if_match, status=True)
        return self._object(call, kind)

    def delete(self, kind: KindRef, id: str, if_match: str | None = None) -> JSON:
        return self._object(calls.delete_call(self._info(kind), id, if_match), kind)

    def versions(self, kind: KindRef, id: str) -> JSONList:
        return _items(self._send(calls.versions_call(self._info(kind), id), kind))

    def get_version(self, kind: KindRef, id: str, version: str) -> JSON:
        return self._object(calls.version_call(self._info(kind), id, version), kind)

    def delete_version(self, kind: KindRef, id: str, version: str) -> JSON:
        return self._object(calls.version_call(self._info(kind), id, version, "DELETE"), kind)

    def watch_events(
        self, pattern: str | None = None, on_open: Callable[[], None] | None = None
    ) -> Generator[JSON]:
        """Each CloudEvent the server publishes from now on whose type matches `pattern`
        (``*`` one segment, ``**`` the rest), as its JSON object. Runs until the server
        ends the stream or the caller stops iterating; needs a server with events on.

        `on_open` is called once the server has subscribed, before any event: list the
        current state there and the events that follow miss no change made after it.
        """
        with open_stream(self.http, calls.events_call(pattern), self.retry) as response:
            yield from event_objects(response.iter_lines(), on_open)

    def _pages(
        self, kind: KindRef, selector: str | None, limit: int | None,
        field_selector: str | None = None,
    ) -> Iterator[httpx.Response]:
        call: Call | None = calls.list_call(self._info(kind), selector, limit, field_selector)
        while call is not None:
            response = self._send(call, kind)
            yield response
            call = calls.next_page_call(response)

    def _send(self, call: Call, kind: KindRef) -> httpx.Response:
        return self._warn(send(self.http, self._versioned(call, kind), self.retry))

    def _object(self, call: Call, kind: KindRef) -> JSON:
        return _object(self._send(call, kind))


class AsyncRawClient(_Base):
    """The async twin of `RawClient`, with the same methods as coroutines."""

    def __init__(
        self,
        base_url: str = DEFAULT_SERVER,
        kinds: KindsArg = (),
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.2,
        headers: Mapping[str, str] | None = None,
        api_version: str | None = None,
        versions: Versions = (),
        on_warning: Callable[[str], None] | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(kinds, retries, backoff, api_version, versions, on_warning)
        self.http = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout,
                                      headers=with_token(headers, token))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def health(self) -> JSON:
        return _object(await send_async(self.http, calls.HEALTH, self.retry))

    async def ready(self) -> JSON:
        return _readiness(await send_unchecked_async(self.http, calls.READY, self.retry))

    async def __aenter__(self) -> AsyncRawClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def iter_pages(
        self, kind: KindRef, selector: str | None = None, limit: int | None = None, *,
        field_selector: str | None = None,
    ) -> AsyncIterator[JSONList]:
        async with contextlib.aclosing(self._pages(kind, selector, limit,
                                                   field_selector)) as pages:
            async for response in pages:
                yield _items(response)

    async def list(
        self, kind: KindRef, selector: str | None = None, limit: int | None = None, *,
        field_selector: str | None = None,
    ) -> JSONList:
        return [item async for page in self.iter_pages(kind, selector, limit,
                                                       field_selector=field_selector)
                for item in page]

    async def list_with_version(
        self, kind: KindRef, selector: str | None = None, *, field_selector: str | None = None
    ) -> tuple[JSONList, str | None]:
        return _joined([_page(response) async for response
                        in self._pages(kind, selector, None, field_selector)])

    async def watch(
        self,
        kind: KindRef,
        label_selector: str | None = None,
        *,
        resource_version: str | None = None,
        allow_bookmarks: bool = False,
        timeout_seconds: int | None = None,
        field_selector: str | None = None,
    ) -> AsyncGenerator[JSON]:
        call = self._watch_call(kind, label_selector, resource_version, allow_bookmarks,
                                timeout_seconds, field_selector)
        async with open_stream_async(self.http, call, self.retry) as response:
            self._warn(response)
            async for event in watch_events_async(response.aiter_lines()):
                yield event

    async def get(self, kind: KindRef, id: str) -> JSON:
        return await self._object(calls.get_call(self._info(kind), id), kind)

    async def create(self, kind: KindRef, body: Mapping[str, Any]) -> JSON:
        return await self._object(calls.create_call(self._info(kind), body), kind)

    async def replace(
        self, kind: KindRef, id: str, body: Mapping[str, Any], if_match: str | None = None
    ) -> JSON:
        call = calls.replace_call(self._info(kind), id, body, if_match)
        return await self._object(call, kind)

    async def patch(
        self, kind: KindRef, id: str, patch: Any, patch_type: str = "merge",
        if_match: str | None = None,
    ) -> JSON:
        call = calls.patch_call(self._info(kind), id, patch, patch_type, if_match)
        return await self._object(call, kind)

    async def replace_status(
        self, kind: KindRef, id: str, status: Mapping[str, Any], if_match: str | None = None
    ) -> JSON:
        call = calls.replace_status_call(self._info(kind), id, status, if_match)
        return await self._object(call, kind)

    async def patch_status(
        self, kind: KindRef, id: str, patch: Any, patch_type: str = "merge",
        if_match: str | None = None,
    ) -> JSON:
        call = calls.patch_call(self._info(kind), id, patch, patch_type, if_match, status=True)
        return await self._object(call, kind)

    async def delete(self, kind: KindRef, id: str, if_match: str | None = None) -> JSON:
        return await self._object(calls.delete_call(self._info(kind), id, if_match), kind)

    async def versions(self, kind: KindRef, id: str) -> JSONList:
        return _items(await self._send(calls.versions_call(self._info(kind), id), kind))

    async def get_version(self, kind: KindRef, id: str, version: str) -> JSON:
        return await self._object(calls.version_call(self._info(kind), id, version), kind)

    async def delete_version(self, kind: KindRef, id: str, version: str) -> JSON:
        call = calls.version_call(self._info(kind), id, version, "DELETE")
        return await self._object(call, kind)

    async def watch_events(
        self, pattern: str | None = None, on_open: Callable[[], None] | None = None
    ) -> AsyncIterator[JSON]:
        call = calls.events_call(pattern)
        async with open_stream_async(self.http, call, self.retry) as response:
            async for event in event_objects_async(response.aiter_lines(), on_open):
                yield event

    async def _pages(
        self, kind: KindRef, selector: str | None, limit: int | None,
        field_selector: str | None = None,
    ) -> AsyncGenerator[httpx.Response]:
        call: Call | None = calls.list_call(self._info(kind), selector, limit, field_selector)
        while call is not None:
            response = await self._send(call, kind)
            yield response
            call = calls.next_page_call(response)

    async def _send(self, call: Call, kind: KindRef) -> httpx.Response:
        return self._warn(await send_async(self.http, self._versioned(call, kind), self.retry))

    async def _object(self, call: Call, kind: KindRef) -> JSON:
        return _object(await self._send(call, kind))


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise FabricaError(response.status_code,
                           f"{response.request.url} did not answer with JSON") from None


def _readiness(response: httpx.Response) -> JSON:
    if response.status_code not in (200, 503):
        raise error_from_response(response)
    body = _body(response)
    if not isinstance(body, dict) or "status" not in body:
        raise FabricaError(response.status_code, f"{response.request.url}: not a readiness "
                           "answer")
    return body


def _object(response: httpx.Response) -> JSON:
    body = _body(response)
    if not isinstance(body, dict):
        raise FabricaError(response.status_code, f"{response.request.url}: expected an object")
    return body


def _page(response: httpx.Response) -> tuple[JSONList, str | None]:
    return _items(response), response.headers.get(RESOURCE_VERSION_HEADER)


def _joined(pages: Iterable[tuple[JSONList, str | None]]) -> tuple[JSONList, str | None]:
    """A paged list's items and the first page's ``X-Resource-Version``."""
    items: JSONList = []
    version: str | None = None
    for page, page_version in pages:
        version = version or page_version
        items.extend(page)
    return items, version


def _items(response: httpx.Response) -> JSONList:
    """A list page: a JSON array, or ``{"items": [...]}`` as Kubernetes lists are shaped."""
    body = _body(response)
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        body = body["items"]
    if not isinstance(body, list):
        raise FabricaError(response.status_code, f"{response.request.url}: expected a list")
    return body
