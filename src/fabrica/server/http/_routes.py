"""The REST endpoints of one kind: ``/PLURAL``, ``/PLURAL/{id}``, its status and versions.

Each handler parses the request, hands the store one operation and renders the answer.
Writes are the store's `modify`: a client that states a precondition (``If-Match``, or
``metadata.resourceVersion`` in an envelope PUT) gets 412 or 409 when it does not hold; a
client that states none gets its change applied to the current state, the store re-reading
and retrying when another writer slipped in between. Either way no write is lost silently.

Each handler also negotiates the API version (`_negotiate.py`): it reads and writes in the
version the request names, converting to and from the storage version at the edges, so the
store and everything behind it only ever see the storage version.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ...resource import (
    ApiVersions,
    ConversionError,
    Resource,
    ResourceInfo,
    Selector,
    SelectorError,
    Verb,
    keep_left_out,
    left_out,
    parse_selector,
    redact_spec,
    sensitive_exclude,
)
from ...store import ResourceStore, ResourceVersionTooLarge, WatchCache, error_line
from ._body import (
    WriteRequest,
    check_json_content_type,
    check_new_name,
    parse_status,
    parse_write,
    read_json,
    read_json_object,
    validate_model,
)
from ._bounds import measure
from ._conditional import etag, etag_of, if_match_precondition, if_none_match_hits
from ._dry_run import parse_dry_run
from ._errors import APIError, validation_details
from ._fields import with_fields
from ._negotiate import Negotiated, Negotiator, warning_header
from ._paging import decode_continue, encode_continue, parse_limit
from ._patch import apply_patch, patch_format
from ._reads import ReadHeaders
from ._table import ID_PARAM, VERSION_PARAM, kind_operations
from ._watch import WatchParams, WatchStreams, parse_watch_params

__all__ = ["RESOURCE_VERSION_HEADER", "KindEndpoints"]

#: On every list: the revision the list is exactly at, from which a watch continues.
RESOURCE_VERSION_HEADER = "X-Resource-Version"
_RESOURCE_VERSION_KEY = RESOURCE_VERSION_HEADER.lower().encode("latin-1")

AnyResource = Resource[Any, Any]
Handler = Callable[[Request], Awaitable[Response]]


class KindEndpoints:
    """Handlers for one resource kind, bound to a store and the server's limits."""

    def __init__(
        self,
        cls: type[AnyResource],
        store: ResourceStore,
        *,
        max_body_size: int,
        validation_mode: str,
        cache: WatchCache,
        streams: WatchStreams,
        api_versions: ApiVersions | None = None,
    ) -> None:
        self.cls = cls
        self.info = cls.resource_info
        self.store = store
        self.cache = cache
        self.streams = streams
        # A kind's own max_body_size= replaces the server's limit for its requests.
        self.max_body_size = self.info.rules.max_body_size or max_body_size
        self.validation_mode = validation_mode
        self.versions = api_versions or store.api_versions.of(cls)
        self.negotiate = Negotiator(self.versions)
        self._read_headers: dict[str, ReadHeaders] = {}

    def routes(self) -> list[Route]:
        """One route per path, so a 405 lists every method of that path in ``Allow``; a
        verb the kind leaves out (``verbs=``) is such a 405 too, and an ``internal`` kind
        has no routes at all."""
        if not self.info.rules.served:
            return []
        table: dict[str, dict[str, Handler]] = {}
        not_offered_by_path: dict[str, dict[str, Verb]] = {}
        for op in kind_operations(self.info):
            handlers = table.setdefault(op.path, {})
            if op.offered(self.info):
                handlers[op.method] = getattr(self, op.name)
            else:
                not_offered_by_path.setdefault(op.path, {})[op.method] = op.verbs[0]
        return [_KindRoute(path, by_method(handlers, self.info,
                                           not_offered_by_path.get(path, {})),
                           methods=list(handlers))
                for path, handlers in table.items()]

    # -- collection ----------------------------------------------------------------------

    async def list(self, request: Request) -> Response:
        query = request.query_params
        try:
            selector = parse_selector(query.get("labelSelector"))
        except SelectorError as exc:
            raise APIError(400, f"invalid labelSelector: {exc}",
                           [{"field": "labelSelector", "message": str(exc)}]) from None
        selector = with_fields(selector, query.get("fieldSelector"), self.info.rules)
        watch = parse_watch_params(query)
        self._offers("watch" if watch.watch and request.method == "GET" else "list")
        limit = parse_limit(query.get("limit"))
        after = decode_continue(query.get("continue"))
        version = self.negotiate.read_accept(request.headers.get("accept"))
        if watch.watch and request.method == "GET":  # (a HEAD is answered as a list)
            return await self._watch(selector, watch, version)
        revision, items = await self.cache.list(
            self.cls, selector=selector or None, limit=limit + 1 if limit else None,
            after=after)
        extra = [(_RESOURCE_VERSION_KEY, str(revision).encode("latin-1"))]
        if limit and len(items) > limit:
            items = items[:limit]
            next_url = request.url.include_query_params(
                **{"continue": encode_continue(items[-1].name)}
            )
            extra.append((b"link", f'<{next_url.path}?{next_url.query}>; rel="next"'
                          .encode("latin-1")))
        body = b"[" + b",".join(item.wire(version) for item in items) + b"]"
        return self._reads(version).response(200, body, *extra)

    async def _watch(self, selector: Selector, params: WatchParams, version: str) -> Response:
        try:
            watcher = await self.cache.watch(
                self.cls, resource_version=params.resource_version,
                selector=selector or None, api_version=version)
        except ResourceVersionTooLarge as exc:
            # Kubernetes' "too large resource version" (a Status 504 Timeout), as the one
            # event of a watch stream, like the 410 of a version too old: what the client
            # sent is not a server failure, so no 5xx status line.
            line = error_line(504, "Timeout", str(exc),
                              {"retryAfterSeconds": exc.retry_after})
            return Response(line, media_type="application/x-ndjson",
                            headers=self._headers(version))
        return self.streams.response(watcher, params, self._headers(version))  # type: ignore[return-value]

    async def create(self, request: Request) -> Response:
        dry_run = parse_dry_run(request.query_params)
        write, version = await self._read_write(request)
        name = check_new_name(self.info, write)
        spec = _to_storage(self.versions, version.body, "spec", write.spec)
        obj = await self.store.create(
            self.cls, name, spec, labels=write.labels, annotations=write.annotations,
            owner_references=write.owner_references, finalizers=write.finalizers,
            dry_run=dry_run,
        )
        location = {} if dry_run else {"Location": f"/{self.info.plural}/{obj.uid}"}
        return self._resource(obj, version, write.warnings, 201, location)

    # -- one resource --------------------------------------------------------------------

    async def get(self, request: Request) -> Response:
        version = self.negotiate.read_accept(request.headers.get("accept"))
        found = await self.cache.get(self.cls, request.path_params[ID_PARAM])
        tag = etag_of(found.resource_version)
        read = self._reads(version)
        etag_header = (b"etag", tag.encode("latin-1"))
        if if_none_match_hits(request, tag):
            return read.response(304, None, etag_header)
        return read.response(200, found.wire(version), etag_header)

    async def replace(self, request: Request) -> Response:
        dry_run = parse_dry_run(request.query_params)
        write, version = await self._read_write(request)

        def change(current: AnyResource) -> AnyResource:
            if write.name is not None and write.name != current.name:
                # The body is fine; it conflicts with the resource it is sent to: 409.
                raise APIError(409, f"metadata.name is immutable: this resource is named "
                               f"{current.name!r}", [{"field": "metadata.name",
                                                      "message": "cannot be changed"}])
            spec = _to_storage(self.versions, version.body, "spec", write.spec, current.spec)
            # A sensitive field left out keeps its value: the client never saw it.
            spec = keep_left_out(spec, current.spec, left_out(write.spec))
            return _with_write(current, write, spec)

        updated = await self.store.modify(
            self.cls, request.path_params[ID_PARAM], change,
            precondition=if_match_precondition(request), expected_version=write.resource_version,
            dry_run=dry_run)
        return self._resource(updated, version, write.warnings)

    async def patch(self, request: Request) -> Response:
        return await self._patch(request, "spec")

    async def delete(self, request: Request) -> Response:
        headers = self._headers(self.negotiate.read(request))
        obj = await self.store.delete(self.cls, request.path_params[ID_PARAM],
                                      precondition=if_match_precondition(request),
                                      dry_run=parse_dry_run(request.query_params))
        if obj.metadata.finalizers:  # marked, not yet removed: Kubernetes answers the same way
            return JSONResponse({
                "message": f"{self.info.kind} deletion pending: waiting for finalizers "
                           + ", ".join(obj.metadata.finalizers),
                "uid": obj.uid,
                "finalizers": obj.metadata.finalizers,
            }, headers=headers)
        return JSONResponse({"message": f"{self.info.kind} deleted successfully", "uid": obj.uid},
                            headers=headers)

    async def replace_status(self, request: Request) -> Response:
        dry_run = parse_dry_run(request.query_params)
        check_json_content_type(request)
        body = await read_json_object(request, self.max_body_size)
        version = self.negotiate.write(request, body)
        status, warnings = parse_status(self.negotiate.view(version.body), body,
                                        self.validation_mode)

        def change(current: AnyResource) -> AnyResource:
            stored = _to_storage(self.versions, version.body, "status", status, current.status)
            return current.model_copy(update={"status": stored})

        updated = await self.store.modify(
            self.cls, request.path_params[ID_PARAM], change, part="status",
            precondition=if_match_precondition(request), dry_run=dry_run)
        return self._resource(updated, version, warnings)

    async def patch_status(self, request: Request) -> Response:
        return await self._patch(request, "status")

    # -- versions ------------------------------------------------------------------------

    async def list_versions(self, request: Request) -> Response:
        version = self.negotiate.read(request)
        snapshots = await self.store.list_versions(self.cls, request.path_params[ID_PARAM])
        return JSONResponse([self._snapshot(s, version) for s in snapshots],
                            headers=self._headers(version))

    async def get_version(self, request: Request) -> Response:
        version = self.negotiate.read(request)
        params = request.path_params
        snapshot = await self.store.get_version(self.cls, params[ID_PARAM],
                                                params[VERSION_PARAM])
        return JSONResponse(self._snapshot(snapshot, version), headers=self._headers(version))

    async def delete_version(self, request: Request) -> Response:
        headers = self._headers(self.negotiate.read(request))
        params = request.path_params
        version_id = params[VERSION_PARAM]
        await self.store.delete_version(self.cls, params[ID_PARAM], version_id)
        return JSONResponse({"message": f"version {version_id} deleted",
                             "versionId": version_id}, headers=headers)

    # -- helpers -------------------------------------------------------------------------

    def _offers(self, verb: Verb) -> None:
        """List and watch share a path and a method: the one left out is a 405 here."""
        if not self.info.rules.allows(verb):
            raise not_offered(self.info, verb, allowed_methods(self.info, f"/{self.info.plural}"))

    async def _patch(self, request: Request, field: Literal["spec", "status"]) -> Response:
        """PATCH of the spec (the resource's main part) or of the status subresource."""
        fmt = patch_format(request.headers.get("content-type"))
        dry_run = parse_dry_run(request.query_params)
        version = self.negotiate.write(request)
        body = await read_json(request, self.max_body_size)
        warnings: list[str] = []

        def change(current: AnyResource) -> AnyResource:
            value = self._patched(getattr(current, field), body, fmt, field, version.body,
                                  warnings)
            return current.model_copy(update={field: value})

        updated = await self.store.modify(
            self.cls, request.path_params[ID_PARAM], change, action="patched",
            part="status" if field == "status" else "main",
            precondition=if_match_precondition(request), dry_run=dry_run)
        return self._resource(updated, version, warnings)

    def _patched(
        self, current: BaseModel, patch: Any, fmt: str, path: str, version: str,
        warnings: builtins.list[str],
    ) -> BaseModel:
        """`patch` applied to `current` (storage) as `version` shows it, back in storage."""
        shown = self.versions.from_storage(version, path, current)
        # Without its sensitive values: a patch can neither read them (a JSON Patch "copy"
        # or "test") nor needs to; one it does not set keeps its value.
        document = redact_spec(type(shown), shown.model_dump(mode="json", by_alias=True))
        # As large as a body may be, or as the document already is: never larger.
        limit = max(self.max_body_size, measure(document, sys.maxsize, sys.maxsize)[0])
        result = apply_patch(document, patch, fmt, limit, path)
        if not isinstance(result, dict):
            raise APIError(400, f"the patched {path} is not a JSON object")
        value, found = validate_model(type(shown), result, self.validation_mode, path)
        warnings[:] = found
        stored = _to_storage(self.versions, version, path, value, current)
        return keep_left_out(stored, current, left_out(value))

    async def _read_write(self, request: Request) -> tuple[WriteRequest, Negotiated]:
        check_json_content_type(request)
        body = await read_json_object(request, self.max_body_size)
        version = self.negotiate.write(request, body)
        view = self.negotiate.view(version.body)
        return parse_write(view, body, self.validation_mode), version

    def _reads(self, version: str) -> ReadHeaders:
        read = self._read_headers.get(version)
        if read is None:
            read = self._read_headers[version] = ReadHeaders(
                self._headers(version), self.negotiate.media_type(version))
        return read

    def _headers(self, version: str) -> dict[str, str]:
        return {**self.negotiate.headers(version),
                **warning_header(self.negotiate.deprecation(version))}

    def _resource(self, obj: AnyResource, version: Negotiated, warnings: builtins.list[str],
                  status: int = 200, headers: dict[str, str] | None = None) -> Response:
        shown = self.versions.to_version(obj, version.response)
        texts = [*self.negotiate.deprecation(version.response), *warnings]
        # (a dry-run create has no resourceVersion, so no ETag)
        tag = {"ETag": etag(obj)} if obj.metadata.resource_version else {}
        return Response(shown.model_dump_json(exclude=sensitive_exclude(type(shown))),
                        status_code=status,
                        media_type=self.negotiate.media_type(version.response),
                        headers={**tag, **self.negotiate.headers(version.response),
                                 **warning_header(texts), **(headers or {})})

    def _snapshot(self, snapshot: dict[str, Any], version: str) -> dict[str, Any]:
        """A spec-history snapshot with its spec in API version `version`."""
        stored_in = snapshot.get("schemaVersion", self.info.version)
        if stored_in == version or not self.versions.is_served(stored_in):
            return _without_secrets(self.versions, stored_in, snapshot)
        spec = self.versions.spec_type(stored_in).model_validate(snapshot.get("spec", {}))
        spec = _to_storage(self.versions, stored_in, "spec", spec)
        shown = self.versions.from_storage(version, "spec", spec)
        return {**snapshot, "schemaVersion": version,
                "spec": redact_spec(type(shown), shown.model_dump(mode="json", by_alias=True))}


