"""`create_app`: the ASGI application serving a set of kinds over one storage backend."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import CollectorRegistry, Gauge
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .._settings import ServiceSettings
from .._version import __version__
from ..events import EventBus, MemoryBus
from ..reconcile import Controller, ControllerMetrics, ResourceReconciler, Shards
from ..resource import ApiVersionTable, Resource, ServedVersion
from ..storage import Leases, Storage, with_timeout
from ..store import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_VERSION_WAIT,
    DEFAULT_WATCH_MEMORY,
    ChangePublisher,
    Emission,
    GarbageCollector,
    ResourceStore,
    WatchCache,
)
from ._auth_openapi import add_bearer_security
from ._bus_metrics import register_bus_metrics
from ._console import console_routes
from ._docs import docs_routes
from ._errors import exception_handlers
from ._events import EventStreams, events_endpoint
from ._observe import (
    HTTPMetrics,
    metrics_endpoint,
    register_gc_metrics,
    register_watch_metrics,
)
from ._openapi import build_openapi
from ._ready import Readiness
from ._relay import OutboxRelay
from ._routes import KindEndpoints
from ._stopping import Step, stop_in_order
from ._watch import WatchStreams

if TYPE_CHECKING:
    from ..auth import Auth

__all__ = ["DEFAULT_MAX_BODY_SIZE", "DEFAULT_STORAGE_TIMEOUT", "ROLES", "Role", "create_app",
           "default_instance"]

DEFAULT_MAX_BODY_SIZE = 1024 * 1024
DEFAULT_STORAGE_TIMEOUT = 10.0
Role = Literal["all", "api", "controller"]
ROLES: tuple[Role, ...] = ("all", "api", "controller")


def create_app(
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
) -> Starlette:
    """Serve `kinds` (SPEC section 3) from `storage`.

    Each kind is served in its storage API version and in each of `versions` (the
    `ServedVersion` classes of those kinds, SPEC section 9).

    With events on (``settings.events`` or a `bus` given) every write publishes CloudEvents
    and ``GET /events`` streams them; with `reconcilers`, a controller drives them. The app
    starts and stops all of it with its lifespan, and closes the storage last. With `auth`,
    every request but /health, /ready, /openapi.json, /docs and /ui needs a bearer token that
    `auth` verifies and its policy allows (SPEC section 7).

    `role` (SPEC section 6): ``all`` serves the API and runs the reconcilers; ``api`` runs
    no reconciler; ``controller`` runs them and serves only ``/health``, ``/ready`` and
    ``/metrics``. `instance` names this process in metrics (default host-pid).
    A storage operation that takes longer than `storage_timeout` seconds answers 503
    (None: wait).

    Watches (SPEC section 8) and cached reads: gets and lists are answered from a per-kind
    cache of at most `watch_cache_size` resources while it is current (a larger kind is
    read from storage); a watcher with more than `watch_queue_size` changes waiting ends
    with ERROR 410; other processes' writes are read from the storage's change log every
    `watch_poll_interval` seconds while a kind is watched or read; bookmarks go out every
    `watch_bookmark_interval` seconds; all watchers together hold at most `watch_memory`
    bytes for their clients (past it, the one holding most ends with ERROR 410).
    `watch_bookmark_interval` seconds; a watch from a resourceVersion the change log has
    not reached waits up to `watch_version_wait` seconds for it, then answers 504.
    """
    settings = settings or ServiceSettings(project="fabrica", package="fabrica_service")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == "api":
        reconcilers = ()
    _check_unique(kinds)
    storage = with_timeout(storage, storage_timeout)
    api_versions = ApiVersionTable(kinds, versions)
    store = ResourceStore(storage, kinds, api_versions=api_versions)
    cache = WatchCache(storage, kinds, encode=store.wire, render=store.render,
                       max_objects=watch_cache_size, queue_size=watch_queue_size,
                       poll_interval=watch_poll_interval, memory=watch_memory,
                       version_wait=watch_version_wait)
    store.add_listener(cache.on_change)
    streams = WatchStreams(bookmark_interval=watch_bookmark_interval)
    event_streams = EventStreams()
    collector = GarbageCollector(store)
    registry = CollectorRegistry()
    register_gc_metrics(registry, collector)
    register_watch_metrics(registry, cache)
    if bus is None and (settings.events or reconcilers):
        bus = MemoryBus()
    leases = storage.leases(settings.package)
    relay = None
    if bus is not None:
        publisher = ChangePublisher(bus, prefix=settings.event_prefix, source=settings.source)
        register_bus_metrics(registry, bus, lambda: publisher.failures)
        if _durable(bus, storage):  # events commit with their writes, a relay publishes them
            relay = OutboxRelay(storage, bus, leases, registry=registry)  # type: ignore[arg-type]
            store.use_outbox(publisher.messages, relay.wake)
            store.add_emission_listener(_recorded(store, publisher))
        else:
            store.add_listener(publisher)
            store.add_emission_listener(publisher.emit)
    controller = None
    if reconcilers:
        assert bus is not None
        shards = None
        if not isinstance(bus, MemoryBus):  # other processes may reconcile too: share
            shards = Shards(leases, instance=instance or default_instance(),
                            registry=registry)
        controller = Controller(
            store, bus, reconcilers, worker_count=settings.reconcile_workers,
            requeue_after=settings.reconcile_requeue_minutes * 60,
            event_prefix=settings.event_prefix, metrics=ControllerMetrics(registry),
            shards=shards,
        )
    openapi = build_openapi(kinds, title=settings.project, description=settings.description,
                            events=bus is not None, strict=settings.validation_mode == "strict",
                            versions=versions)
    instance = instance or default_instance()
    readiness = Readiness(storage, kinds, bus, role, outbox=relay is not None)
    if controller is not None and controller.shards is not None:
        readiness.extra["controller"] = _shards_check(controller.shards)
    _process_info(registry, instance, role)
    if auth is not None:
        add_bearer_security(openapi)
    routes: list[BaseRoute] = [
        Route("/health", _health(settings, storage, kinds, instance), methods=["GET"]),
        Route("/ready", readiness.endpoint, methods=["GET"]),
        Route("/metrics", metrics_endpoint(registry), methods=["GET"]),
    ]
    kind_routes: list[BaseRoute] = []
    if role != "controller":
        routes += [Route("/openapi.json", _openapi(openapi), methods=["GET"]),
                   *docs_routes(settings.project), *console_routes()]
        if bus is not None:
            routes.append(Route("/events", events_endpoint(bus, registry, event_streams),
                                methods=["GET"]))
        for cls in kinds:
            kind_routes += KindEndpoints(cls, store, max_body_size=max_body_size,
                                         validation_mode=settings.validation_mode,
                                         cache=cache, streams=streams).routes()
    routes = _kinds_first(routes, kind_routes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if auth is not None:
            await auth.start()
        if bus is not None:
            await bus.start()
        if relay is not None:
            await relay.start()
        await collector.start()
        if controller is not None:
            await controller.start()
        readiness.serving = True
        try:
            yield
        finally:
            readiness.stopping = True
            streams.close()
            event_streams.close()
            await stop_in_order(_stop_steps(cache, controller, collector, relay, bus, leases,
                                            storage, auth))

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
    app.state.readiness = readiness
    app.state.relay = relay
    app.state.leases = leases
    app.state.instance = instance
    app.state.auth = auth
    app.state.watch_cache = cache
    app.state.watch_streams = streams
    app.state.event_streams = event_streams
    return app


def _stop_steps(cache: WatchCache, controller: Controller | None,
                collector: GarbageCollector, relay: OutboxRelay | None, bus: EventBus | None,
                leases: Leases, storage: Storage, auth: Auth | None) -> list[Step]:
    """The app's parts, in the order they stop (the reverse of their start)."""
    steps: list[Step] = [("watch cache", lambda _: cache.close())]
    if controller is not None:
        steps.append(("controller", lambda left: controller.stop(timeout=left)))
    steps.append(("garbage collector", lambda _: collector.stop()))
    if relay is not None:  # what is left in the outbox waits for the next relay
        steps.append(("outbox relay", lambda left: relay.stop(timeout=min(left, 2.0))))
    if bus is not None:
        steps.append(("event bus", lambda left: bus.close(drain=True, timeout=left)))
    steps += [("leases", lambda _: leases.close()), ("storage", lambda _: storage.close())]
    if auth is not None:
        steps.append(("authentication", lambda _: auth.close()))
    return steps


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


