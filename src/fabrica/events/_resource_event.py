"""`ResourceEvent`: what one Fabrica event says about a resource, parsed once.

Lifecycle events (``PREFIX.KIND.ACTION``) and condition events (``PREFIX.condition.TYPE``)
both name a resource; lifecycle events also carry its action, the part a write touched
(``data.metadata.updateType``) and the resource itself. The reconcile controller's source
and the client's event watcher read events through this one parser, never through
``data[...]`` lookups of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._builders import LIFECYCLE_ACTIONS
from ._cloudevent import CloudEvent

__all__ = ["ResourceEvent"]


@dataclass(frozen=True)
class ResourceEvent:
    kind: str
    uid: str
    name: str = ""
    #: created, updated, patched or deleted; None for a condition event.
    action: str | None = None
    #: For updates: ``"spec"``, ``"status"`` or ``"metadata"``, the part the write changed.
    update_type: str | None = None
    #: The resource's wire form (camelCase JSON) as of this event; empty when not sent.
    resource: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_lifecycle(self) -> bool:
        return self.action is not None

    @property
    def status_only(self) -> bool:
        """A write of the status subresource alone (a reconciler's own report)."""
        return self.update_type == "status"

    @property
    def labels(self) -> Mapping[str, str]:
        labels = _mapping(_mapping(self.resource).get("metadata")).get("labels")
        return labels if isinstance(labels, Mapping) else {}

    @property
    def owners(self) -> list[tuple[str, str]]:
        """(kind, uid) of each owner in the resource's ``ownerReferences``."""
        refs = _mapping(_mapping(self.resource).get("metadata")).get("ownerReferences")
        if not isinstance(refs, list):
            return []
        return [(r["kind"], r["uid"]) for r in refs
                if isinstance(r, Mapping) and isinstance(r.get("kind"), str)
                and isinstance(r.get("uid"), str)]

    @classmethod
    def parse(cls, event: CloudEvent | Mapping[str, Any]) -> ResourceEvent | None:
        """The resource `event` (a `CloudEvent` or its JSON object) is about, or None for
        events about no resource (or not from Fabrica)."""
        if isinstance(event, CloudEvent):
            data = _mapping(event.data)
            kind = event.resourcekind or data.get("resourceKind")
            uid = event.resourceuid or data.get("resourceUID")
            action = event.action
        else:
            data = _mapping(event.get("data"))
            kind = event.get("resourcekind") or data.get("resourceKind")
            uid = event.get("resourceuid") or data.get("resourceUID")
            action = event.get("action")
        if not isinstance(kind, str) or not isinstance(uid, str) or not kind or not uid:
            return None
        if action is None:
            action = data.get("action")
        if action not in LIFECYCLE_ACTIONS:
            action = None
        name = data.get("resourceName")
        update_type = _mapping(data.get("metadata")).get("updateType")
        return cls(kind=kind, uid=uid, name=name if isinstance(name, str) else "",
                   action=action,
                   update_type=update_type if isinstance(update_type, str) else None,
                   resource=_mapping(data.get("resource")))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
