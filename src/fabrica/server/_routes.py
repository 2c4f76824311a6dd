"""The REST endpoints of one kind: ``/PLURAL``, ``/PLURAL/{id}``, its status and versions.

Each handler parses the request, hands the store one operation and renders the answer.
Writes are the store's `modify`: a client that states a precondition (``If-Match``, or
``metadata.resourceVersion`` in an envelope PUT) gets 412 or 409 when it does not hold; a
client that states none gets its change applied to the current state, the store re-reading
and retrying when another writer slipped in between. Either way no write is lost silently.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..resource import Resource, SelectorError, parse_selector
from ..store import ResourceStore
from ._body import (
    WriteRequest,
    parse_status,
    parse_write,
    read_json,
    read_json_object,
    validate_model,
)
from ._conditional import etag, etag_of, if_match_precondition, if_none_match_hits
from ._errors import APIError
from ._paging import decode_continue, encode_continue, parse_limit
from ._patch import apply_patch, patch_format
from ._table import ID_PARAM, VERSION_PARAM, kind_operations

__all__ = ["KindEndpoints"]

_JSON = "application/json"

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
    ) -> None:
        self.cls = cls
        self.info = cls.resource_info
        self.store = store
        self.max_body_size = max_body_size
        self.validation_mode = validation_mode

    def routes(self) -> list[Route]:
        """One route per path, so a 405 lists every method of that path in ``Allow``."""
        table: dict[str, dict[str, Handler]] = {}
        for op in kind_operations(self.info):
            table.setdefault(op.path, {})[op.method] = getattr(self, op.name)
        return [Route(path, _by_method(handlers), methods=list(handlers))
                for path, handlers in table.items()]

    # -- collection ----------------------------------------------------------------------

    async def list(self, request: Request) -> Response:
        query = request.query_params
        try:
            selector = parse_selector(query.get("labelSelector"))
        except SelectorError as exc:
            raise APIError(400, f"invalid labelSelector: {exc}",
                           [{"field": "labelSelector", "message": str(exc)}]) from None
        limit = parse_limit(query.get("limit"))
        after = decode_continue(query.get("continue"))
        items = await self.store.list_wire(
            self.cls, selector=selector, limit=limit + 1 if limit else None, after=after
        )
        headers = {}
        if limit and len(items) > limit:
            items = items[:limit]
            next_url = request.url.include_query_params(
                **{"continue": encode_continue(items[-1][0])}
            )
            headers["Link"] = f'<{next_url.path}?{next_url.query}>; rel="next"'
        body = b"[" + b",".join(wire for _, wire in items) + b"]"
        return Response(body, media_type=_JSON, headers=headers)

    async def create(self, request: Request) -> Response:
        write = await self._read_write(request)
        if write.name is None:
            raise APIError(400, "name is required",
                           [{"field": "metadata.name", "message": "Field required"}])
        obj = await self.store.create(
            self.cls, write.name, write.spec, labels=write.labels, annotations=write.annotations,
            owner_references=write.owner_references, finalizers=write.finalizers,
        )
        headers = {"Location": f"/{self.info.plural}/{obj.uid}", **_warning(write.warnings)}
        return _resource(obj, 201, headers)

    # -- one resource --------------------------------------------------------------------

    async def get(self, request: Request) -> Response:
        doc = await self.store.get_document(self.cls, request.path_params[ID_PARAM])
        tag = etag_of(doc["metadata"]["resourceVersion"])
        if if_none_match_hits(request, tag):
            return Response(status_code=304, headers={"ETag": tag})
        return Response(self.store.wire(self.cls, doc), media_type=_JSON, headers={"ETag": tag})

    async def replace(self, request: Request) -> Response:
        write = await self._read_write(request)

        def change(current: AnyResource) -> AnyResource:
            if write.name is not None and write.name != current.name:
                raise APIError(400, "metadata.name is immutable",
                               [{"field": "metadata.name", "message": "cannot be changed"}])
            return _with_write(current, write)

        updated = await self.store.modify(
            self.cls, request.path_params[ID_PARAM], change,
            precondition=if_match_precondition(request), expected_version=write.resource_version)
        return _resource(updated, headers=_warning(write.warnings))

    async def patch(self, request: Request) -> Response:
        return await self._patch(request, "spec")

    async def delete(self, request: Request) -> Response:
        obj = await self.store.delete(self.cls, request.path_params[ID_PARAM],
                                      precondition=if_match_precondition(request))
        if obj.metadata.finalizers:  # marked, not yet removed: Kubernetes answers the same way
            return JSONResponse({
                "message": f"{self.info.kind} deletion pending: waiting for finalizers "
                           + ", ".join(obj.metadata.finalizers),
                "uid": obj.uid,
                "finalizers": obj.metadata.finalizers,
            })
        return JSONResponse({"message": f"{self.info.kind} deleted successfully", "uid": obj.uid})

    async def replace_status(self, request: Request) -> Response:
        body = await read_json_object(request, self.max_body_size)
        status, warnings = parse_status(self.info, body, self.validation_mode)
        updated = await self.store.modify(
            self.cls, request.path_params[ID_PARAM],
            lambda current: current.model_copy(update={"status": status}), part="status",
            precondition=if_match_precondition(request))
        return _resource(updated, headers=_warning(warnings))

    async def patch_status(self, request: Request) -> Response:
        return await self._patch(request, "status")

    # -- versions ------------------------------------------------------------------------

    async def list_versions(self, request: Request) -> Response:
        return JSONResponse(await self.store.list_versions(self.cls, request.path_params[ID_PARAM]))

    async def get_version(self, request: Request) -> Response:
        params = request.path_params
        return JSONResponse(await self.store.get_version(self.cls, params[ID_PARAM],
                                                         params[VERSION_PARAM]))

    async def delete_version(self, request: Request) -> Response:
        params = request.path_params
        version = params[VERSION_PARAM]
        await self.store.delete_version(self.cls, params[ID_PARAM], version)
        return JSONResponse({"message": f"version {version} deleted", "versionId": version})

    # -- helpers -------------------------------------------------------------------------

    async def _patch(self, request: Request, field: Literal["spec", "status"]) -> Response:
        """PATCH of the spec (the resource's main part) or of the status subresource."""
        fmt = patch_format(request.headers.get("content-type"))
        body = await read_json(request, self.max_body_size)
        warnings: list[str] = []

        def change(current: AnyResource) -> AnyResource:
            value = self._patched(getattr(current, field), body, fmt, field, warnings)
            return current.model_copy(update={field: value})

        updated = await self.store.modify(
            self.cls, request.path_params[ID_PARAM], change, action="patched",
            part="status" if field == "status" else "main",
            precondition=if_match_precondition(request))
        return _resource(updated, headers=_warning(warnings))

    def _patched(
        self, current: BaseModel, patch: Any, fmt: str, path: str, warnings: builtins.list[str]
    ) -> BaseModel:
        document = current.model_dump(mode="json", by_alias=True)
        result = apply_patch(document, patch, fmt)
        if not isinstance(result, dict):
            raise APIError(400, f"the patched {path} is not a JSON object")
        model = type(current)
        value, found = validate_model(model, result, self.validation_mode, path)
        warnings[:] = found
        return value

    async def _read_write(self, request: Request) -> WriteRequest:
        body = await read_json_object(request, self.max_body_size)
        return parse_write(self.info, body, self.validation_mode)


def _by_method(handlers: dict[str, Handler]) -> Handler:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


def _with_write(current: AnyResource, write: WriteRequest) -> AnyResource:
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
        update={"spec": write.spec, "metadata": current.metadata.model_copy(update=metadata_update)}
    )


def _resource(obj: AnyResource, status: int = 200, headers: dict[str, str] | None = None
              ) -> Response:
    return Response(obj.model_dump_json(), status_code=status, media_type=_JSON,
                    headers={"ETag": etag(obj), **(headers or {})})


def _warning(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    # JSON's string syntax is a valid HTTP quoted-string, and all ASCII: a field name a client
    # made up (quotes, newlines, any script) can neither break the header nor fail to encode.
    return {"Warning": ", ".join(f"299 - {json.dumps(w)}" for w in warnings)}
