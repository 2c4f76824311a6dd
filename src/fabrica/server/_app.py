"""`create_app`: the ASGI application serving a set of kinds over one storage backend."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .._settings import ServiceSettings
from .._version import __version__
from ..resource import Resource
from ..storage import Storage
from ..store import GarbageCollector, ResourceStore
from ._docs import docs_routes
from ._errors import exception_handlers
from ._openapi import build_openapi
from ._routes import KindEndpoints

__all__ = ["DEFAULT_MAX_BODY_SIZE", "create_app"]

DEFAULT_MAX_BODY_SIZE = 1024 * 1024


def create_app(
    kinds: Sequence[type[Resource[Any, Any]]],
    storage: Storage,
    *,
    settings: ServiceSettings | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> Starlette:
    """Serve `kinds` (SPEC section 3) from `storage`; the app closes the storage on shutdown."""
    settings = settings or ServiceSettings(project="fabrica", package="fabrica_service")
    _check_unique(kinds)
    store = ResourceStore(storage, kinds)
    collector = GarbageCollector(store)
    openapi = build_openapi(list(kinds), title=settings.project,
                            description=settings.description)
    routes: list[BaseRoute] = [
        Route("/health", _health(settings, storage, kinds), methods=["GET"]),
        Route("/openapi.json", _openapi(openapi), methods=["GET"]),
        *docs_routes(settings.project),
    ]
    for cls in kinds:
        routes += KindEndpoints(cls, store, max_body_size=max_body_size,
                                validation_mode=settings.validation_mode).routes()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await collector.start()
        try:
            yield
        finally:
            await collector.stop()
            await storage.close()

    app = Starlette(routes=routes, exception_handlers=exception_handlers(), lifespan=lifespan)
    app.state.store = store
    app.state.garbage_collector = collector
    app.state.settings = settings
    return app


def _check_unique(kinds: Sequence[type[Resource[Any, Any]]]) -> None:
    for attr in ("kind", "prefix", "plural"):
        seen: dict[str, str] = {}
        for cls in kinds:
            value = getattr(cls.resource_info, attr)
            if value in seen:
                raise ValueError(f"{cls.__name__} and {seen[value]} share the {attr} {value!r}")
            seen[value] = cls.__name__


def _health(settings: ServiceSettings, storage: Storage, kinds: Sequence[type]) -> Any:
    body = {
        "status": "healthy",
        "service": settings.project,
        "version": __version__,
        "storage": storage.name,
        "resources": [cls.__name__ for cls in kinds],
    }

    async def health(request: Request) -> Response:
        return JSONResponse(body)

    return health


def _openapi(document: dict[str, Any]) -> Any:
    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    return openapi
