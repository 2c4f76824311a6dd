"""`create_app`: the ASGI application serving a `Service`'s kinds over HTTP.

The service (`fabrica.service.Service`) owns the runtime parts and their start and stop;
the app mounts routes and middleware on it and ties the service's start and stop to its
lifespan. ``app.state.service`` is the service.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..._settings import ServiceSettings
from ...events import EventBus
from ...reconcile import ResourceReconciler
from ...resource import Resource, ServedVersion
from ...service import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_STORAGE_TIMEOUT,
    Role,
    Service,
    ServiceOptions,
)
from ...storage import Storage
from ...store import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_VERSION_WAIT,
    DEFAULT_WATCH_MEMORY,
    Hooks,
)
from ..openapi._auth_openapi import add_bearer_security, public_plurals
from ..openapi._openapi import build_openapi
from ._console import console_routes
from ._docs import docs_routes
from ._errors import exception_handlers
from ._events import EventStreams, events_endpoint
from ._observe import FabricaApp, HTTPMetrics, MeteredServerErrors, metrics_endpoint
from ._routes import KindEndpoints
from ._watch import WatchStreams

if TYPE_CHECKING:
    from ...auth import Auth

__all__ = ["DEFAULT_MAX_BODY_SIZE", "DEFAULT_STORAGE_TIMEOUT", "create_app", "service_for"]

log = logging.getLogger("fabrica.server")


def create_app(
    service: Service | Sequence[type[Resource[Any, Any]]],
    storage: Storage | None = None,
    **options: Any,
) -> Starlette:
    """The HTTP API of `service` (SPEC section 3): its kinds' routes, ``/openapi.json``,
    ``/docs``, ``/ui``, ``GET /events`` with events on, and ``/health``, ``/ready`` and
    ``/metrics``; a ``controller`` service serves only those three. The app's lifespan
    starts and stops the service. With the service's `auth`, every request but /health,
    /ready, /openapi.json, /docs and /ui needs a bearer token that `auth` verifies and its
    policy allows (SPEC section 7).

    ``create_app(kinds, storage, **options)`` builds the service first (`service_for`).
    """
    if not isinstance(service, Service):
        if storage is None:
            raise TypeError("create_app(kinds, storage, ...) needs the storage")
        service = service_for(service, storage, **options)
    elif storage is not None or options:
        raise TypeError("create_app(service) takes no more: the service has its options")
    return _mount(service)


def service_for(
    kinds: Sequence[type[Resource[Any, Any]]],
    storage: Storage,
    *,
    settings: ServiceSettings | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    bus: EventBus | None = None,
    reconcilers: Sequence[type[ResourceReconciler[Any]]] = (),
    role: Role = "all",
    instance: str | None = None,
    versions: Sequence[type[ServedVersion[Any, Any]]] = (),
    auth: Auth | None = None,
    storage_timeout: float | None = DEFAULT_STORAGE_TIMEOUT,
    watch_cache_size: int = DEFAULT_CACHE_SIZE,
    watch_queue_size: int = DEFAULT_QUEUE_SIZE,
    watch_poll_interval: float = 0.2,
    watch_bookmark_interval: float = 30.0,
    watch_memory: int = DEFAULT_WATCH_MEMORY,
    watch_version_wait: float = DEFAULT_VERSION_WAIT,
    hooks: Sequence[type[Hooks[Any]]] = (),
) -> Service:
    """A `Service` from `create_app`'s keywords (the `ServiceOptions` of the same names)."""
    options = ServiceOptions(
        role=role, instance=instance, max_body_size=max_body_size,
        storage_timeout=storage_timeout, watch_cache_size=watch_cache_size,
        watch_queue_size=watch_queue_size, watch_poll_interval=watch_poll_interval,
        watch_bookmark_interval=watch_bookmark_interval, watch_memory=watch_memory,
        watch_version_wait=watch_version_wait,
        settings=settings or ServiceSettings(project="fabrica", package="fabrica_service"))
    return Service(kinds, storage, options, bus=bus, reconcilers=reconcilers,
                   versions=versions, auth=auth, hooks=hooks)