def _recorded(store: ResourceStore, publisher: ChangePublisher) -> Any:
    """A reconciler's events into the outbox, as a write's: same guarantees, same relay."""
    async def record(emission: Emission) -> None:
        obj = emission.resource
        await store.record_events(f"{obj.resource_info.plural}/{obj.uid}",
                                  publisher.emission_messages(emission))

    return record


def _shards_check(shards: Shards) -> Any:
    async def check() -> str:
        return shards.problem or "ok"

    return check


def _durable(bus: EventBus, storage: Storage) -> bool:
    """A bus other processes read, on storage that records events with their writes."""
    return not isinstance(bus, MemoryBus) and getattr(storage, "supports_outbox", False)


def default_instance() -> str:
    """This process's name where none is given: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _process_info(registry: CollectorRegistry, instance: str, role: str) -> None:
    info = Gauge("fabrica_process_info", "This server process: its instance name and role",
                 ["instance", "role", "version"], registry=registry)
    info.labels(instance, role, __version__).set(1)


def _check_unique(kinds: Sequence[type[Resource[Any, Any]]]) -> None:
    for attr in ("kind", "prefix", "plural"):
        seen: dict[str, str] = {}
        for cls in kinds:
            value = getattr(cls.resource_info, attr)
            if value in seen:
                raise ValueError(f"{cls.__name__} and {seen[value]} share the {attr} {value!r}")
            seen[value] = cls.__name__


def _health(settings: ServiceSettings, storage: Storage, kinds: Sequence[type], instance: str
            ) -> Any:
    body = {
        "status": "healthy",
        "service": settings.project,
        "instance": instance,
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
