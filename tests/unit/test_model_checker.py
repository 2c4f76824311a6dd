"""The model check's checker (`tests/_support/model_check`) on small histories written by
hand: a history that keeps every property passes, and each kind of violation is reported
under the property it breaks (so a clean e2e run means the properties held, not that the
checker could not see)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from fabrica.storage import StoredChange
from tests._support.model_check import PROPERTIES, check
from tests._support.model_clients import Ctx, watch_segment
from tests._support.model_history import History, Informer, Op, Restart, canon
from tests._support.model_log import LogIndex

UID, OTHER = "dev-0000000a", "dev-0000000b"


def device(rv: int, token: str, *, port: int = 80, health: str = "unknown", gen: int = 1,
           uid: str = UID, name: str = "m0", labels: dict[str, str] | None = None
           ) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Device", "schemaVersion": "v1",
            "metadata": {"name": name, "uid": uid, "labels": labels or {"grp": "a"},
                         "annotations": {}, "createdAt": "t0", "updatedAt": "t",
                         "resourceVersion": str(rv), "generation": gen},
            "spec": {"type": "server", "ipAddress": "10.0.0.1", "port": port,
                     "tags": {"op": token}},
            "status": {"health": health, "errorCount": 0}}


D1 = device(1, "t1")
D2 = device(2, "t2", port=81, gen=2)
D3 = device(3, "t2", port=81, gen=2, health="t3")
D4 = device(4, "t2", port=81, gen=2, health="t3")
LOG = [StoredChange(1, "ADDED", D1), StoredChange(2, "MODIFIED", D2),
       StoredChange(3, "MODIFIED", D3), StoredChange(4, "DELETED", D4)]


def event(kind: str, doc: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    return 0.0, {"type": kind, "rv": int(doc["metadata"]["resourceVersion"]),
                 "object": canon(doc)}


class Story:
    """A run that keeps every property: create, patch, status write, list, delete of m0,
    watched from the start, from now and by an informer."""

    def __init__(self) -> None:
        self.log = list(LOG)
        h = self.history = History()
        self.create = self.op("create", "m0", 1.0, 1.1, 201, token="t1", rv=1, body=D1,
                              args={"port": 80, "labels": {"grp": "a"}})
        self.patch = self.op("merge", "m0", 1.2, 1.3, 200, token="t2", rv=2, body=D2,
                             args={"port": 81})
        self.status = self.op("status-merge", "m0", 1.35, 1.4, 200, token="t3", rv=3, body=D3)
        self.list = self.op("list", None, 1.5, 1.6, 200, list_version=3, body=[canon(D3)])
        self.get = self.op("get", "m0", 1.5, 1.6, 200, body=D3)
        self.delete = self.op("delete", "m0", 1.7, 1.8, 200, uid=UID, body={"uid": UID})
        self.watch = h.segment("watch-all", 0, end="closed", must_reach=4, t_start=0.5)
        self.watch.events = [event("ADDED", D1), event("MODIFIED", D2),
                             event("MODIFIED", D3), event("DELETED", D4)]
        now = h.segment("watch-a", None, selector="grp=a", end="closed", t_start=1.45)
        now.events = [event("ADDED", D3), event("DELETED", D4)]
        listed = self.op("list", None, 1.15, 1.19, 200, list_version=1, body=[canon(D1)])
        informer = h.informers = [_informer(h, listed)]
        self.informer = informer[0].epochs[0]
        self.informer["fresh"].append(self.list)
        self.ahead = h.segment("ahead", 1_000_004, ahead=True, end="http-error", status=504,
                               t_start=2.0, t_end=2.1)
        first = self.op("list", None, 0.8, 0.9, 200, list_version=1, body=[canon(D1)])
        h.restarts.append(Restart(t_kill=0.6, writes_in_flight=3, t_up=0.8, first_list=first))

    def op(self, action: str, name: str | None, t0: float, t1: float, status: int,
           **kw: Any) -> Op:
        body = kw.pop("body", None)
        if isinstance(body, dict) and "metadata" in body:
            kw["uid"] = body["metadata"]["uid"]
            body = canon(body)
        return self.history.op("c", action, name, t_invoke=t0, t_complete=t1, status=status,
                               outcome="ok" if status < 300 else "failed", body=body, **kw)

    def findings(self) -> list[str]:
        found = check(self.history, LogIndex(self.log, self.history.ops), patience=10,
                      stall_budget=2.5, read_budget=10)
        assert all(f.prop in PROPERTIES for f in found)
        return sorted({f.prop for f in found})


def _informer(history: History, listed: Op) -> Informer:
    record = Informer()
    epoch = record.new_epoch(listed)
    seg = history.segment("informer", 1, end="closed", must_reach=4, t_start=1.2)
    seg.events = [event("MODIFIED", D2), event("MODIFIED", D3), event("DELETED", D4)]
    epoch["segments"].append(seg)
    return record


def test_a_history_that_keeps_every_property_passes() -> None:
    assert Story().findings() == []


def _skip_in_watch(s: Story) -> None:
    del s.watch.events[2]


def _repeat_in_watch(s: Story) -> None:
    s.watch.events.insert(2, s.watch.events[1])


def _list_with_a_duplicate(s: Story) -> None:
    s.list.body = [canon(D3), canon(D3)]


def _stale_list(s: Story) -> None:
    s.list.list_version, s.list.body = 1, [canon(D1)]


def _answer_not_in_log(s: Story) -> None:
    s.log[1] = StoredChange(2, "MODIFIED", device(2, "t2", port=99, gen=2))


def _ahead_waits(s: Story) -> None:
    s.ahead.end, s.ahead.status, s.ahead.t_end = "closed", 200, 12.0


def _first_list_stalls(s: Story) -> None:
    first = s.history.restarts[0].first_list
    assert first is not None
    first.t_complete = first.t_invoke + 6.0


def _name_held_twice(s: Story) -> None:
    other = device(2, "t9", uid=OTHER)
    s.op("create", "m0", 1.15, 1.19, 201, token="t9", rv=None,
         args={"port": 80, "labels": {"grp": "a"}})
    s.log.insert(1, StoredChange(2, "ADDED", other))
    for i, change in enumerate(s.log[2:], 3):  # renumber what follows
        doc = copy.deepcopy(change.document)
        doc["metadata"]["resourceVersion"] = str(i)
        s.log[i - 1] = StoredChange(i, change.type, doc)


def _read_stalls(s: Story) -> None:
    s.get.t_complete = s.get.t_invoke + 11.0


def _conflict_while_free(s: Story) -> None:
    s.op("create", "m0", 2.0, 2.1, 409, token="t8", body={"error": "exists", "code": 409},
         args={"port": 80, "labels": {}})


def _server_error(s: Story) -> None:
    s.op("list", None, 2.0, 2.1, 500, body={"error": "internal server error", "code": 500})


def _watch_stops_short(s: Story) -> None:
    del s.watch.events[3]


def _informer_drifts(s: Story) -> None:
    s.informer["fresh"][0] = s.op("list", None, 1.5, 1.6, 200, list_version=3, body=[])


def _revision_goes_back(s: Story) -> None:
    s.patch.t_invoke, s.patch.t_complete = 0.9, 0.95  # revision 2, answered before ...
    # ... the create was sent, which got revision 1


def _stale_get(s: Story) -> None:
    s.get.body = canon(D1)


def _refused_write_took_effect(s: Story) -> None:
    s.patch.status, s.patch.outcome, s.patch.body = 412, "failed", {"error": "x", "code": 412}


def _unexplained_change(s: Story) -> None:
    s.history.ops.remove(s.status)
    s.history.ops.append(s.op("get", "m0", 1.35, 1.4, 200, body=D2))


@pytest.mark.parametrize(("change", "prop"), [
    (_skip_in_watch, "watch-equals-log"),
    (_repeat_in_watch, "watch-equals-log"),
    (_list_with_a_duplicate, "list-equals-log"),
    (_stale_list, "list-equals-log"),
    (_answer_not_in_log, "acknowledged-write-in-log"),
    (_ahead_waits, "watch-ahead-is-refused"),
    (_first_list_stalls, "reads-do-not-stall"),
    (_read_stalls, "reads-do-not-stall"),
    (_name_held_twice, "log-follows-model"),
    (_conflict_while_free, "failure-justified"),
    (_server_error, "no-server-error"),
    (_watch_stops_short, "watch-delivers-every-change"),
    (_informer_drifts, "list-then-watch-equals-list"),
    (_revision_goes_back, "revisions-follow-real-time"),
    (_stale_get, "read-equals-log"),
    (_refused_write_took_effect, "log-follows-model"),
    (_unexplained_change, "log-follows-model"),
])
def test_each_violation_is_reported_under_its_property(change: Callable[[Story], None],
                                                       prop: str) -> None:
    story = Story()
    change(story)
    assert prop in story.findings()


async def test_a_watch_cancelled_while_closing_after_its_error_keeps_its_error_end() -> None:
    """The run's end cancelled an ahead watch just as its 504 arrived (3 s, the server's
    wait): the cancel landed in the stream's close, after the ERROR was read, and the
    segment was recorded as closed without an error: a finding against a server that had
    answered as it should."""
    closing = asyncio.Event()

    class SlowToClose(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b'{"type":"ERROR","object":{"code":504}}\n'

        async def aclose(self) -> None:
            closing.set()
            await asyncio.sleep(60)

    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=SlowToClose()))
    history = History()
    ctx = Ctx("http://model", history, ["m0"], seed=1)
    seg = history.segment("ahead", 10**6, ahead=True)
    async with httpx.AsyncClient(base_url=ctx.url, transport=transport) as http:
        task = asyncio.create_task(watch_segment(ctx, http, seg))
        await asyncio.wait_for(closing.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seg.end == "error-event" and len(seg.events) == 1
