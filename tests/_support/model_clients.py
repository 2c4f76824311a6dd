"""The clients of a model run: writers, readers, watchers and informers racing against one
server over real HTTP, recording every request and every delivered event (`model_history`).

Every write carries a token of its own in the document it writes (``spec.tags.op`` for a
spec write, ``status.health`` for a status write), so the checker can tell which request
each change in the log came from. Objects are recorded as canonical JSON strings, interned:
the same version of a resource seen in an answer, in lists and in every watch is stored once.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import httpx

from .model_history import SPEC_WRITES, History, Informer, Op, Segment, canon, now

__all__ = ["AHEAD", "Ctx", "informer", "send", "watch_segment", "watcher", "writer"]

#: How far beyond the newest revision seen an "ahead" watch asks from: no run reaches it.
AHEAD = 1_000_000
PATH = "/devices"
SELECTOR = "grp=a"
_MERGE = "application/merge-patch+json"
_HEADERS = {"merge": _MERGE, "jsonpatch": "application/json-patch+json",
            "shorthand": "application/shorthand-patch+json", "status-merge": _MERGE}
_WEIGHTS = {"create": 22, "delete": 14, "put": 6, "merge": 8, "jsonpatch": 6, "shorthand": 6,
            "status-put": 9, "status-merge": 9, "get": 8, "list": 6, "burst": 3}


class Ctx:
    """What the clients of one run share."""

    def __init__(self, url: str, history: History, names: list[str], seed: int) -> None:
        self.url = url
        self.history = history
        self.names = names
        self.seed = seed
        self.up = asyncio.Event()  # the server answers (cleared while it is killed)
        self.stopping = asyncio.Event()  # load clients finish their current operation
        self.fence: int | None = None  # watchers and informers: deliver up to here, then stop
        self.restarts = 0
        self.writes_in_flight = 0
        self.head = 0  # the newest revision any client has seen
        self.known: dict[str, str] = {}  # name -> a resourceVersion seen lately (If-Match)
        self.last_rv: dict[str, int] = {}  # watcher -> the newest revision it delivered
        self.killer = [0]  # the count of the killer's writes (their tokens)

    def rng(self, who: str) -> random.Random:
        return random.Random(f"{self.seed}:{who}")

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(60.0, connect=5.0))

    def saw(self, revision: int) -> None:
        self.head = max(self.head, revision)


# -- requests ----------------------------------------------------------------------------

async def send(ctx: Ctx, http: httpx.AsyncClient, op: Op, method: str, path: str,
               wait_up: bool = True, **kw: Any) -> Op:
    """Send one request and record it; never raises for what the server or the network
    does."""
    if wait_up:
        await ctx.up.wait()
    headers = dict(kw.pop("headers", {}))
    if op.if_match is not None:
        headers["If-Match"] = f'"{op.if_match}"'
    if op.is_write:
        ctx.writes_in_flight += 1
    op.t_invoke = now()
    try:
        response = await http.request(method, path, headers=headers, **kw)
    except (httpx.ConnectError, httpx.PoolTimeout) as exc:  # never sent
        op.t_complete, op.outcome, op.error = now(), "failed", f"not sent: {exc!r}"
        return op
    except httpx.TransportError as exc:
        op.t_complete, op.outcome, op.error = now(), "unknown", repr(exc)
        return op
    finally:
        if op.is_write:
            ctx.writes_in_flight -= 1
    op.t_complete = now()
    _record_answer(ctx, op, response)
    return op


def _record_answer(ctx: Ctx, op: Op, response: httpx.Response) -> None:
    op.status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if op.status < 300:
        op.outcome = "ok"
    elif op.status < 500 and op.status != 408:
        op.outcome = "failed"
    else:  # 503 (storage unavailable), or a 500 after which nobody knows
        op.outcome = "unknown"
    if op.status >= 300:
        op.body = body
        return
    if op.action == "list":
        version = response.headers.get("X-Resource-Version", "")
        op.list_version = int(version) if version.isdigit() else None
        op.body = [canon(item) for item in body]
        ctx.saw(op.list_version or 0)
    elif op.action == "delete":
        op.body, op.uid = body, body.get("uid")
    else:
        op.body, op.uid = canon(body), body["metadata"]["uid"]
        rv = body["metadata"]["resourceVersion"]
        op.rv = int(rv)
        ctx.known[body["metadata"]["name"]] = rv
        ctx.saw(op.rv)


# -- writers -----------------------------------------------------------------------------

def _body(op: Op, rng: random.Random, name: str, labels: dict[str, str] | None
          ) -> tuple[str, str, dict[str, Any]]:
    """The request of a write op: method, path and httpx keywords; sets `op.args`."""
    t, item = op.token, f"{PATH}/{name}"
    port = rng.randint(1, 65535)
    action = op.action
    if action in ("create", "put"):
        labels = labels or {"grp": rng.choice("ab")}
        op.args = {"labels": labels, "port": port}
        body = {"name": name, "labels": labels, "type": "server", "ipAddress": "10.0.0.1",
                "port": port, "tags": {"op": t}}
        return ("POST", PATH, {"json": body}) if action == "create" else \
            ("PUT", item, {"json": body})
    if action in SPEC_WRITES:
        op.args = {"port": port}
        patch: Any = {"merge": {"tags": {"op": t}, "port": port},
                      "shorthand": {"tags.op": t, "port": port},
                      "jsonpatch": [{"op": "replace", "path": "/tags/op", "value": t},
                                    {"op": "replace", "path": "/port", "value": port}]}[action]
        return "PATCH", item, {"content": json.dumps(patch),
                               "headers": {"Content-Type": _HEADERS[action]}}
    if action == "status-put":
        op.args = {"errorCount": rng.randint(0, 9)}
        return "PUT", f"{item}/status", {"json": {"health": t, **op.args}}
    if action == "status-merge":
        return "PATCH", f"{item}/status", {"content": json.dumps({"health": t}),
                                           "headers": {"Content-Type": _MERGE}}
    assert action == "delete"
    return "DELETE", item, {}


async def write(ctx: Ctx, http: httpx.AsyncClient, who: str, rng: random.Random,
                action: str, name: str, counter: list[int], conditional: bool = False,
                labels: dict[str, str] | None = None) -> Op:
    counter[0] += 1
    op = ctx.history.op(who, action, name, token=f"{who}-{counter[0]}")
    if conditional and action not in ("create", "put") and name in ctx.known:
        op.if_match = ctx.known[name]
    method, path, kw = _body(op, rng, name, labels)
    return await send(ctx, http, op, method, path, **kw)


async def read(ctx: Ctx, http: httpx.AsyncClient, who: str, rng: random.Random, action: str,
               name: str) -> Op:
    if action == "get":
        return await send(ctx, http, ctx.history.op(who, "get", name), "GET", f"{PATH}/{name}")
    selector = rng.choice([None, SELECTOR])
    op = ctx.history.op(who, "list", None, selector=selector)
    params = {"labelSelector": selector} if selector else {}
    return await send(ctx, http, op, "GET", PATH, params=params)


async def burst(ctx: Ctx, http: httpx.AsyncClient, who: str, rng: random.Random, name: str,
                counter: list[int]) -> None:
    """Creates and deletes of one name, all at once."""
    actions = ["create"] * 5 + ["delete"] * 5
    rng.shuffle(actions)
    await asyncio.gather(*(write(ctx, http, who, rng, a, name, counter) for a in actions))


async def writer(ctx: Ctx, who: str) -> None:
    """Random creates, deletes, spec and status writes, reads and bursts of a few names,
    until the run stops."""
    rng = ctx.rng(who)
    actions, weights = list(_WEIGHTS), list(_WEIGHTS.values())
    counter = [0]
    async with ctx.client() as http:
        while not ctx.stopping.is_set():
            action = rng.choices(actions, weights)[0]
            name = rng.choice(ctx.names)
            if action == "burst":
                await burst(ctx, http, who, rng, name, counter)
            elif action in ("get", "list"):
                await read(ctx, http, who, rng, action, name)
            else:
                await write(ctx, http, who, rng, action, name, counter, rng.random() < 0.3)
            await asyncio.sleep(rng.uniform(0, 0.01))


# -- watches -----------------------------------------------------------------------------

async def watch_segment(ctx: Ctx, http: httpx.AsyncClient, seg: Segment,
                        on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
    """One watch connection, recorded in `seg` until it ends (or the task is cancelled)."""
    params = {"watch": "true"}
    if seg.from_rv is not None:
        params["resourceVersion"] = str(seg.from_rv)
    if seg.selector:
        params["labelSelector"] = seg.selector
    seg.t_start = now()
    try:
        async with http.stream("GET", PATH, params=params,
                               timeout=httpx.Timeout(10.0, read=None)) as response:
            seg.t_headers, seg.status = now(), response.status_code
            if response.status_code != 200:
                await response.aread()
                seg.body, seg.end = response.text, "http-error"
                return
            async for line in response.aiter_lines():
                if line:
                    try:
                        event = json.loads(line)
                        _record_event(ctx, seg, event)
                    except (ValueError, KeyError, TypeError):
                        seg.end, seg.body = "garbled", line[:500]
                        return
                    if on_event is not None:
                        on_event(event)
                    if event["type"] == "ERROR":
                        seg.end = "error-event"
                        return
        seg.end = "ended"
    except asyncio.CancelledError:
        if seg.end == "open":  # (cancelled while closing a stream that ended: keep its end)
            seg.end = "closed"
        raise
    except httpx.TransportError as exc:
        seg.end, seg.body = "broken", repr(exc)
    finally:
        seg.t_end = now()


def _record_event(ctx: Ctx, seg: Segment, event: dict[str, Any]) -> None:
    obj = event.get("object") or {}
    kind = event["type"]
    rv = -1
    if kind != "ERROR":
        rv = int(obj["metadata"]["resourceVersion"])
        ctx.saw(rv)
        ctx.last_rv[seg.watcher] = max(ctx.last_rv.get(seg.watcher, 0), rv)
    seg.events.append((now(), {"type": kind, "rv": rv, "object": canon(obj)}))


def _last_rv(seg: Segment, default: int | None) -> int | None:
    rvs = [e["rv"] for _, e in seg.events if e["type"] != "ERROR"]
    return rvs[-1] if rvs else default


async def watcher(ctx: Ctx, who: str, selector: str | None) -> None:
    """A watch from now that follows the kind for the whole run: after a broken connection
    it resumes from the last version it saw; after an ERROR it starts from now again."""
    from_rv: int | None = None
    async with ctx.client() as http:
        while True:
            await ctx.up.wait()
            seg = ctx.history.segment(who, from_rv, selector=selector)
            await watch_segment(ctx, http, seg)
            from_rv = None if seg.end in ("error-event", "http-error") else \
                _last_rv(seg, from_rv)
            if seg.end == "http-error":
                await asyncio.sleep(0.2)


async def hopper(ctx: Ctx, who: str) -> None:
    """Short watches from versions picked at random among those seen, each closed after a
    moment: resuming from the past, again and again."""
    rng = ctx.rng(who)
    async with ctx.client() as http:
        while not ctx.stopping.is_set():
            await ctx.up.wait()
            from_rv = max(0, ctx.head - rng.randint(0, 60))
            seg = ctx.history.segment(who, from_rv, selector=rng.choice([None, SELECTOR]))
            try:
                await asyncio.wait_for(watch_segment(ctx, http, seg), rng.uniform(0.2, 1.5))
            except TimeoutError:
                pass


async def ahead(ctx: Ctx, who: str, patience: float) -> None:
    """After every (re)start of the server, one watch from far beyond the newest version:
    it must end with an error within `patience` seconds rather than wait silently."""
    done = -1
    async with ctx.client() as http:
        while True:
            await ctx.up.wait()
            if done == ctx.restarts:
                await asyncio.sleep(0.05)
                continue
            seg = ctx.history.segment(who, ctx.head + AHEAD, ahead=True)
            restarts = ctx.restarts
            try:
                await asyncio.wait_for(watch_segment(ctx, http, seg), patience)
            except TimeoutError:
                pass
            if seg.end != "broken" or ctx.restarts != restarts:
                done = restarts


async def informer(ctx: Ctx, who: str, record: Informer, every: float = 0.7) -> None:
    """List, then watch from the list's version, keeping a local copy; now and then a
    fresh list to compare with (by the checker). Relists after an ERROR. Stops after a
    fresh list once it has delivered the fence."""
    async with ctx.client() as http:
        while True:
            epoch = await _informer_list(ctx, http, who, record)
            from_rv: int | None = epoch["list"].list_version
            fresh = asyncio.create_task(_fresh_lists(ctx, http, who, epoch, every))
            try:
                while True:
                    await ctx.up.wait()
                    seg = ctx.history.segment(who, from_rv)
                    epoch["segments"].append(seg)
                    await watch_segment(ctx, http, seg)
                    if seg.end in ("error-event", "http-error"):
                        break
                    from_rv = _last_rv(seg, from_rv)
            finally:
                fresh.cancel()


async def _informer_list(ctx: Ctx, http: httpx.AsyncClient, who: str, record: Informer
                         ) -> dict[str, Any]:
    while True:
        op = await send(ctx, http, ctx.history.op(who, "list", None), "GET", PATH)
        if op.outcome == "ok":
            return record.new_epoch(op)
        await asyncio.sleep(0.1)


async def _fresh_lists(ctx: Ctx, http: httpx.AsyncClient, who: str, epoch: dict[str, Any],
                       every: float) -> None:
    while True:
        await asyncio.sleep(every)
        fence = ctx.fence
        op = await send(ctx, http, ctx.history.op(who, "list", None), "GET", PATH)
        if op.outcome == "ok":
            epoch["fresh"].append(op)
            if fence is not None and op.list_version is not None and op.list_version >= fence:
                return