class _KindRoute(Route):
    """A route whose endpoint answers every method, its 405s included (`by_method` names
    the verb a kind left out); `methods` still says what is offered (a path with none
    offered has an empty list)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def by_method(handlers: dict[str, Handler], info: ResourceInfo,
              not_offered_verbs: dict[str, Verb] | None = None) -> Handler:
    """The endpoint of one path: `handlers` by method; any other method is a 405 listing
    those, naming the verb when it is one the kind left out."""
    allow = ", ".join(_with_head(handlers))

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler = handlers.get(method)
        if handler is not None:
            return await handler(request)
        if not_offered_verbs and method in not_offered_verbs:
            raise not_offered(info, not_offered_verbs[method], allow)
        raise APIError(405, "Method Not Allowed", headers={"Allow": allow})

    return endpoint


def allowed_methods(info: ResourceInfo, path: str) -> str:
    """The ``Allow`` value of one of the kind's paths."""
    return ", ".join(_with_head({op.method: None for op in kind_operations(info)
                                 if op.path == path and op.offered(info)}))


def not_offered(info: ResourceInfo, verb: Verb, allow: str) -> APIError:
    offered = ", ".join(sorted(info.rules.verbs)) or "none"
    return APIError(405, f"{info.kind} does not offer {verb} (its verbs: {offered})",
                    headers={"Allow": allow})


