"""The checker of a model run: the recorded history (`model_history`) against the storage's
own change log (`model_log`), property by property. Each violation is a `Finding` naming the
property it breaks (`PROPERTIES`).

The only order relied on between requests is real time as the harness saw it: a request
answered before another was sent came first. So a read must show every write acknowledged
before it was sent, and may show any write sent before it was answered: the read's window
is ``lo..hi``, lo the newest revision acknowledged before it was sent, hi the newest change
made by a request sent before it was answered.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections import Counter
from typing import Any

from fabrica.resource import Selector, parse_selector

from .model_history import Finding, History, Op
from .model_log import LogIndex

__all__ = ["PROPERTIES", "check"]

PROPERTIES = {
    "no-server-error": "no 5xx answer but 503, no ERROR 500 event, no traceback logged",
    "expected-answers": "each answer is one the SPEC gives that request, with its error body",
    "acknowledged-write-in-log": "every acknowledged write is in the change log at the "
                                 "version it answered, exactly as answered",
    "log-follows-model": "every change is the complete effect of one request, applied once "
                         "to the state before it as the model says; no refused request "
                         "took effect",
    "revisions-follow-real-time": "a write acknowledged before another was sent has the "
                                  "lower revision",
    "failure-justified": "a 404, 409 or 412 is true of some state between the request's "
                         "sending and its answer",
    "read-equals-log": "a get answers a state the log held between the request's sending "
                       "and its answer",
    "list-equals-log": "a list at X-Resource-Version V holds exactly the log's state at V, "
                       "and V covers every write acknowledged before it was sent",
    "watch-equals-log": "a watch from R delivers exactly the log's changes after R, in "
                        "order, none skipped or repeated; one from now starts with the "
                        "log's state at a revision covering every acknowledged write",
    "watch-delivers-every-change": "a watch open at the end delivered every change up to "
                                   "the last write",
    "list-then-watch-equals-list": "a list plus its watch's events up to a fresh list's "
                                   "version equals that fresh list",
    "watch-ahead-is-refused": "a watch from beyond the log ends with an error within the "
                              "patience, never waits silently",
    "reads-do-not-stall": "the first list after a restart takes no longer than its budget, "
                          "and no read longer than the read budget",
}

_ANSWERS = {"create": {201, 409}, "put": {200, 404}, "merge": {200, 404},
            "jsonpatch": {200, 404}, "shorthand": {200, 404}, "status-put": {200, 404},
            "status-merge": {200, 404}, "delete": {200, 404}, "get": {200, 404},
            "list": {200}}
_SKIP = ("BOOKMARK", "ERROR")
_CANDIDATES = 2000  # revisions tried as the start of a watch from now


class _Times:
    """lo(t) and hi(t) of the module docstring, by binary search."""

    def __init__(self, history: History, index: LogIndex) -> None:
        acked = sorted((op.t_complete, rev) for op in history.ops
                       if (rev := _revision(op, index)) is not None)
        self._acked_t, self._acked_max = _prefix_max(acked)
        made = sorted((t, rev) for t, rev in zip(index.origin, index.revs, strict=True)
                      if t is not None)
        self._made_t, self._made_max = _prefix_max(made)

    def lo(self, t: float) -> int:
        n = bisect_left(self._acked_t, t)
        return self._acked_max[n - 1] if n else 0

    def hi(self, t: float, lo: int) -> int:
        n = bisect_left(self._made_t, t)
        return max(lo, self._made_max[n - 1] if n else 0)


def _prefix_max(pairs: list[tuple[float, int]]) -> tuple[list[float], list[int]]:
    times, highest, best = [], [], 0
    for t, rev in pairs:
        best = max(best, rev)
        times.append(t)
        highest.append(best)
    return times, highest


def _revision(op: Op, index: LogIndex) -> int | None:
    """The revision an acknowledged write got (a delete's, from the log)."""
    if op.outcome != "ok" or not op.is_write:
        return None
    return index.deleted.get(op.uid or "") if op.action == "delete" else op.rv


def check(history: History, index: LogIndex, *, patience: float, stall_budget: float,
          read_budget: float) -> list[Finding]:
    """Every finding of the run. `stall_budget`: the seconds the first list after a restart
    may take (timed alone, the clients wait); `read_budget`: any other read's (under the
    full load)."""
    times = _Times(history, index)
    found = list(index.findings)
    for part in (_answers(history), _acknowledged(history, index),
                 _real_time(history, index, times), _failures(history, index, times),
                 _reads(history, index, times), _watches(history, index, times),
                 _informers(history, index), _ahead(history, patience),
                 _stalls(history, stall_budget, read_budget)):
        found.extend(part)
    return found


# -- answers -----------------------------------------------------------------------------

def _answers(history: History) -> list[Finding]:
    found = []
    for op in history.ops:
        if op.status is None or op.status == 503:
            continue
        allowed = _ANSWERS[op.action] | ({412} if op.if_match else set())
        if op.status >= 500:
            found.append(Finding("no-server-error", f"{op.describe()}: {op.body}"))
        elif op.status not in allowed:
            found.append(Finding("expected-answers", f"{op.describe()}: {op.body}"))
        elif op.status >= 400 and not _error_body(op.body, op.status):
            found.append(Finding("expected-answers",
                                 f"{op.describe()}: not a SPEC error body: {op.body}"))
    for seg in history.segments:
        if seg.end == "garbled":
            found.append(Finding("expected-answers", f"{seg.describe()}: a line that is no "
                                                     f"watch event: {seg.body}"))
        if seg.status is not None and seg.status >= 500 and seg.status != 503 and \
                not (seg.ahead and seg.status == 504):
            found.append(Finding("no-server-error", f"{seg.describe()}: {seg.status} "
                                                    f"{seg.body}"))
        elif seg.status not in (None, 200, 503) and not seg.ahead:
            found.append(Finding("expected-answers", f"{seg.describe()}: {seg.status} "
                                                     f"{seg.body}"))
        for _, event in seg.events:
            if event["type"] == "ERROR":
                code = json.loads(event["object"]).get("code")
                if code == 500:
                    found.append(Finding("no-server-error",
                                         f"{seg.describe()}: ERROR {event['object']}"))
                elif code != 410 and not seg.ahead:
                    found.append(Finding("expected-answers",
                                         f"{seg.describe()}: ERROR {event['object']}"))
    found.extend(Finding("no-server-error", f"server log: {t}")
                 for t in history.server_tracebacks)
    return found


def _error_body(body: Any, status: int) -> bool:
    return isinstance(body, dict) and isinstance(body.get("error"), str) and \
        body.get("code") == status


# -- writes ------------------------------------------------------------------------------

def _acknowledged(history: History, index: LogIndex) -> list[Finding]:
    found = []
    deletes: Counter[str] = Counter()
    for op in history.ops:
        if op.outcome != "ok" or not op.is_write:
            continue
        if op.action == "delete":
            deletes[op.uid or ""] += 1
            if op.uid not in index.deleted:
                found.append(Finding("acknowledged-write-in-log",
                                     f"{op.describe()} deleted {op.uid}: the log has no "
                                     f"DELETED change of it"))
            continue
        i = index.at.get(op.rv or 0)
        if i is None:
            found.append(Finding("acknowledged-write-in-log",
                                 f"{op.describe()} answered version {op.rv}, which the log "
                                 f"does not have (log head {index.head})"))
        elif index.keys[i] != op.body:
            found.append(Finding("acknowledged-write-in-log",
                                 f"{op.describe()} answered version {op.rv}; the log has "
                                 f"{_show(index, index.keys[i])}, the answer was "
                                 f"{_show(index, op.body)}"
                                 f"{_difference(index, op.body, index.keys[i])}"))
    found.extend(Finding("acknowledged-write-in-log",
                         f"{count} deletes of {uid} were all acknowledged")
                 for uid, count in deletes.items() if count > 1)
    return found


def _real_time(history: History, index: LogIndex, times: _Times) -> list[Finding]:
    found = []
    for op in history.ops:
        rev = _revision(op, index)
        if rev is None:
            continue
        lo = times.lo(op.t_invoke)
        if lo >= rev:
            found.append(Finding("revisions-follow-real-time",
                                 f"{op.describe()} got revision {rev}, though revision {lo} "
                                 f"was acknowledged before it was sent"))
    return found


def _failures(history: History, index: LogIndex, times: _Times) -> list[Finding]:
    found = []
    for op in history.ops:
        if op.status not in (404, 409, 412) or op.name is None:
            continue
        lo = times.lo(op.t_invoke)
        states = index.name_states(op.name, lo, times.hi(op.t_complete, lo))
        if op.status == 409:
            ok = any(s is not None for s in states)
        elif op.status == 404:
            ok = any(s is None for s in states)
        else:
            ok = any(s is None or _rv(index, s) != op.if_match for s in states)
        if not ok:
            found.append(Finding("failure-justified",
                                 f"{op.describe()}: the states of {op.name} from revision "
                                 f"{lo} to its answer were {_states(index, states)}"))
    return found


# -- reads -------------------------------------------------------------------------------

def _reads(history: History, index: LogIndex, times: _Times) -> list[Finding]:
    found = []
    for op in history.ops:
        if op.outcome != "ok" or op.action not in ("get", "list"):
            continue
        lo = times.lo(op.t_invoke)
        if op.action == "get":
            assert op.name is not None
            states = index.name_states(op.name, lo, times.hi(op.t_complete, lo))
            if op.body not in states:
                found.append(Finding("read-equals-log",
                                     f"{op.describe()} answered {_show(index, op.body)}; the "
                                     f"states of {op.name} from revision {lo} to its answer "
                                     f"were {_states(index, states)}"))
            continue
        problem = _list_problem(index, op, lo)
        if problem:
            found.append(Finding("list-equals-log", f"{op.describe()}: {problem}"))
    return found


def _list_problem(index: LogIndex, op: Op, lo: int) -> str:
    if op.list_version is None:
        return "no X-Resource-Version header"
    version = op.list_version
    if version < lo:
        return f"X-Resource-Version {version}, but revision {lo} was acknowledged before it"
    wanted = _snapshot(index, version, _selector(op.selector))
    got = Counter(op.body)
    if got == Counter(wanted):
        return ""
    missing = [_show(index, k) for k in wanted if k not in got]
    extra = [_show(index, k) for k in got if k not in wanted or got[k] > 1]
    return (f"at X-Resource-Version {version} the log holds {len(wanted)} objects; the list "
            f"lacks {missing or 'none'}, and has besides {extra or 'none'}")


def _snapshot(index: LogIndex, revision: int, selector: Selector | None) -> list[str]:
    return [k for k in index.state_at(revision).values() if _matches(index, k, selector)]


def _selector(text: str | None) -> Selector | None:
    return parse_selector(text) if text else None


def _matches(index: LogIndex, key: str, selector: Selector | None) -> bool:
    return selector is None or bool(selector.matches(_labels(index.doc(key))))


def _labels(doc: dict[str, Any]) -> dict[str, str]:
    return doc["metadata"].get("labels") or {}


# -- watches -----------------------------------------------------------------------------

def _watches(history: History, index: LogIndex, times: _Times) -> list[Finding]:
    found = []
    for seg in history.segments:
        events = [e for _, e in seg.events if e["type"] not in _SKIP]
        selector = _selector(seg.selector)
        if seg.from_rv is not None:
            problem, rest = _stream(index, seg.from_rv, events, selector)
        else:
            problem, rest = _from_now(index, events, selector, times.lo(seg.t_start),
                                      complete=seg.must_reach is not None)
        if problem:
            found.append(Finding("watch-equals-log", f"{seg.describe()}: {problem}"))
        elif seg.must_reach is not None:
            missed = [index.revs[j] for j in range(rest, len(index.log))
                      if index.revs[j] <= seg.must_reach and _event(index, j, selector)]
            if missed:
                last = events[-1]["rv"] if events else seg.from_rv
                found.append(Finding("watch-delivers-every-change",
                                     f"{seg.describe()}: delivered up to revision {last}, "
                                     f"never the changes {_revs(missed)} (the last write "
                                     f"was {seg.must_reach})"))
    return found


def _event(index: LogIndex, j: int, selector: Selector | None) -> str | None:
    """The watch event change j is for `selector` (Kubernetes: a resource that starts to
    match is ADDED, one that stops is DELETED); None: none."""
    change = index.log[j]
    if selector is None:
        return change.type
    prev = index.prev[j] if change.type != "ADDED" else None
    was = prev is not None and selector.matches(_labels(prev))
    now = change.type != "DELETED" and selector.matches(_labels(change.document))
    if now:
        return "ADDED" if not was else "MODIFIED"
    return "DELETED" if was else None


def _lenient(wanted: str | None, got: str, selector: Selector | None, j: int,
             index: LogIndex) -> bool:
    """What a filtered watch may send when it does not know the labels a resource had
    before a change (a resume older than the server's memory, `store/_watchers`): a start
    of matching as MODIFIED, a non-matching change as DELETED."""
    if selector is None:
        return False
    if wanted == "ADDED" and got == "MODIFIED":
        return True
    document = index.log[j].document
    return wanted is None and got == "DELETED" and not selector.matches(_labels(document))


def _stream(index: LogIndex, after: int, events: list[dict[str, Any]],
            selector: Selector | None) -> tuple[str, int]:
    """Whether `events` are the log's changes after `after`, from the first on; the problem
    (or ""), and the index of the first change not delivered."""
    j = bisect_left(index.revs, after + 1)
    p = 0
    while p < len(events) and j < len(index.log):
        event, rev = events[p], index.revs[j]
        wanted = _event(index, j, selector)
        if event["rv"] < rev:
            break  # (repeated or out of order: said below)
        if event["rv"] == rev:
            if (event["type"] != wanted and not _lenient(wanted, event["type"], selector, j,
                                                         index)) \
                    or event["object"] != index.keys[j]:
                return (f"at revision {rev} it delivered {event['type']} "
                        f"{_show(index, event['object'])}; the log has {index.log[j].type} "
                        f"{_show(index, index.keys[j])}"
                        f"{_difference(index, event['object'], index.keys[j])}"), j
            p += 1
        elif wanted is not None:
            return (f"skipped revision {rev} ({wanted} {_name(index, index.keys[j])}): "
                    f"after {events[p - 1]['rv'] if p else after} it delivered "
                    f"{event['type']} at {event['rv']}"), j
        j += 1
    if p < len(events):
        event = events[p]
        where = "which the log does not have" if event["rv"] not in index.at else \
            f"after {events[p - 1]['rv'] if p else after} (out of order or repeated)"
        return f"delivered {event['type']} at revision {event['rv']}, {where}", j
    return "", j


def _from_now(index: LogIndex, events: list[dict[str, Any]], selector: Selector | None,
              lo: int, complete: bool) -> tuple[str, int]:
    """A watch from now: its first events (ADDED) are the log's state at some revision V
    >= lo, the rest its changes after V. A stream cut before it sent anything but ADDED
    (not `complete`) may have sent only part of that state."""
    leading = next((i for i, e in enumerate(events) if e["type"] != "ADDED"), len(events))
    first_problem = ""
    for split in range(leading, -1, -1):
        initial, rest = events[:split], events[split:]
        floor = max([lo, *(e["rv"] for e in initial)])
        ceiling = rest[0]["rv"] - 1 if rest else index.head
        start = bisect_left(index.revs, floor + 1)
        candidates = [floor, *(r for r in index.revs[start:start + _CANDIDATES]
                               if r <= ceiling)]
        keys = Counter(e["object"] for e in initial)
        partial = not complete and not rest
        for version in candidates:
            state = Counter(_snapshot(index, version, selector))
            if state != keys and not (partial and keys <= state):
                continue
            problem, j = _stream(index, version, rest, selector)
            if not problem:
                return "", j
            first_problem = first_problem or f"from revision {version}: {problem}"
    names = sorted(_name(index, e["object"]) for e in events[:leading])
    return (f"its first {leading} ADDED ({', '.join(names)}) are no state of the log at or "
            f"after revision {lo} followed by its changes"
            + (f" ({first_problem})" if first_problem else "")), 0


def _informers(history: History, index: LogIndex) -> list[Finding]:
    found = []
    for informer in history.informers:
        for epoch in informer.epochs:
            state = {_uid(index, k): k for k in epoch["list"].body}
            events = [e for seg in epoch["segments"] for _, e in seg.events
                      if e["type"] not in _SKIP]
            reached = max([e["rv"] for e in events], default=epoch["list"].list_version)
            p = 0
            for fresh in sorted(epoch["fresh"], key=lambda op: op.list_version or 0):
                version = fresh.list_version or 0
                if reached < version and not any(
                        s.must_reach is not None and s.must_reach >= version
                        for s in epoch["segments"]):
                    continue  # its watch had not got there: nothing to compare
                while p < len(events) and events[p]["rv"] <= version:
                    _apply(state, index, events[p])
                    p += 1
                if Counter(state.values()) != Counter(fresh.body):
                    found.append(Finding("list-then-watch-equals-list",
                                         f"list at {epoch['list'].list_version} plus its "
                                         f"watch up to {version}: {_names(index, state)}; "
                                         f"the fresh list {fresh.describe()} holds "
                                         f"{_names(index, fresh.body)}"))
    return found


def _apply(state: dict[str, str], index: LogIndex, event: dict[str, Any]) -> None:
    uid = _uid(index, event["object"])
    if event["type"] == "DELETED":
        state.pop(uid, None)
    else:
        state[uid] = event["object"]


# -- the ahead watch and stalls ----------------------------------------------------------

def _ahead(history: History, patience: float) -> list[Finding]:
    found = []
    for seg in history.segments:
        if not seg.ahead or seg.end in ("http-error", "error-event", "broken"):
            continue
        waited = (seg.t_end or seg.t_start) - seg.t_start
        found.append(Finding("watch-ahead-is-refused",
                             f"{seg.describe()}: {seg.from_rv} is beyond every version "
                             f"written; no error in {waited:.1f} s (patience {patience} s)"))
    return found


def _stalls(history: History, budget: float, read_budget: float) -> list[Finding]:
    found = []
    firsts = set()
    for n, restart in enumerate(history.restarts, 1):
        op = restart.first_list
        if op is None:
            continue
        firsts.add(op.id)
        if op.seconds > budget:
            found.append(Finding("reads-do-not-stall",
                                 f"the first list after restart {n} took {op.seconds:.1f} s "
                                 f"(budget {budget} s; {restart.writes_in_flight} writes "
                                 f"were in flight at the kill)"))
    slow = sorted((op for op in history.ops if op.action in ("get", "list")
                   and op.outcome == "ok" and op.id not in firsts
                   and op.seconds > read_budget), key=lambda op: -op.seconds)
    if slow:
        found.append(Finding("reads-do-not-stall",
                             f"{len(slow)} reads took longer than {read_budget} s, the "
                             f"longest {slow[0].seconds:.1f} s ({slow[0].describe()})"))
    return found


# -- describing --------------------------------------------------------------------------

def _doc(index: LogIndex, key: str) -> dict[str, Any]:
    return index.doc(key)


def _uid(index: LogIndex, key: str) -> str:
    return str(_doc(index, key)["metadata"]["uid"])


def _name(index: LogIndex, key: str) -> str:
    return str(_doc(index, key)["metadata"]["name"])


def _rv(index: LogIndex, key: str) -> str:
    return str(_doc(index, key)["metadata"]["resourceVersion"])


def _show(index: LogIndex, key: Any) -> str:
    if not isinstance(key, str):
        return repr(key)
    meta = _doc(index, key)["metadata"]
    return f"{meta['name']}@{meta['resourceVersion']}({meta['uid']})"


def _difference(index: LogIndex, got: Any, wanted: str) -> str:
    """What differs between two versions that `_show` names alike."""
    if not isinstance(got, str) or got == wanted:
        return ""
    a, b = _doc(index, got), _doc(index, wanted)
    parts = [f"{part} {a.get(part)!r} instead of {b.get(part)!r}"
             for part in ("spec", "status") if a.get(part) != b.get(part)]
    meta = [f"metadata.{k} {a['metadata'].get(k)!r} instead of {b['metadata'].get(k)!r}"
            for k in sorted({*a["metadata"], *b["metadata"]})
            if a["metadata"].get(k) != b["metadata"].get(k)]
    return f" ({'; '.join(parts + meta) or 'other fields differ'})"


def _states(index: LogIndex, states: list[str | None]) -> str:
    return ", ".join("free" if s is None else _show(index, s) for s in states)


def _names(index: LogIndex, keys: Any) -> str:
    items = keys.values() if isinstance(keys, dict) else keys
    return "[" + ", ".join(sorted(_show(index, k) for k in items)) + "]"


def _revs(revs: list[int]) -> str:
    return ", ".join(map(str, revs[:10])) + (f" and {len(revs) - 10} more" if len(revs) > 10
                                            else "")
