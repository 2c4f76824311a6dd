"""`create_app`: the ASGI application serving a set of kinds over one storage backend."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .._settings import ServiceSettings
from .._version import __version__
from ..events import EventBus, MemoryBus, sse_stream
from ..reconcile import Controller, ControllerMetrics, ResourceReconciler
from ..resource import ApiVersionTable, Resource, ServedVersion
from ..storage import Storage
from ..store import ChangePublisher, GarbageCollector, ResourceStore
from ._auth_openapi import add_bearer_security
from ._docs import docs_routes
from ._errors import APIError, exception_handlers
from ._observe import HTTPMetrics, metrics_endpoint
from ._openapi import build_openapi
from ._routes import KindEndpoints

if TYPE_CHECKING:
    from ..auth import Auth

__all__ = ["DEFAULT_MAX_BODY_SIZE", "create_app"]

DEFAULT_MAX_BODY_SIZE = 1024 * 1024


def create_app(
    kinds: Sequence[type[Resource[Any, Any]]],
    storage: Storage,
    *,
    settings: ServiceSettings | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    bus: EventBus | None = None,
    reconcilers: Sequence[type[ResourceReconciler[Any]]] = (),
    versions: Sequence[type[ServedVersion[Any, Any]]] = (),
    auth: Auth | None = None,
) -> Starlette:
    """Serve `kinds` (SPEC section 3) from `storage`.

    Each kind is served in its storage API version and in each of `versions` (the
    `ServedVersion` classes of those kinds, SPEC section 9).

    With events on (``settings.events`` or a `bus` given) every write publishes CloudEvents
    and ``GET /events`` streams them; with `reconcilers`, a controller drives them. The app
    starts and stops all of it with its lifespan, and closes the storage last. With `auth`,
    every request but /health, /ready, /openapi.json and /docs needs a bearer token that
    `auth` verifies and its policy allows (SPEC section 7).
    """
    settings = settings or ServiceSettings(project="fabrica", package="fabrica_service")
    _check_unique(kinds)
    api_versions = ApiVersionTable(kinds, versions)
    store = ResourceStore(storage, kinds, api_versions=api_versions)
    collector = GarbageCollector(store)
    registry = CollectorRegistry()
    if bus is None and (settings.events or reconcilers):
        bus = MemoryBus()
    if bus is not None:
        publisher = ChangePublisher(bus, prefix=settings.event_prefix, source=settings.source)
        store.add_listener(publisher)
        store.add_emission_listener(publisher.emit)
    controller = None
    if reconcilers:
        assert bus is not None
        controller = Controller(
            store, bus, reconcilers, worker_count=settings.reconcile_workers,
            requeue_after=settings.reconcile_requeue_minutes * 60,
            event_prefix=settings.event_prefix, metrics=ControllerMetrics(registry),
        )
    openapi = build_openapi(kinds, title=settings.project, description=settings.description,
                            events=bus is not None, strict=settings.validation_mode == "strict",
                            versions=versions)
    if auth is not None:
        add_bearer_security(openapi)
    routes: list[BaseRoute] = [
        Route("/health", _health(settings, storage, kinds), methods=["GET"]),
        Route("/openapi.json", _openapi(openapi), methods=["GET"]),
        Route("/metrics", metrics_endpoint(registry), methods=["GET"]),
        *docs_routes(settings.project),
    ]
    if bus is not None:
        routes.append(Route("/events", _events(bus), methods=["GET"]))
    for cls in kinds:
        routes += KindEndpoints(cls, store, max_body_size=max_body_size,
                                validation_mode=settings.validation_mode).routes()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if auth is not None:
            await auth.start()
        if bus is not None:
            await bus.start()
        await collector.start()
        if controller is not None:
            await controller.start()
        try:
            yield
        finally:
            if controller is not None:
                await controller.stop()
            await collector.stop()
            if bus is not None:
                await bus.close(drain=True)
            await storage.close()
            if auth is not None:
                await auth.close()

    middleware = [Middleware(HTTPMetrics, registry=registry)]
    if auth is not None:
        from ._auth import AuthMiddleware  # PyJWT and Casbin load only for services with auth

        middleware.append(Middleware(AuthMiddleware, auth=auth, realm=settings.project))
    app = Starlette(routes=routes, exception_handlers=exception_handlers(), lifespan=lifespan,
                    middleware=middleware)
    app.state.store = store
    app.state.garbage_collector = collector
    app.state.bus = bus
    app.state.controller = controller
    app.state.settings = settings
    app.state.auth = auth
    return app


def _events(bus: EventBus) -> Any:
    async def events(request: Request) -> Response:
        pattern = request.query_params.get("type") or "**"
        try:
            stream = sse_stream(bus, pattern)
        except ValueError as exc:
            raise APIError(400, f"invalid type pattern: {exc}",
                           [{"field": "type", "message": str(exc)}]) from None
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return events


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
