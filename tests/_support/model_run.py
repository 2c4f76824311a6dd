"""A model run: clients race against a generated server on one backend, the server is killed
with SIGKILL (with writes in flight) and started again now and then, and afterwards the
recorded history is checked against the storage's change log (`model_check`).

Used by ``tests/e2e/test_model_check.py`` (a short seeded run per backend) and by
``bench/model_check.py`` (long runs, with figures). The phases of a run:

1. load: writers (random creates, deletes, spec and status writes, reads, bursts of
   creates and deletes of one name at once) on a few names; watchers that follow the kind
   from now (one unfiltered, one label-filtered) and resume from their last version after
   a broken connection; a hopper opening short watches from recent versions; an informer
   (list, then watch, fresh lists to compare); an "ahead" watch from far beyond the newest
   version after every start. Kills at planned times (counted while the server is up):
   the killer sends a volley of writes (a create, a delete, a spec and a status write of
   every name) and kills the server once it has done one of them, the others being in its
   write path; the first list after each start is timed before the clients resume.
2. probe and fence, with the load stopped: a list and a get of every name, then a write to
   every name (create if absent, else PUT) labelled to match the filtered watchers; the
   newest revision they got is the fence, which every open watch must then deliver.
3. SIGTERM, read the storage's log, check.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from .model_check import PROPERTIES, check
from .model_clients import (
    PATH,
    SELECTOR,
    Ctx,
    ahead,
    hopper,
    informer,
    send,
    watcher,
    write,
    writer,
)
from .model_history import Finding, History, Informer, Op, Restart, now
from .model_log import LogIndex
from .model_server import ServerProcess, backend_target, read_change_log

__all__ = ["RunConfig", "RunReport", "run_model"]

_FOLLOWERS = ("watch-all", "watch-a", "informer")


@dataclass
class RunConfig:
    backend: str
    seconds: float = 10.0
    kills: int = 2
    seed: int = 1
    names: int = 4
    writers: int = 6
    patience: float = 10.0  # how long an ahead watch may wait before its error
    stall_budget: float = 2.5  # how long the first list after a restart may take
    read_budget: float = 10.0  # how long any other read may take, under the full load
    fence_wait: float = 20.0  # how long watches get to deliver the fence


@dataclass
class RunReport:
    config: RunConfig
    history: History
    index: LogIndex
    findings: list[Finding]
    figures: dict[str, Any] = field(default_factory=dict)

    def summary(self, examples: int = 3) -> str:
        c, f = self.config, self.figures
        lines = [f"{c.backend}: seed {c.seed}, {c.seconds:g} s, {f['kills']} kills; "
                 f"{f['ops']} requests ({f['writes']} writes: {f['acked']} acknowledged, "
                 f"{f['unknown']} unanswered, {f['refused']} refused), {f['log']} changes "
                 f"in the log, {f['segments']} watch connections delivering {f['events']} "
                 f"events, {f['fresh_lists']} fresh lists by the informer",
                 f"  restarts: {f['restarts'] or 'none'}",
                 f"  latency p50/max: reads {f['read_p50_ms']:.0f}/{f['read_max_ms']:.0f} ms,"
                 f" writes {f['write_p50_ms']:.0f}/{f['write_max_ms']:.0f} ms"]
        by_prop: dict[str, list[Finding]] = {}
        for finding in self.findings:
            by_prop.setdefault(finding.prop, []).append(finding)
        lines.append(f"  findings: {len(self.findings)}"
                     + "".join(f"\n    {p}: {len(v)}" for p, v in by_prop.items()))
        for prop, found in by_prop.items():
            lines.append(f"  [{prop}] {PROPERTIES[prop]}")
            lines.extend(f"    - {x.message[:600]}" for x in found[:examples])
        return "\n".join(lines)


def run_model(project: Path, package: str, tmp: Path, config: RunConfig) -> RunReport:
    """One run on `config.backend`, checked."""
    with backend_target(config.backend, tmp) as target:
        server = ServerProcess(project, package, target)
        server.start()
        try:
            history = asyncio.run(_bounded(_drive(server, config), config))
        finally:
            server.stop()
        log = read_change_log(target, PATH.strip("/"))
        history.server_tracebacks = server.tracebacks()
    index = LogIndex(log, history.ops)
    findings = check(history, index, patience=config.patience,
                     stall_budget=config.stall_budget, read_budget=config.read_budget)
    return RunReport(config, history, index, findings, _figures(history, index))


async def _bounded(run: Coroutine[Any, Any, History], config: RunConfig) -> History:
    """The run, failing (not waiting for ever) when it takes far longer than planned: one
    full CI run once sat here with the server idle; this turns such a hang into a report."""
    limit = 120 + 20 * config.seconds + 60 * config.kills
    try:
        return await asyncio.wait_for(run, limit)
    except TimeoutError:
        raise AssertionError(f"the model run did not finish within {limit} s") from None


async def _drive(server: ServerProcess, config: RunConfig) -> History:
    history = History()
    ctx = Ctx(server.url, history, [f"m{i}" for i in range(config.names)], config.seed)
    ctx.up.set()
    record = Informer()
    history.informers.append(record)
    followers = [asyncio.create_task(watcher(ctx, "watch-all", None)),
                 asyncio.create_task(watcher(ctx, "watch-a", SELECTOR)),
                 asyncio.create_task(informer(ctx, "informer", record))]
    side = asyncio.create_task(ahead(ctx, "ahead", config.patience))
    load = [asyncio.create_task(writer(ctx, f"w{i}")) for i in range(config.writers)]
    load.append(asyncio.create_task(hopper(ctx, "hopper")))
    try:
        await _kills(ctx, server, config)
        ctx.stopping.set()
        await asyncio.gather(*load)
        history.fence = ctx.fence = await _fence(ctx)
        await _wait_fence(ctx, record, config.fence_wait)
        await _wait_ahead(ctx, config.patience)
    finally:
        for task in [*followers, side, *load]:
            task.cancel()
        await asyncio.gather(*followers, side, *load, return_exceptions=True)
    return history


async def _kills(ctx: Ctx, server: ServerProcess, config: RunConfig) -> None:
    """Kill and restart at planned times within the load phase, the last one well before
    its end (so the probes come after a restart). Times count while the server is up: a
    slow restart does not eat the load."""
    rng = random.Random(f"{config.seed}:kills")
    span = config.seconds * 0.8
    offsets = sorted(span * (i + rng.uniform(0.3, 0.9)) / config.kills
                     for i in range(config.kills))
    start = now()
    for offset in offsets:
        await asyncio.sleep(max(0.0, start + offset - now()))
        down = now()
        await _kill_and_restart(ctx, server, rng)
        start += now() - down
    await asyncio.sleep(max(0.0, start + config.seconds - now()))


async def _kill_and_restart(ctx: Ctx, server: ServerProcess, rng: random.Random) -> None:
    """Send a volley of writes (a create, a delete, a spec and a status write of every
    name), kill the server as soon as it has done one of them (the others are then in its
    write path), start it again, and time its first list before the clients resume."""
    async with ctx.client() as http:
        volley = [asyncio.create_task(write(ctx, http, "killer", rng, action, name, ctx.killer))
                  for name in ctx.names
                  for action in ("create", "merge", "status-merge", "delete")]
        await _first_write_done(volley, timeout=0.5)
        await asyncio.sleep(rng.uniform(0, 0.002))
        restart = Restart(now(), ctx.writes_in_flight)
        ctx.history.restarts.append(restart)
        ctx.up.clear()
        server.kill9()
        await asyncio.gather(*volley)
    restart.start_seconds = await asyncio.to_thread(server.start)
    restart.t_up = now()
    ctx.restarts += 1
    async with ctx.client() as http:
        restart.first_list = await send(ctx, http, ctx.history.op("restart", "list", None),
                                        "GET", PATH, wait_up=False)
    ctx.up.set()


async def _first_write_done(volley: list[asyncio.Task[Op]], timeout: float) -> None:
    pending = set(volley)
    deadline = now() + timeout
    while pending and now() < deadline:
        done, pending = await asyncio.wait(pending, timeout=deadline - now(),
                                           return_when=asyncio.FIRST_COMPLETED)
        if any(task.result().outcome == "ok" for task in done):
            return


async def _fence(ctx: Ctx) -> int:
    """Probe every name, then write each once more (labelled so the filtered watchers see
    it too); the newest revision those writes got."""
    rng = random.Random(f"{ctx.seed}:fence")
    counter = [0]
    written = []
    async with ctx.client() as http:
        await send(ctx, http, ctx.history.op("fence", "list", None), "GET", PATH)
        for name in ctx.names:
            got = await send(ctx, http, ctx.history.op("fence", "get", name), "GET",
                             f"{PATH}/{name}")
            action = "put" if got.outcome == "ok" else "create"
            op = await write(ctx, http, "fence", rng, action, name, counter, labels={"grp": "a"})
            written.append(op.rv or 0)
    return max(written) or ctx.head


async def _wait_fence(ctx: Ctx, record: Informer, timeout: float) -> None:
    """Wait until the followers delivered the fence and the informer listed past it; then
    their open connections are held to have delivered it."""
    fence = ctx.fence or 0
    deadline = now() + timeout

    def done() -> bool:
        fresh = record.epochs[-1]["fresh"] if record.epochs else []
        listed = any((op.list_version or 0) >= fence for op in fresh)
        return listed and all(ctx.last_rv.get(w, 0) >= fence for w in _FOLLOWERS)

    while not done() and now() < deadline:
        await asyncio.sleep(0.02)
    for seg in ctx.history.segments:
        if seg.end == "open" and seg.watcher in _FOLLOWERS:
            seg.must_reach = fence


async def _wait_ahead(ctx: Ctx, patience: float) -> None:
    deadline = now() + patience + 2.0
    while now() < deadline and any(s.ahead and s.end == "open" for s in ctx.history.segments):
        await asyncio.sleep(0.05)


def _figures(history: History, index: LogIndex) -> dict[str, Any]:
    ops = history.ops
    writes = [op for op in ops if op.is_write]
    reads = [op.seconds * 1000 for op in ops if not op.is_write and op.outcome == "ok"]
    wrote = [op.seconds * 1000 for op in writes if op.outcome == "ok"]
    restarts = "; ".join(
        f"#{n}: {r.writes_in_flight} writes in flight, up in {r.start_seconds or 0:.1f} s, "
        f"first list {_seconds(r)}" for n, r in enumerate(history.restarts, 1))
    return {
        "ops": len(ops), "writes": len(writes),
        "acked": sum(op.outcome == "ok" for op in writes),
        "unknown": sum(op.outcome == "unknown" for op in writes),
        "refused": sum(op.outcome == "failed" for op in writes),
        "log": len(index.log), "segments": len(history.segments),
        "events": sum(len(s.events) for s in history.segments),
        "fresh_lists": sum(len(e["fresh"]) for i in history.informers for e in i.epochs),
        "kills": len(history.restarts), "restarts": restarts,
        "first_list_seconds": [r.first_list.seconds if r.first_list else None
                               for r in history.restarts],
        "read_p50_ms": median(reads) if reads else 0.0, "read_max_ms": max(reads, default=0),
        "write_p50_ms": median(wrote) if wrote else 0.0,
        "write_max_ms": max(wrote, default=0),
    }


def _seconds(restart: Restart) -> str:
    op = restart.first_list
    if op is None:
        return "none"
    return f"{op.seconds:.2f} s ({op.status or op.error})"
