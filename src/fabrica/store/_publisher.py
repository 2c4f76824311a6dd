"""`ChangePublisher`: the store's committed writes as CloudEvents on a bus (SPEC section 4).

A store listener: one lifecycle event per write, whoever made it (an HTTP handler, a
reconciler; the ``actor`` extension names it); status writes carry
``data.metadata.updateType = "status"``; and one ``PREFIX.condition.TYPE`` event for each
condition whose status changed (or appeared) in that write. It lives beside the store, not
in the server, so any process that writes (a controller without an HTTP server included)
publishes the same events.
A reconciler's `Emission` becomes ``PREFIX.KIND.REASON`` on the same bus, with the same
failure handling.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from ..events import (
    CloudEvent,
    EventBus,
    EventBusError,
    condition_event,
    lifecycle_event,
    reason_event,
)
from ..resource import Resource, sensitive_exclude
from ..storage import OutboxMessage
from ._changes import Change, Emission

__all__ = ["ChangePublisher"]

log = logging.getLogger("fabrica.events")


class ChangePublisher:
    """`traceparent`, when tracing (SPEC section 13), gives the W3C ``traceparent`` of the
    span current where an event is made; the event carries it (CloudEvents' distributed
    tracing extension), so what the event causes joins the write's trace."""

    def __init__(self, bus: EventBus, *, prefix: str = "io.fabrica", source: str = "fabrica",
                 traceparent: Callable[[], str | None] | None = None):
        self.bus = bus
        self.prefix = prefix
        self.source = source
        self.traceparent = traceparent
        self.failures = 0

    async def __call__(self, change: Change) -> None:
        try:
            await self._publish(change)
        except EventBusError as exc:
            # The write is committed; failing the request now would make the client retry a
            # write that happened. Reconcilers catch up at their next resync.
            self.failures += 1
            log.error("could not publish the %s event of %s %s: %s", change.action,
                      change.resource.resource_info.kind, change.resource.uid, exc)

    async def emit(self, emission: Emission) -> None:
        obj = emission.resource
        info = obj.resource_info
        try:
            await self.bus.publish(self.emission_event(emission))
        except EventBusError as exc:
            self.failures += 1
            log.error("could not publish the %s event of %s %s: %s", emission.reason,
                      info.kind, obj.uid, exc)

    async def _publish(self, change: Change) -> None:
        for event in self.events(change):
            await self.bus.publish(event)

    def events(self, change: Change) -> list[CloudEvent]:
        """The events of one write: its lifecycle event, then one per changed condition."""
        obj = change.resource
        info = obj.resource_info
        metadata = {"updateType": change.update_type} if change.update_type else None
        events = [lifecycle_event(
            change.action, info.kind, info.plural, obj.uid, obj.name,
            prefix=self.prefix, source=self.source,
            resource=obj.model_dump(mode="json", by_alias=True,
                                    exclude=sensitive_exclude(type(obj))),
            metadata=metadata,
            actor=change.actor,
        )]
        # A delete changes no condition: the resource went away with the ones it had.
        changed = [] if change.action == "deleted" else _changed_conditions(change.previous, obj)
        for condition, previous in changed:
            events.append(condition_event(
                info.kind, info.plural, obj.uid, obj.name, condition,
                prefix=self.prefix, source=self.source, previous_status=previous,
                actor=change.actor,
            ))
        return self._traced(events)

    def _traced(self, events: list[CloudEvent]) -> list[CloudEvent]:
        parent = self.traceparent() if self.traceparent is not None else None
        if parent is None:
            return events
        return [dataclasses.replace(e, extensions={**e.extensions, "traceparent": parent})
                for e in events]

    def emission_event(self, emission: Emission) -> CloudEvent:
        obj = emission.resource
        info = obj.resource_info
        return self._traced([reason_event(
            emission.reason, info.kind, info.plural, obj.uid, obj.name, prefix=self.prefix,
            source=self.source, details=emission.details, id=emission.id,
            actor=emission.actor)])[0]

    def emission_messages(self, emission: Emission) -> list[OutboxMessage]:
        event = self.emission_event(emission)
        return [OutboxMessage(event.type, event.id, event.to_json())]

    def messages(self, change: Change) -> list[OutboxMessage]:
        """`events` as the outbox records them (in the write's own transaction)."""
        return [OutboxMessage(e.type, e.id, e.to_json()) for e in self.events(change)]


def _conditions(obj: Resource[Any, Any] | None) -> dict[str, dict[str, Any]]:
    if obj is None or "conditions" not in type(obj.status).model_fields:
        return {}
    return {c.type: c.model_dump(mode="json", by_alias=True) for c in obj.status.conditions}


def _changed_conditions(
    previous: Resource[Any, Any] | None, current: Resource[Any, Any]
) -> list[tuple[dict[str, Any], str | None]]:
    before = _conditions(previous)
    changed = []
    for ctype, condition in _conditions(current).items():
        old = before.get(ctype)
        if old is None or old["status"] != condition["status"]:
            changed.append((condition, None if old is None else old["status"]))
    return changed