def _with_head(methods: Iterable[str]) -> list[str]:
    listed = list(methods)
    return [*(m for m in listed if m == "GET"), *(["HEAD"] if "GET" in listed else []),
            *(m for m in listed if m != "GET")]


def _to_storage(versions: ApiVersions, version: str, half: str, value: BaseModel,
                stored: BaseModel | None = None) -> BaseModel:
    """A spec or status written in `version`, in storage shape; bad client input is a 400."""
    try:
        return versions.to_storage(version, half, value, stored)
    except ConversionError as exc:
        details = None
        if isinstance(exc.errors, ValidationError):
            details = validation_details(exc.errors, half)
        raise APIError(400, str(exc), details) from None


def _without_secrets(versions: ApiVersions, version: str, snapshot: dict[str, Any]
                     ) -> dict[str, Any]:
    """A snapshot as stored, without sensitive values (one written before its field was
    marked may hold them)."""
    spec = snapshot.get("spec")
    if not isinstance(spec, dict) or not versions.is_served(version):
        return snapshot
    return {**snapshot, "spec": redact_spec(versions.spec_type(version), spec)}


def _with_write(current: AnyResource, write: WriteRequest, spec: BaseModel) -> AnyResource:
    metadata_update: dict[str, Any] = {}
    if write.labels is not None:
        metadata_update["labels"] = write.labels
    if write.annotations is not None:
        metadata_update["annotations"] = write.annotations
    if write.finalizers is not None:
        metadata_update["finalizers"] = write.finalizers
    if write.owner_references is not None:
        metadata_update["owner_references"] = write.owner_references
    return current.model_copy(
        update={"spec": spec, "metadata": current.metadata.model_copy(update=metadata_update)}
    )
