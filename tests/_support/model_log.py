"""The change log as the model sees it: each change checked to be the complete effect of one
request the clients made, applied to the state before it; and the state at every revision,
for the checks of reads and watches (`model_check`).

The model of a Device (SPEC sections 3 and 8): a create holds a free name and starts at
generation 1 with the default status; a spec write (PUT, the three patch types) sets
``spec.port`` and ``spec.tags.op`` (a PUT also the labels), leaves status alone and adds one
to the generation; a status write (PUT, merge patch) changes only status; a delete ends a
live resource. Every document's ``resourceVersion`` is its change's revision. A request
takes effect at most once, and never after its answer refused it.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import defaultdict
from typing import Any

from fabrica.storage import StoredChange

from .model_history import SPEC_WRITES, STATUS_WRITES, Finding, Op, canon

__all__ = ["LogIndex"]

_DEFAULT_STATUS = {"health": "unknown", "errorCount": 0}


class LogIndex:
    """The log, its states by revision, and what it says about the requests."""

    def __init__(self, log: list[StoredChange], ops: list[Op]) -> None:
        self.log = log
        self.revs = [c.revision for c in log]
        self.keys = [canon(c.document) for c in log]
        self.docs: dict[str, dict[str, Any]] = dict(zip(self.keys, (c.document for c in log),
                                                        strict=True))
        self.names = {k: c.document["metadata"]["name"] for k, c in zip(self.keys, log,
                                                                         strict=True)}
        self.at: dict[int, int] = {c.revision: i for i, c in enumerate(log)}
        self.states: list[dict[str, str]] = []  # after change i: uid -> object (key)
        self.touch: dict[str, list[int]] = defaultdict(list)  # name -> indexes of its changes
        self.touch_revs: dict[str, list[int]] = defaultdict(list)  # ... and their revisions
        self.prev: list[dict[str, Any] | None] = []  # the object each change replaced
        self.applied: dict[str, int] = {}  # token -> revision of its change
        self.deleted: dict[str, int] = {}  # uid -> revision of its DELETED
        self.origin: list[float | None] = []  # earliest send time of a request that made it
        self.findings: list[Finding] = []
        self._tokens = {op.token: op for op in ops if op.token}
        self._deletes: dict[str, list[Op]] = defaultdict(list)
        self._created: dict[str, float] = {}  # uid -> when the request creating it was sent
        for op in ops:
            if op.action == "delete" and op.name:
                self._deletes[op.name].append(op)
        self._build()

    # -- the states --------------------------------------------------------------------------

    def state_at(self, revision: int) -> dict[str, str]:
        """The live objects at `revision`: uid -> object (key)."""
        i = bisect_right(self.revs, revision) - 1
        return self.states[i] if i >= 0 else {}

    def name_states(self, name: str, lo: int, hi: int) -> list[str | None]:
        """Every state of `name` at revisions lo..hi: the object holding it, None when it
        is free (two objects holding it at once are both listed: the log broke the rule)."""
        found = self._holding(self.state_at(lo), name)
        touched, revs = self.touch.get(name, []), self.touch_revs.get(name, [])
        for i in touched[bisect_right(revs, lo):bisect_right(revs, hi)]:
            found.extend(self._holding(self.states[i], name))
        return found

    def _holding(self, state: dict[str, str], name: str) -> list[str | None]:
        holders: list[str | None] = [k for k in state.values() if self.names[k] == name]
        return holders or [None]

    def doc(self, key: str) -> dict[str, Any]:
        found = self.docs.get(key)
        return found if found is not None else json.loads(key)

    @property
    def head(self) -> int:
        return self.revs[-1] if self.revs else 0

    # -- building and checking ---------------------------------------------------------------

    def _build(self) -> None:
        live: dict[str, dict[str, Any]] = {}  # uid -> its document
        live_keys: dict[str, str] = {}
        holders: dict[str, set[str]] = defaultdict(set)  # name -> uids holding it
        uids: set[str] = set()
        for i, change in enumerate(self.log):
            doc = change.document
            meta = doc["metadata"]
            name, uid = meta["name"], meta["uid"]
            prev = live.get(uid)
            self.prev.append(prev)
            self.touch[name].append(i)
            self.touch_revs[name].append(change.revision)
            where = f"change {change.revision} ({change.type} {name} {uid})"
            if meta.get("resourceVersion") != str(change.revision):
                self._find(f"{where}: its document says resourceVersion "
                           f"{meta.get('resourceVersion')}")
            if change.type == "ADDED" and holders[name]:
                self._find(f"{where}: the name was still held by "
                           f"{', '.join(sorted(holders[name]))}")
            if change.type == "DELETED":
                self._deleted(where, change, prev)
                live.pop(uid, None)
                live_keys.pop(uid, None)
                holders[name].discard(uid)
                self.origin.append(self._delete_origin(name, uid))
            else:
                op = self._made_by(where, change, prev, uid in uids)
                live[uid], live_keys[uid] = doc, self.keys[i]
                holders[name].add(uid)
                self.origin.append(op.t_invoke if op is not None else None)
                if change.type == "ADDED" and op is not None:
                    self._created[uid] = op.t_invoke
            uids.add(uid)
            self.states.append(dict(live_keys))

    def _find(self, message: str) -> None:
        self.findings.append(Finding("log-follows-model", message))

    def _made_by(self, where: str, change: StoredChange, prev: dict[str, Any] | None,
                 used: bool) -> Op | None:
        """The request whose complete effect `change` is (ADDED or MODIFIED), or None."""
        doc = change.document
        if change.type == "ADDED":
            if used:
                self._find(f"{where}: the uid was used before")
            prev = None
            token = doc["spec"].get("tags", {}).get("op")
        else:
            if prev is None:
                self._find(f"{where}: no such resource was live")
                return None
            token = _changed_token(prev, doc)
        op = self._tokens.get(token or "")
        if op is None or op.name != doc["metadata"]["name"]:
            self._find(f"{where}: made by no request of this name (token {token!r})")
            return None
        wrong = _compare(_expected(op, prev), doc, prev)
        if wrong:
            self._find(f"{where} is not the effect of {op.describe()}: {wrong}")
        if op.if_match is not None and prev is not None and \
                prev["metadata"]["resourceVersion"] != op.if_match:
            self._find(f"{where}: {op.describe()} had If-Match {op.if_match} but replaced "
                       f"version {prev['metadata']['resourceVersion']}")
        self._applied(where, op, change.revision)
        return op

    def _applied(self, where: str, op: Op, revision: int) -> None:
        if op.token in self.applied:
            self._find(f"{where}: {op.describe()} took effect twice (also at "
                       f"{self.applied[op.token or '']})")
        self.applied[op.token or ""] = revision
        if op.outcome == "failed":
            self._find(f"{where}: {op.describe()} was refused, yet it took effect")

    def _deleted(self, where: str, change: StoredChange, prev: dict[str, Any] | None) -> None:
        doc = change.document
        uid = doc["metadata"]["uid"]
        if prev is None:
            self._find(f"{where}: no such resource was live")
            return
        last = {**prev, "metadata": {**prev["metadata"],
                                     "resourceVersion": doc["metadata"]["resourceVersion"]}}
        if canon(last) != canon(doc):
            self._find(f"{where}: the DELETED object is not its last state "
                       f"({_diff(last, doc)})")
        self.deleted[uid] = change.revision
        if not self._delete_candidates(doc["metadata"]["name"], uid):
            self._find(f"{where}: no delete request could have made it")

    def _delete_candidates(self, name: str, uid: str) -> list[Op]:
        """The deletes that may have deleted `uid`: the one answered so, or one never
        answered that was still in flight after the create of `uid` was sent."""
        created = self._created.get(uid, 0.0)
        return [op for op in self._deletes.get(name, ())
                if (op.outcome == "ok" and op.uid == uid)
                or (op.outcome == "unknown" and op.t_complete > created)]

    def _delete_origin(self, name: str, uid: str) -> float | None:
        times = [op.t_invoke for op in self._delete_candidates(name, uid)]
        return min(times) if times else None


def _changed_token(prev: dict[str, Any], doc: dict[str, Any]) -> str | None:
    """The token of the write that made `doc` from `prev`: a spec write's, else a status
    write's."""
    before, after = prev["spec"].get("tags", {}).get("op"), doc["spec"].get("tags", {}).get("op")
    if after != before:
        return str(after)
    health = doc["status"].get("health")
    return str(health) if health != prev["status"].get("health") else None


