"""The REST endpoints of one kind: ``/PLURAL``, ``/PLURAL/{id}``, ``/PLURAL/{id}/status``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..resource import Resource
from ..storage import Conflict
from ..store import ResourceStore
from ._body import WriteRequest, parse_status, parse_write, read_json_object
from ._errors import APIError

__all__ = ["KindEndpoints"]

_JSON = "application/json"
# Unconditional writes re-read and retry when another writer slipped in between.
_RETRIES_WITHOUT_PRECONDITION = 8


class KindEndpoints:
    """Handlers for one resource kind, bound to a store and the server's limits."""

    def __init__(
        self,
        cls: type[Resource[Any, Any]],
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
        base = f"/{self.info.plural}"
        return [
            Route(base, self.list, methods=["GET"]),
            Route(base, self.create, methods=["POST"]),
            Route(base + "/{id}", self.get, methods=["GET"]),
            Route(base + "/{id}", self.replace, methods=["PUT"]),
            Route(base + "/{id}", self.delete, methods=["DELETE"]),
            Route(base + "/{id}/status", self.replace_status, methods=["PUT"]),
        ]

    async def list(self, request: Request) -> Response:
        items = await self.store.list(self.cls)
        body = b"[" + b",".join(item.model_dump_json().encode() for item in items) + b"]"
        return Response(body, media_type=_JSON)

    async def create(self, request: Request) -> Response:
        write = await self._read_write(request)
        if write.name is None:
            raise APIError(400, "name is required",
                           [{"field": "metadata.name", "message": "Field required"}])
        obj = await self.store.create(
            self.cls, write.name, write.spec, labels=write.labels, annotations=write.annotations
        )
        headers = {"Location": f"/{self.info.plural}/{obj.uid}", **_warning(write.warnings)}
        return _resource(obj, 201, headers)

    async def get(self, request: Request) -> Response:
        return _resource(await self.store.get(self.cls, request.path_params["id"]))

    async def replace(self, request: Request) -> Response:
        write = await self._read_write(request)
        for _ in range(_RETRIES_WITHOUT_PRECONDITION):
            current = await self.store.get(self.cls, request.path_params["id"])
            if write.name is not None and write.name != current.name:
                raise APIError(400, "metadata.name is immutable",
                               [{"field": "metadata.name", "message": "cannot be changed"}])
            wanted = _with_write(current, write)
            try:
                updated = await self.store.update(wanted)
            except Conflict:
                if write.resource_version is not None:
                    raise
                continue
            return _resource(updated, headers=_warning(write.warnings))
        raise APIError(409, "too many concurrent writers; try again")

    async def delete(self, request: Request) -> Response:
        obj = await self.store.delete(self.cls, request.path_params["id"])
        return JSONResponse(
            {"message": f"{self.info.kind} deleted successfully", "uid": obj.uid}
        )

    async def replace_status(self, request: Request) -> Response:
        body = await read_json_object(request, self.max_body_size)
        status, warnings = parse_status(self.info, body, self.validation_mode)
        for _ in range(_RETRIES_WITHOUT_PRECONDITION):
            current = await self.store.get(self.cls, request.path_params["id"])
            try:
                updated = await self.store.update_status(current.model_copy(update={"status": status}))
            except Conflict:
                continue
            return _resource(updated, headers=_warning(warnings))
        raise APIError(409, "too many concurrent writers; try again")

    async def _read_write(self, request: Request) -> WriteRequest:
        body = await read_json_object(request, self.max_body_size)
        return parse_write(self.info, body, self.validation_mode)


def _with_write(current: Resource[Any, Any], write: WriteRequest) -> Resource[Any, Any]:
    metadata_update: dict[str, Any] = {}
    if write.labels is not None:
        metadata_update["labels"] = write.labels
    if write.annotations is not None:
        metadata_update["annotations"] = write.annotations
    if write.resource_version is not None:
        metadata_update["resource_version"] = write.resource_version
    return current.model_copy(
        update={"spec": write.spec, "metadata": current.metadata.model_copy(update=metadata_update)}
    )


def _resource(
    obj: Resource[Any, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    etag = f'"{obj.metadata.resource_version}"'
    return Response(
        obj.model_dump_json(), status_code=status, media_type=_JSON,
        headers={"ETag": etag, **(headers or {})},
    )


def _warning(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    return {"Warning": ", ".join(f'299 - "{w}"'.replace('\\', '') for w in warnings)}