def _mount(service: Service) -> Starlette:
    settings, auth = service.settings, service.auth
    streams = WatchStreams(bookmark_interval=service.options.watch_bookmark_interval)
    event_streams = EventStreams()
    service.add_drain(streams.close)
    service.add_drain(event_streams.close)
    routes: list[BaseRoute] = [
        Route("/health", _health(service), methods=["GET"]),
        Route("/ready", ready_endpoint(service), methods=["GET"]),
        Route("/metrics", metrics_endpoint(service.registry), methods=["GET"]),
    ]
    kind_routes: list[BaseRoute] = []
    if service.role != "controller":
        routes += [Route("/openapi.json", _openapi(_document(service)), methods=["GET"]),
                   *docs_routes(settings.project), *console_routes()]
        if service.bus is not None:
            routes.append(Route("/events", events_endpoint(service.bus, service.registry,
                                                           event_streams), methods=["GET"]))
        for cls in service.kinds:
            kind_routes += KindEndpoints(cls, service.store,
                                         max_body_size=service.options.max_body_size,
                                         validation_mode=settings.validation_mode,
                                         cache=service.watch_cache, streams=streams).routes()
    routes = _kinds_first(routes, kind_routes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    kinds = [cls.resource_info for cls in service.kinds]
    # The metrics (and the request spans) in Starlette's outermost layer (FabricaApp):
    # auth is inside the span and the timing.
    middleware: list[Middleware] = []
    metrics: HTTPMetrics
    metered: type[MeteredServerErrors] = MeteredServerErrors
    if service.tracing is None:
        metrics = HTTPMetrics(_unset, registry=service.registry, kinds=kinds)
    else:
        from ._tracing import TracedHTTPMetrics, TracedServerErrors  # OpenTelemetry: only then

        metrics = TracedHTTPMetrics(_unset, registry=service.registry, kinds=kinds,
                                    tracing=service.tracing)
        metered = TracedServerErrors
    public = public_plurals(service.kinds) if service.role != "controller" else frozenset()
    if public:  # said at every start: a kind open to anyone should never be a surprise
        log.warning("public kinds (no token needed%s): %s",
                    "" if auth is not None else "; auth is off anyway",
                    ", ".join(sorted(public)))
    if auth is not None:
        from ._auth import AuthMiddleware  # PyJWT and Casbin load only for services with auth

        middleware.append(Middleware(AuthMiddleware, auth=auth, realm=settings.project,
                                     public=public, mode=service.options.auth_mode,
                                     registry=service.registry))
    app = FabricaApp(routes=routes, exception_handlers=exception_handlers(), lifespan=lifespan,
                     middleware=middleware)
    app.request_metrics, app.metered_errors = metrics, metered
    app.state.service = service
    return app


async def _unset(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("the request metrics' app is set when the middleware stack is built")


def _document(service: Service) -> dict[str, Any]:
    settings = service.settings
    openapi = build_openapi(service.kinds, title=settings.project,
                            description=settings.description, events=service.bus is not None,
                            strict=settings.validation_mode == "strict",
                            versions=service.versions)
    if service.auth is not None:
        add_bearer_security(openapi, public_plurals(service.kinds))
    return openapi


def ready_endpoint(service: Service) -> Any:
    async def ready(request: Request) -> Response:
        status, body = await service.readiness.report()
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    return ready


def _health(service: Service) -> Any:
    body = service.health()

    async def health(request: Request) -> Response:
        return JSONResponse(body)

    return health


def _kinds_first(own: list[BaseRoute], kinds: list[BaseRoute]) -> list[BaseRoute]:
    """The kinds' routes before the service's own, so that a request for a resource, the
    bulk of the traffic, is not first tried against each of those; but after any own
    route it could shadow (a kind whose plural is ``events``, ``docs``...), so the order
    still decides nothing: routes whose first path segments differ never match one path."""
    plurals = {_first_segment(route) for route in kinds}
    shadowed = [route for route in own if _first_segment(route) in plurals]
    return [*shadowed, *kinds, *[route for route in own if route not in shadowed]]


def _first_segment(route: BaseRoute) -> str:
    return str(getattr(route, "path", "")).split("/")[1]


def _openapi(document: dict[str, Any]) -> Any:
    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    return openapi
