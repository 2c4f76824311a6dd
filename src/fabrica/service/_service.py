"""`Service`: one object that assembles a fabrica service and starts and stops its parts.

A controller-runtime Manager in spirit: it owns the store over the storage, the watch cache,
the event bus and what publishes to it (after each write, or through the outbox relay), the
garbage collector, the leases and shards, the reconcile controller, the readiness checks,
the metrics registry and the authentication's background work, and it starts them in order
and stops them in the reverse order within a time budget (`stop_in_order`). HTTP is not
among its parts: `fabrica.server.create_app` mounts the API on a service, and a
``controller`` process serves its probes (``/health``, ``/ready``, ``/metrics``) without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from .._version import __version__
from ..events import EventBus, MemoryBus
from ..reconcile import Controller, ControllerMetrics, ResourceReconciler, Shards
from ..resource import ApiVersionTable, Resource, ServedVersion
from ..storage import Storage, with_timeout
from ..store import (
    ChangePublisher,
    Emission,
    EncryptionError,
    GarbageCollector,
    Hooks,
    ResourceStore,
    WatchCache,
    check_storage_key,
    prepare_fields,
    prepare_unique,
)
from ._metrics import (
    register_bus_metrics,
    register_gc_metrics,
    register_process_info,
    register_watch_metrics,
)
from ._options import ServiceOptions
from ._ready import Readiness
from ._relay import OutboxRelay
from ._stopping import Step, stop_in_order

if TYPE_CHECKING:
    from ..auth import Auth
    from ._tracing import Tracing

__all__ = ["Service"]

log = logging.getLogger("fabrica.service")


class Service:
    """The runtime of a service serving `kinds` from `storage` (SPEC sections 3 and 6).

    Each kind is served in its storage API version and in each of `versions` (the
    `ServedVersion` classes of those kinds, SPEC section 9). With events on
    (``settings.events``, a `bus` given, or ``options.events_bus``) every write publishes
    CloudEvents; with `reconcilers` (and a role that runs them) a controller drives them.
    With `auth`, its key refresh runs while the service does. `hooks` (`Hooks` classes, one
    per kind) admit every write of their kinds, whoever writes. `start` starts the parts,
    `stop` stops them and closes the storage last; ``async with service`` does both.
    """

    def __init__(
        self,
        kinds: Sequence[type[Resource[Any, Any]]],
        storage: Storage,
        options: ServiceOptions | None = None,
        *,
        bus: EventBus | None = None,
        reconcilers: Sequence[type[ResourceReconciler[Any]]] = (),
        versions: Sequence[type[ServedVersion[Any, Any]]] = (),
        auth: Auth | None = None,
        hooks: Sequence[type[Hooks[Any]]] = (),
    ) -> None:
        options = options or ServiceOptions()
        _check_unique(kinds)
        self.options = options
        self.settings = options.service_settings
        self.kinds, self.versions, self.auth = list(kinds), list(versions), auth
        self.role, self.instance = options.role, options.instance_name
        if self.role == "api":
            reconcilers = ()
        self.tracing = _tracing(options, self.settings.project, self.instance)
        if self.tracing is not None:
            storage = self.tracing.storage(storage)
        self.storage = with_timeout(storage, options.storage_timeout or None)
        self.api_versions = ApiVersionTable(kinds, versions)
        self.store = ResourceStore(self.storage, kinds, api_versions=self.api_versions,
                                   encryption=options.encryption())
        self.store.use_hooks(hooks, spans=self.tracing.hook if self.tracing else None)
        self.watch_cache = self._watch_cache()
        self.garbage_collector = GarbageCollector(self.store)
        self.registry = CollectorRegistry()
        register_gc_metrics(self.registry, self.garbage_collector)
        register_watch_metrics(self.registry, self.watch_cache)
        self.bus = self._bus(bus, bool(reconcilers))
        self.leases = self.storage.leases(self.settings.package)
        self.relay = self._publish_events()
        self.controller = self._controller(reconcilers)
        self.readiness = Readiness(self.storage, self.kinds, self.bus, self.role,
                                   outbox=self.relay is not None)
        if self.controller is not None and self.controller.shards is not None:
            self.readiness.extra["controller"] = _shards_check(self.controller.shards)
        register_process_info(self.registry, self.instance, self.role)
        self._drains: list[Callable[[], None]] = []

    # -- assembly ------------------------------------------------------------------------

    def _watch_cache(self) -> WatchCache:
        options, store = self.options, self.store
        cache = WatchCache(self.storage, self.kinds, encode=store.wire, render=store.render,
                           max_objects=options.watch_cache_size,
                           queue_size=options.watch_queue_size,
                           poll_interval=options.watch_poll_interval,
                           memory=options.watch_memory,
                           version_wait=options.watch_version_wait)
        store.add_listener(cache.on_change)
        return cache

    def _bus(self, bus: EventBus | None, reconciles: bool) -> EventBus | None:
        if bus is not None:
            return bus
        if self.options.events_bus == "nats":
            return self.options.nats_bus()
        if self.options.events_bus == "kafka":
            return self.options.kafka_bus()
        if self.settings.events or reconciles:
            return MemoryBus()
        return None

    def _publish_events(self) -> OutboxRelay | None:
        """Every write's events to the bus: recorded with the write and relayed (a bus other
        processes read, on storage with an outbox), else published after it. Returns the
        relay, if any."""
        if self.bus is None:
            return None
        settings, store, tracing = self.settings, self.store, self.tracing
        bus = self.bus if tracing is None else tracing.bus(self.bus)
        publisher = ChangePublisher(bus, prefix=settings.event_prefix, source=settings.source,
                                    traceparent=tracing.traceparent if tracing else None)
        register_bus_metrics(self.registry, self.bus, lambda: publisher.failures)
        if not self._durable():
            store.add_listener(publisher)
            store.add_emission_listener(publisher.emit)
            return None
        relay = OutboxRelay(self.storage, bus, self.leases,  # type: ignore[arg-type]
                            registry=self.registry,
                            batch_span=tracing.relay_batch if tracing else None)
        store.use_outbox(publisher.messages, relay.wake)
        store.add_emission_listener(_recorded(store, publisher))
        return relay

    def _durable(self) -> bool:
        """A bus other processes read, on storage that records events with their writes."""
        return (not isinstance(self.bus, MemoryBus)
                and getattr(self.storage, "supports_outbox", False))

    def _controller(self, reconcilers: Sequence[type[ResourceReconciler[Any]]]
                    ) -> Controller | None:
        if not reconcilers:
            return None
        assert self.bus is not None
        shards = None
        if not isinstance(self.bus, MemoryBus):  # other processes may reconcile too: share
            shards = Shards(self.leases, instance=self.instance, registry=self.registry)
        settings = self.settings
        return Controller(
            self.store, self.bus, reconcilers, worker_count=settings.reconcile_workers,
            requeue_after=settings.reconcile_requeue_minutes * 60,
            event_prefix=settings.event_prefix, metrics=ControllerMetrics(self.registry),
            shards=shards, tracing=self.tracing,
        )

    # -- what probes answer --------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The ``/health`` body: liveness, and what this process is."""
        return {
            "status": "healthy",
            "service": self.settings.project,
            "instance": self.instance,
            "version": __version__,
            "storage": self.storage.name,
            "resources": [cls.__name__ for cls in self.kinds],
        }

    # -- running -------------------------------------------------------------------------

    def add_drain(self, end: Callable[[], None]) -> None:
        """`end` is called by `drain`: it ends what never ends by itself (open watches and
        event streams) so that a server waiting for its responses can stop."""
        self._drains.append(end)

    def drain(self) -> None:
        for end in self._drains:
            end()

    async def start(self) -> None:
        """Start the parts, each after what it needs (the bus before what publishes).
        `EncryptionError` when the storage holds encrypted values no key given opens;
        `DuplicateValues` when a unique field's values are not unique in storage."""
        try:
            await check_storage_key(self.storage, self.store.encryption, self.kinds)
        except EncryptionError as exc:
            log.error("refusing to start: %s", exc)
            raise
        await prepare_unique(self.storage, self.kinds)  # refuses to serve over duplicates
        await prepare_fields(self.storage, self.kinds)
        if self.auth is not None:
            await self.auth.start()
        if self.bus is not None:
            await self.bus.start()
        if self.relay is not None:
            await self.relay.start()
        await self.garbage_collector.start()
        if self.controller is not None:
            await self.controller.start()
        self.readiness.serving = True

    async def stop(self) -> None:
        """Stop the parts in the reverse order, within `STOP_BUDGET` seconds in all."""
        self.readiness.stopping = True
        self.drain()
        await stop_in_order(self._stop_steps())

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    def _stop_steps(self) -> list[Step]:
        """The parts, in the order they stop (the reverse of their start)."""
        cache, controller, collector = self.watch_cache, self.controller, self.garbage_collector
        relay, bus, leases, storage, auth = (self.relay, self.bus, self.leases, self.storage,
                                             self.auth)
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
        if self.tracing is not None:  # last: the spans of the stop itself go out too
            tracing = self.tracing
            steps.append(("tracing", lambda _: asyncio.to_thread(tracing.shutdown)))
        return steps


def _tracing(options: ServiceOptions, project: str, instance: str) -> Tracing | None:
    """The service's tracing, when it has an endpoint (OpenTelemetry loads only then)."""
    if not options.tracing:
        return None
    from ._tracing import Tracing

    return Tracing(service_name=project, instance=instance, endpoint=options.otlp_endpoint,
                   sample_ratio=options.trace_sample_ratio)


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


def _check_unique(kinds: Sequence[type[Resource[Any, Any]]]) -> None:
    for attr in ("kind", "prefix", "plural"):
        seen: dict[str, str] = {}
        for cls in kinds:
            value = getattr(cls.resource_info, attr)
            if value in seen:
                raise ValueError(f"{cls.__name__} and {seen[value]} share the {attr} {value!r}")
            seen[value] = cls.__name__