def _expected(op: Op, prev: dict[str, Any] | None) -> dict[str, Any]:
    """What the model says `op` makes of `prev`: spec, status, labels, generation."""
    spec = {"type": "server", "ipAddress": "10.0.0.1", "port": op.args.get("port"),
            "tags": {"op": op.token}}  # what a create or a PUT sends
    if op.action == "create":
        return {"spec": spec, "status": _DEFAULT_STATUS, "labels": op.args["labels"],
                "generation": 1}
    assert prev is not None
    meta = prev["metadata"]
    same = {"spec": prev["spec"], "status": prev["status"], "labels": meta["labels"],
            "generation": meta["generation"]}
    if op.action == "put":
        return {**same, "spec": spec, "labels": op.args["labels"],
                "generation": meta["generation"] + 1}
    if op.action in SPEC_WRITES:
        spec = {**prev["spec"], "port": op.args["port"],
                "tags": {**prev["spec"].get("tags", {}), "op": op.token}}
        return {**same, "spec": spec, "generation": meta["generation"] + 1}
    if op.action == "status-put":
        return {**same, "status": {"health": op.token, **op.args}}
    assert op.action in STATUS_WRITES
    return {**same, "status": {**prev["status"], "health": op.token}}


def _compare(expected: dict[str, Any], doc: dict[str, Any], prev: dict[str, Any] | None
             ) -> str:
    meta = doc["metadata"]
    got = {"spec": doc["spec"], "status": doc["status"], "labels": meta.get("labels"),
           "generation": meta.get("generation")}
    wrong = [f"{k} {got[k]!r}, expected {v!r}" for k, v in expected.items() if got[k] != v]
    if prev is not None:
        for field in ("uid", "name", "createdAt", "annotations"):
            if prev["metadata"].get(field) != meta.get(field):
                wrong.append(f"metadata.{field} changed")
    return "; ".join(wrong)


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted({*a, *b})
                     if a.get(k) != b.get(k))
