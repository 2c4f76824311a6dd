"""`Client`: the typed, synchronous client of a fabrica service.

Methods take the resource class first and return instances of it, so a script reads like
the resource definitions it works with::

    with Client("http://localhost:8080", kinds=[Device]) as client:
        dev = client.create(Device, name="web-01", spec=DeviceSpec(type="server", ...))
        dev = client.update_with_retry(Device, "web-01", lambda d: d.spec.tags.update(a="b"))

The wire work (paths, paging, retries, errors) is `RawClient`'s, reachable as ``client.raw``
when the exact server JSON is wanted.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any

import httpx

from ..events import CloudEvent
from ..resource import Resource, ServedVersion
from ._calls import to_json
from ._errors import Conflict, PreconditionFailed
from ._raw import DEFAULT_SERVER, DEFAULT_TIMEOUT, JSON, JSONList, RawClient
from ._typed import Body, R, create_body, item_id, resolve, split_target, update_body
from ._watch import WatchEvent, typed_event

__all__ = ["Client"]


class Client:
    """Synchronous typed client.

    `base_url` is the service root; `kinds` are the resource classes that may be named by
    their lower-case kind (``"device"``) instead of by class. `transport` is any
    ``httpx.BaseTransport`` (tests pass a mock or WSGI one). Connection errors on GET, PUT and
    DELETE are retried `retries` times, waiting `backoff` seconds, doubling each time.
    `token` is a bearer token (a JWT) sent with every request, for services with auth on;
    a missing or refused one raises `Unauthorized` (401) or `Forbidden` (403).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_SERVER,
        kinds: Iterable[type[Resource[Any, Any]]] = (),
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.2,
        headers: Mapping[str, str] | None = None,
        api_version: str | None = None,
        versions: Iterable[type[ServedVersion[Any, Any]]] = (),
        on_warning: Callable[[str], None] | None = None,
        token: str | None = None,
    ) -> None:
        self.raw = RawClient(base_url, kinds, transport=transport, timeout=timeout,
                             retries=retries, backoff=backoff, headers=headers,
                             api_version=api_version, versions=versions, on_warning=on_warning,
                             token=token)
        self.kinds = self.raw.kinds

    def close(self) -> None:
        self.raw.close()

    def health(self) -> JSON:
        """``GET /health`` (SPEC section 13): the process is alive; its service, instance,
        version and kinds."""
        return self.raw.health()

    def ready(self) -> JSON:
        """``GET /ready``: ``status`` is ``ready`` or ``not ready``, ``checks`` says which
        part is not (a 503 is answered, not raised)."""
        return self.raw.ready()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def iter_list(
        self, kind: type[R] | str, selector: str | None = None, limit: int | None = None, *,
        field_selector: str | None = None,
    ) -> Iterator[R]:
        """Every matching resource, fetching pages of `limit` lazily as you iterate.
        `selector` selects by labels, `field_selector` by fields (``"spec.mac=aa:bb"``,
        ``"status.phase=Ready,metadata.name!=x"``: the kind's Indexed fields, metadata.name
        and status.phase; the server answers others with 400)."""
        cls = resolve(self.kinds, kind)
        for page in self.raw.iter_pages(cls, selector, limit, field_selector=field_selector):
            yield from (cls.model_validate(item) for item in page)

    def list(
        self, kind: type[R] | str, selector: str | None = None, limit: int | None = None, *,
        field_selector: str | None = None,
    ) -> list[R]:
        """All matching resources across all pages; `limit` is the page size asked for."""
        return list(self.iter_list(kind, selector, limit, field_selector=field_selector))

    def watch(
        self,
        kind: type[R] | str,
        label_selector: str | None = None,
        *,
        resource_version: str | None = None,
        allow_bookmarks: bool = False,
        timeout_seconds: int | None = None,
        field_selector: str | None = None,
    ) -> Generator[WatchEvent[R]]:
        """Follow the changes of `kind` (``GET /PLURAL?watch=true``, SPEC section 8), each a
        `WatchEvent` whose object is an instance of the class, until the server ends the
        stream (`timeout_seconds`, or it stops) or you stop iterating.

        Without `resource_version` every current match comes first as ``ADDED``; with one
        (a list's, see `list_with_version`, or an event's), every change after it, in order.
        `label_selector` narrows it (``"env=prod"``), and `field_selector` (``"spec.mac=x"``,
        as for `list`: a resource whose field changes out of it is ``DELETED``, into it
        ``ADDED``); `allow_bookmarks` lets the server send
        ``BOOKMARK`` events that only move `resource_version` on. A version too old for the
        server raises `Expired` (list again); a broken connection `ConnectionFailed`. A quiet
        watch waits forever: no read timeout applies. `Informer` does the listing, resuming
        and relisting for you.
        """
        cls = resolve(self.kinds, kind)
        events = self.raw.watch(cls, label_selector, resource_version=resource_version,
                                allow_bookmarks=allow_bookmarks, timeout_seconds=timeout_seconds,
                                field_selector=field_selector)
        with contextlib.closing(events):
            for event in events:
                yield typed_event(event, cls.model_validate)

    def list_with_version(
        self, kind: type[R] | str, label_selector: str | None = None, *,
        field_selector: str | None = None,
    ) -> tuple[builtins.list[R], str | None]:
        """All matching resources and the ``resourceVersion`` a `watch` continues from
        without a gap (the list's ``X-Resource-Version``; None from a server without it)."""
        cls = resolve(self.kinds, kind)
        items, version = self.raw.list_with_version(cls, label_selector,
                                                    field_selector=field_selector)
        return [cls.model_validate(item) for item in items], version

    def get(self, kind: type[R] | str, id: str) -> R:
        """One resource by uid or name."""
        cls = resolve(self.kinds, kind)
        return cls.model_validate(self.raw.get(cls, id))

    def create(
        self,
        kind: type[R] | str,
        name: str,
        spec: Body,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> R:
        """Create a resource; `spec` is the Spec model or a dict of its JSON fields."""
        cls = resolve(self.kinds, kind)
        body = create_body(name, spec, labels, annotations)
        return cls.model_validate(self.raw.create(cls, body))

    def update(self, obj: R, if_match: str | None = None) -> R:
        """Replace spec, labels and annotations with `obj`'s.

        Sends `obj`'s ``resourceVersion``, so the server answers `Conflict` if someone else
        wrote since `obj` was read; `update_with_retry` handles that for you.
        """
        body = update_body(obj)
        return type(obj).model_validate(self.raw.replace(type(obj), item_id(obj), body, if_match))

    def patch(
        self,
        kind: type[R] | str,
        id: str,
        patch: Any,
        patch_type: str = "merge",
        if_match: str | None = None,
    ) -> R:
        """Patch the spec: `patch_type` ``merge`` (RFC 7386), ``json`` (RFC 6902, a list of
        operations) or ``shorthand`` (``{"a.b": 1, "c": None}``)."""
        cls = resolve(self.kinds, kind)
        return cls.model_validate(self.raw.patch(cls, id, patch, patch_type, if_match))

    def update_status(
        self,
        target: R | type[R] | str | tuple[type[R] | str, str],
        *args: Any,
        if_match: str | None = None,
    ) -> R:
        """Replace the status: ``update_status(obj)`` sends ``obj.status``;
        ``update_status(obj, status)``, ``update_status(Device, id, status)`` and
        ``update_status((Device, id), status)`` send `status` (model or dict)."""
        kind, id, status = split_target(target, args, "status", own_status=True)
        cls: type[R] = resolve(self.kinds, kind)
        return cls.model_validate(self.raw.replace_status(cls, id, to_json(status), if_match))

    def patch_status(
        self,
        target: R | type[R] | str | tuple[type[R] | str, str],
        *args: Any,
        patch_type: str = "merge",
        if_match: str | None = None,
    ) -> R:
        """Patch the status: ``patch_status(obj, patch)`` or ``patch_status(Device, id, patch)``."""
        kind, id, patch = split_target(target, args, "patch")
        cls: type[R] = resolve(self.kinds, kind)
        return cls.model_validate(self.raw.patch_status(cls, id, patch, patch_type, if_match))

    def delete(
        self, kind: type[Resource[Any, Any]] | str, id: str, if_match: str | None = None
    ) -> JSON:
        """Delete; returns the server's ``{"message", "uid"}``."""
        return self.raw.delete(kind, id, if_match)

    def versions(self, kind: type[Resource[Any, Any]] | str, id: str) -> JSONList:
        """The spec history of a resource whose kind has ``versioning=True``: snapshots
        ``{"versionId", "createdAt", "spec", ...}``, kept as JSON since they are not resources."""
        return self.raw.versions(kind, id)

    def get_version(
        self, kind: type[Resource[Any, Any]] | str, id: str, version: str
    ) -> JSON:
        """One snapshot of the spec history, e.g. ``get_version(Config, "c1", "v2")``."""
        return self.raw.get_version(kind, id, version)

    def delete_version(
        self, kind: type[Resource[Any, Any]] | str, id: str, version: str
    ) -> JSON:
        """Drop one snapshot from the spec history."""
        return self.raw.delete_version(kind, id, version)

    def watch_events(
        self, pattern: str | None = None, on_open: Callable[[], None] | None = None
    ) -> Generator[CloudEvent]:
        """Follow ``GET /events``: each CloudEvent published from now on whose type matches
        `pattern` (e.g. ``"io.fabrica.device.*"``; all when None), until the server closes
        the stream or you stop iterating. `on_open` runs once the server has subscribed:
        read the current state there, and the events that follow miss nothing after it."""
        for event in self.raw.watch_events(pattern, on_open):
            yield CloudEvent.from_dict(event)

    def update_with_retry(
        self,
        kind: type[R] | str,
        id: str,
        mutate: Callable[[R], R | None],
        attempts: int = 5,
    ) -> R:
        """Read, `mutate` (in place, or return a new object), `update`; on a conflict read
        again and re-apply, so the change lands on the current version and none is lost."""
        for attempt in range(attempts):
            obj = self.get(kind, id)
            obj = mutate(obj) or obj
            try:
                return self.update(obj)
            except (Conflict, PreconditionFailed):
                if attempt + 1 == attempts:
                    raise
        raise ValueError("attempts must be at least 1")
