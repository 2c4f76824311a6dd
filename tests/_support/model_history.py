"""The recorded history of a model run (see `model_run`): every request with its answer and
the client-side times it was sent and answered, every watch stream with the events it
delivered, every kill and restart of the server.

Times are `time.monotonic()` in the harness process, taken just before a request is sent
and just after its answer is read, so "A was answered before B was sent" in the record
implies it in reality too: the checker (`model_check`) only ever relies on that order.

Outcomes: ``ok`` (a 2xx), ``failed`` (an answer saying no: 4xx, or a request refused before
it was sent, which cannot have had an effect), ``unknown`` (no answer: the connection broke,
the server was killed, a 503 whose write may still commit). An ``unknown`` write may or may
not have happened, but it must then have happened completely.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding", "canon", "History", "Informer", "Op", "Restart", "Segment", "now"]

WRITES = frozenset({"create", "put", "merge", "jsonpatch", "shorthand", "status-put",
                    "status-merge", "delete"})
SPEC_WRITES = frozenset({"put", "merge", "jsonpatch", "shorthand"})
STATUS_WRITES = frozenset({"status-put", "status-merge"})


def now() -> float:
    return time.monotonic()


def canon(obj: Any) -> str:
    """An object as canonical JSON, interned: each version of a resource is kept once, however
    many answers and watches carried it."""
    return sys.intern(json.dumps(obj, sort_keys=True, separators=(",", ":")))


@dataclass
class Op:
    """One request: a write (`WRITES`), ``get`` or ``list``."""

    id: int
    client: str
    action: str
    name: str | None  # the resource name (None: a list)
    token: str | None = None  # unique per write, carried in the document it writes
    args: dict[str, Any] = field(default_factory=dict)  # what the model needs to apply it
    selector: str | None = None  # a list's labelSelector
    if_match: str | None = None
    t_invoke: float = 0.0
    t_complete: float = 0.0
    status: int | None = None
    outcome: str = "pending"  # ok, failed, unknown
    body: Any = None  # the decoded answer (an object, a list, an error body)
    list_version: int | None = None  # a list's X-Resource-Version
    rv: int | None = None  # the resourceVersion of the object answered
    uid: str | None = None  # the uid of the object answered (a delete: the one deleted)
    error: str | None = None  # the transport error, when there was no answer

    @property
    def is_write(self) -> bool:
        return self.action in WRITES

    @property
    def seconds(self) -> float:
        return self.t_complete - self.t_invoke

    def describe(self) -> str:
        what = f"{self.action} {self.name or ''}".strip()
        if self.token:
            what += f" [{self.token}]"
        if self.selector:
            what += f" ?labelSelector={self.selector}"
        answer = self.error if self.status is None else str(self.status)
        return f"op {self.id} by {self.client}: {what} -> {answer} ({self.outcome})"


@dataclass
class Segment:
    """One watch connection, from its request to its end."""

    id: int
    watcher: str
    from_rv: int | None  # None: a watch from now (the current objects come first as ADDED)
    selector: str | None = None
    ahead: bool = False  # asked from a version beyond anything the log held
    t_start: float = 0.0
    t_headers: float | None = None
    t_end: float | None = None
    status: int | None = None
    body: Any = None  # a non-200 answer's body
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    end: str = "open"  # closed (by the harness), error-event, http-error, broken, ended,
    # garbled (a line that is no watch event)
    must_reach: int | None = None  # the fence revision it had to deliver before it closed

    def describe(self) -> str:
        start = "now" if self.from_rv is None else f"resourceVersion={self.from_rv}"
        sel = f" labelSelector={self.selector}" if self.selector else ""
        return (f"watch {self.id} ({self.watcher}) from {start}{sel}: "
                f"{len(self.events)} events, end {self.end}")


@dataclass
class Informer:
    """An informer's epochs: each a list, the watch segments that continued it, and the
    fresh lists it took meanwhile to compare its state with."""

    epochs: list[dict[str, Any]] = field(default_factory=list)

    def new_epoch(self, list_op: Op) -> dict[str, Any]:
        epoch: dict[str, Any] = {"list": list_op, "segments": [], "fresh": []}
        self.epochs.append(epoch)
        return epoch


@dataclass
class Restart:
    t_kill: float
    writes_in_flight: int
    t_up: float | None = None
    first_list: Op | None = None
    start_seconds: float | None = None


@dataclass
class Finding:
    prop: str  # the property violated, as `model_check.PROPERTIES` names it
    message: str

    def __str__(self) -> str:
        return f"[{self.prop}] {self.message}"


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    informers: list[Informer] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)
    fence: int | None = None  # the revision every watch open at the end had to reach
    server_tracebacks: list[str] = field(default_factory=list)
    _ids: int = 0

    def op(self, client: str, action: str, name: str | None, **kw: Any) -> Op:
        self._ids += 1
        op = Op(self._ids, client, action, name, **kw)
        self.ops.append(op)
        return op

    def segment(self, watcher: str, from_rv: int | None, **kw: Any) -> Segment:
        self._ids += 1
        seg = Segment(self._ids, watcher, from_rv, **kw)
        self.segments.append(seg)
        return seg
