"""Reading a watch (SPEC section 8): newline-delimited Kubernetes watch events in, checked
event objects out.

``GET /PLURAL?watch=true`` answers one JSON object per line, ``{"type": ..., "object": ...}``,
for as long as the connection stays open. ``ADDED``, ``MODIFIED`` and ``DELETED`` carry the
resource; ``BOOKMARK`` carries only ``metadata.resourceVersion`` (a point to resume from when
nothing matching changed); ``ERROR`` carries ``{"code": N, ...}`` and ends the watch, so it is
raised here as the error class of that status: `Expired` for 410, after which the caller lists
again. Parsing is line by line, shared by the sync and async clients.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Literal, cast

from typing_extensions import TypeVar

from ._errors import FabricaError, error_for

__all__ = [
    "EVENT_TYPES",
    "EventType",
    "WatchEvent",
    "event_version",
    "typed_event",
    "watch_events",
    "watch_events_async",
]

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
EVENT_TYPES: frozenset[str] = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})

T = TypeVar("T", default=Any)


@dataclass(frozen=True)
class WatchEvent(Generic[T]):
    """One change seen by a watch.

    ``type`` is ``ADDED``, ``MODIFIED``, ``DELETED`` (`object` is the resource: for
    ``DELETED`` its last state) or ``BOOKMARK`` (`object` is None: nothing to see, only
    `resource_version` moved on). `resource_version` is where a new watch resumes after this
    event without missing or repeating any.
    """

    type: EventType
    object: T | None
    resource_version: str | None


def watch_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The events of a watch stream, as their JSON objects; an ``ERROR`` event raises."""
    for line in lines:
        if line.strip():
            yield _event(line)


async def watch_events_async(lines: AsyncIterable[str]) -> AsyncIterator[dict[str, Any]]:
    async for line in lines:
        if line.strip():
            yield _event(line)


def event_version(event: dict[str, Any]) -> str | None:
    """The ``metadata.resourceVersion`` of an event's object (a bookmark's too)."""
    metadata = (event.get("object") or {}).get("metadata") or {}
    version = metadata.get("resourceVersion")
    return str(version) if version not in (None, "") else None


def typed_event(event: dict[str, Any], decode: Callable[[dict[str, Any]], T]) -> WatchEvent[T]:
    """A checked event's JSON as a `WatchEvent` whose object is ``decode(object)``."""
    kind = cast(EventType, event["type"])
    obj = None if kind == "BOOKMARK" else decode(event["object"])
    return WatchEvent(kind, obj, event_version(event))


def _event(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
        raise FabricaError(200, f"the watch sent something that is not a watch event: "
                                f"{line[:200]!r}")
    kind = event.get("type")
    if kind == "ERROR":
        raise _error(event["object"])
    if kind not in EVENT_TYPES:
        raise FabricaError(200, f"the watch sent an event of unknown type {kind!r}")
    return cast(dict[str, Any], event)


def _error(status: dict[str, Any]) -> FabricaError:
    """An ``ERROR`` event's object: ``{"code": 410, "message": ...}`` as Kubernetes sends it,
    or fabrica's error body ``{"error": ..., "code": ...}``."""
    code = status.get("code")
    code = code if isinstance(code, int) else 500
    message = status.get("message") or status.get("error") or status.get("reason")
    return error_for(code, str(message or f"the watch ended with error {code}"))
