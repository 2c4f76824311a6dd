"""Builders for the events Fabrica publishes: resource lifecycle, condition changes and the
events reconcilers emit.

Attribute and payload names follow Go Fabrica (``pkg/events``), so consumers written for it
read these events unchanged. Lifecycle events are ``PREFIX.KIND.ACTION`` from
``SOURCE/resources/KIND/UID``; condition events are ``PREFIX.condition.TYPE`` from
``SOURCE/resources/KIND/UID/conditions/TYPE``. All carry ``subject = PLURAL/UID``.

A reconciler's own event is ``PREFIX.KIND.REASON``, shaped like a lifecycle event with
``action = REASON``. REASON is a lower-case word (`REASON_PATTERN`) that is none of the
lifecycle actions, so such an event can never pass for a write: a consumer (the controller
among them) tells them apart by ``action``, and a ``PREFIX.KIND.created`` is always a create.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ._cloudevent import CloudEvent, format_time

__all__ = [
    "LIFECYCLE_ACTIONS",
    "REASON_PATTERN",
    "check_reason",
    "condition_event",
    "lifecycle_event",
    "reason_event",
]

LIFECYCLE_ACTIONS = frozenset({"created", "updated", "patched", "deleted"})
# One NATS-subject-safe type segment that no wildcard, case fold or dot can bend.
REASON_PATTERN = re.compile(r"[a-z][a-z0-9]{0,62}")


def lifecycle_event(
    action: str,
    kind: str,
    plural: str,
    uid: str,
    name: str,
    *,
    prefix: str = "io.fabrica",
    source: str = "fabrica",
    resource: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    actor: str | None = None,
    now: datetime | None = None,
) -> CloudEvent:
    """The event for one successful write of a resource.

    `action` is one of created, updated, patched, deleted. `resource` is the resource's wire
    form (camelCase JSON) and `metadata` extra context, such as ``{"updateType": "status"}``
    for status writes; each goes into ``data`` only when given. `actor`, the writer, becomes
    the ``actor`` extension. `now` is the clock seam.
    """
    if action not in LIFECYCLE_ACTIONS:
        raise ValueError(f"unknown lifecycle action {action!r}: use one of {_actions()}")
    more: dict[str, Any] = {}
    if metadata:
        more["metadata"] = dict(metadata)
    if resource is not None:
        more["resource"] = dict(resource)
    return _resource_event(action, kind, plural, uid, name, prefix, source, more, actor, now)


def condition_event(
    kind: str,
    plural: str,
    uid: str,
    name: str,
    condition: Mapping[str, Any],
    *,
    prefix: str = "io.fabrica",
    source: str = "fabrica",
    previous_status: str | None = None,
    actor: str | None = None,
    now: datetime | None = None,
) -> CloudEvent:
    """The event for a condition whose status changed.

    `condition` is the condition's wire form (``type``, ``status``, ``reason``, ``message``,
    ``lastTransitionTime``, ...). ``data`` holds Go Fabrica's flat fields (conditionType,
    status, previousStatus, reason, message, transitionTime), the resource's identity and
    the whole condition under ``condition``; `actor` as for `lifecycle_event`.
    """
    ctype, status = condition.get("type"), condition.get("status")
    if not isinstance(ctype, str) or not isinstance(status, str):
        raise ValueError("a condition needs string 'type' and 'status' fields")
    _check_segment("condition type", ctype)
    _check_segment("kind", kind)
    moment = now or datetime.now(UTC)
    wire = {k: format_time(v) if isinstance(v, datetime) else v for k, v in condition.items()}
    data: dict[str, Any] = {"conditionType": ctype, "status": status}
    if previous_status is not None:
        data["previousStatus"] = previous_status
    data.update((k, wire[k]) for k in ("reason", "message") if wire.get(k))
    data["transitionTime"] = wire.get("lastTransitionTime") or format_time(moment)
    data.update(resourceKind=kind, resourceUID=uid, resourceName=name, condition=wire)
    return CloudEvent(
        type=f"{_prefix(prefix)}.condition.{ctype.lower()}",
        source=f"{source}/resources/{kind}/{uid}/conditions/{ctype.lower()}",
        subject=f"{plural}/{uid}",
        time=moment,
        resourcekind=kind,
        resourceuid=uid,
        extensions={"conditiontype": ctype, "conditionstatus": status,
                    **({"actor": actor} if actor else {})},
        data=data,
    )


def reason_event(
    reason: str,
    kind: str,
    plural: str,
    uid: str,
    name: str,
    *,
    prefix: str = "io.fabrica",
    source: str = "fabrica",
    details: Mapping[str, Any] | None = None,
    id: str | None = None,
    actor: str | None = None,
    now: datetime | None = None,
) -> CloudEvent:
    """The event a reconciler emits about a resource: ``PREFIX.KIND.REASON``.

    The same ``source``, ``subject``, extensions and ``data`` fields as `lifecycle_event`,
    with ``action = reason`` and `details` (JSON values) under ``data.details`` when given.
    `id` lets the emitter make a re-sent event carry the id of the first (see
    `fabrica.reconcile.ResourceReconciler.emit`); by default it is fresh. `actor` as for
    `lifecycle_event`.
    """
    check_reason(reason)
    more = {"details": dict(details)} if details is not None else {}
    event = _resource_event(reason, kind, plural, uid, name, prefix, source, more, actor, now)
    return event if id is None else dataclasses.replace(event, id=id)


def _resource_event(
    action: str, kind: str, plural: str, uid: str, name: str, prefix: str, source: str,
    more: dict[str, Any], actor: str | None, now: datetime | None,
) -> CloudEvent:
    """``PREFIX.KIND.ACTION`` about one resource, `more` after the identity in ``data``."""
    _check_segment("kind", kind)
    moment = now or datetime.now(UTC)
    data: dict[str, Any] = {
        "action": action,
        "resourceKind": kind,
        "resourceUID": uid,
        "resourceName": name,
        "changeTime": format_time(moment),
        **more,
    }
    return CloudEvent(
        type=f"{_prefix(prefix)}.{kind.lower()}.{action}",
        source=f"{source}/resources/{kind}/{uid}",
        subject=f"{plural}/{uid}",
        time=moment,
        resourcekind=kind,
        resourceuid=uid,
        action=action,
        extensions={"actor": actor} if actor else {},
        data=data,
    )


def check_reason(reason: object) -> str:
    """`reason` if it can name an emitted event; ValueError saying why not otherwise."""
    if not isinstance(reason, str) or not REASON_PATTERN.fullmatch(reason):
        raise ValueError(
            f"event reason {reason!r} is not a lower-case word: use 1-63 characters "
            "a-z and 0-9, starting with a letter (for example 'provisioned')"
        )
    if reason in LIFECYCLE_ACTIONS:
        raise ValueError(
            f"event reason {reason!r} is reserved for the lifecycle events the store "
            f"publishes itself ({_actions()}); name what happened instead"
        )
    return reason


def _actions() -> str:
    return ", ".join(sorted(LIFECYCLE_ACTIONS))


def _check_segment(what: str, value: str) -> None:
    if not value or "." in value or any(c.isspace() for c in value):
        raise ValueError(f"{what} {value!r} cannot be one segment of an event type")


def _prefix(prefix: str) -> str:
    if not prefix or "" in prefix.split("."):
        raise ValueError(f"event type prefix {prefix!r} has an empty segment")
    return prefix
