"""`rack_provision.py --bus nats`: one API process and N controller processes (SPEC section 6).

The processes share one PostgreSQL (or MariaDB) database and one NATS JetStream stream, as
the generated README's "Several processes" runs them: ``serve --role api`` takes the POSTs,
``serve --role controller`` processes share the racks through the shard leases. Several
racks are POSTed at once (one rack is one key: only several keys can be shared) and the
clock stops when every one of them reads phase Ready. Each controller's ``/metrics`` then
says how many rack reconciles it ran and how many shards it held.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import HOST, Server, free_port, request

NATS_URL = "nats://127.0.0.1:4222"
SHARDS = 32
PACKAGE = "rack_inventory"
POLL_SECONDS = 0.2


class ProcessesError(RuntimeError):
    pass


def provision_with_processes(
    project: Path, url: str, logs: Path, template: dict[str, Any], racks: int,
    controllers: int, timeout: float, run: Callable[[list[str], Path], str],
    counts: Callable[[], dict[str, int]], want_per_rack: dict[str, int],
) -> tuple[float, str]:
    """Seconds from the first POST /racks until all `racks` are Ready, and a note."""
    module = [sys.executable, "-m", f"{PACKAGE}.server"]
    storage = ["--database-url", url]
    said = run([*module, "migrate", *storage], project).strip()
    print(f"  python -m {PACKAGE}.server migrate: {said}", flush=True)
    token = secrets.token_hex(4)
    bus = ["--events-bus", "nats", "--nats-url", NATS_URL, "--event-prefix",
           f"bench{token}.io.fabrica", "--nats-stream", f"BENCH{token.upper()}"]
    common = [*storage, *bus, "--no-access-log", "--host", HOST]
    servers: list[Server] = []
    try:
        api = _start(servers, "api", module, common, project, logs, ["--role", "api"])
        ctls = [_start(servers, f"controller{n}", module, common, project, logs,
                       ["--role", "controller", "--instance", f"controller-{n}"])
                for n in range(controllers)]
        _wait_balanced(ctls, controllers, timeout=60)
        cpu_before, machine_before = [cpu_seconds(s) for s in servers], _machine_busy()
        seconds, polls = _provision(api, template, racks, timeout)
        used = [after - before for after, before in
                zip([cpu_seconds(s) for s in servers], cpu_before, strict=True)]
        busy = _busy_fraction(machine_before, _machine_busy())
        stored = counts()
        want = {c: n * racks for c, n in want_per_rack.items()}
        if stored != want:
            raise ProcessesError(f"stored children {stored}, want {want}")
        split = [{r: int(_metric(c, rf'fabrica_reconcile_total\{{kind="Rack",result="{r}"\}}'))
                  for r in ("requeue", "success", "error")} for c in ctls]
        cpu = ", ".join(f"{s.name} {u:.1f}s" for s, u in zip(servers, used, strict=True))
        note = (f"{racks} racks POSTed at once, 1 api + {controllers} controller processes "
                f"on one database and NATS; {polls} polls; rack reconciles per controller "
                f"by result {split}; CPU used meanwhile: {cpu}; all {_cores()} cores of "
                f"the machine {busy:.0%} busy (database, NATS, other work included)")
        return seconds, note
    except BaseException:
        for server in servers:
            print(f"\n{server.name} log (tail):\n{server.log_tail(25)}", file=sys.stderr,
                  flush=True)
        raise
    finally:
        for server in servers:
            server.stop()
        _drop_stream(f"BENCH{token.upper()}")


def cpu_seconds(server: Server) -> float:
    """User + system CPU time of a server process so far (Linux /proc)."""
    assert server.proc is not None
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _busy_fraction(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def _cores() -> int:
    return os.cpu_count() or 1


def _start(servers: list[Server], name: str, module: list[str], common: list[str],
           project: Path, logs: Path, role: list[str]) -> Server:
    port = free_port()
    server = Server(name, [*module, "serve", "--port", str(port), *common, *role], port,
                    cwd=project, log_dir=logs)
    servers.append(server)
    try:
        server.__enter__()
    except RuntimeError as exc:
        raise ProcessesError(str(exc)) from exc
    return server


def _wait_balanced(ctls: list[Server], count: int, timeout: float) -> None:
    """Until every controller sees `count` members and the shards are spread (each holds
    its share, all are held): only then does the clock start."""
    share = -(-SHARDS // count)
    deadline = time.monotonic() + timeout
    while True:
        members = [_metric(c, r"fabrica_controller_members") for c in ctls]
        held = [_metric(c, r"fabrica_controller_shards_held") for c in ctls]
        if all(m == count for m in members) and sum(held) == SHARDS and \
                all(h <= share for h in held):
            print(f"  {count} controllers hold {[int(h) for h in held]} of {SHARDS} shards",
                  flush=True)
            return
        if time.monotonic() > deadline:
            raise ProcessesError(f"controllers not balanced after {timeout:.0f}s: members "
                                 f"{members}, shards held {held}")
        time.sleep(0.2)


def _metric(server: Server, name: str) -> float:
    status, body = request(server.port, "GET", "/metrics", timeout=10)
    if status != 200:
        raise ProcessesError(f"{server.name} /metrics -> {status}")
    found = re.search(rf"^{name} ([0-9.e+]+)$", body.decode(), re.M)
    return float(found[1]) if found else 0.0


def _provision(api: Server, template: dict[str, Any], racks: int, timeout: float
               ) -> tuple[float, int]:
    made = _call(api, "POST", "/racktemplates", template, 201)
    names = [f"rack-{n:02d}" for n in range(racks)]
    started = time.perf_counter()
    for name in names:
        _call(api, "POST", "/racks", {"name": name, "templateUID": made["metadata"]["uid"]},
              201)
    waiting, polls = set(names), 0
    while waiting:
        if time.perf_counter() - started > timeout:
            raise ProcessesError(f"racks not Ready after {timeout:.0f}s: {sorted(waiting)}")
        time.sleep(POLL_SECONDS)
        for name in sorted(waiting):
            rack = _call(api, "GET", f"/racks/{name}", None, 200)
            polls += 1
            phase = rack.get("status", {}).get("phase")
            if phase == "Error":
                raise ProcessesError(f"rack {name} went to Error: {rack['status']}")
            if phase == "Ready":
                waiting.discard(name)
    return time.perf_counter() - started, polls


def _call(server: Server, method: str, path: str, body: Any, expect: int) -> Any:
    status, data = request(server.port, method, path, body, timeout=60)
    if status != expect:
        raise ProcessesError(f"{method} {path} -> {status} (want {expect}): {data[:300]!r}")
    return json.loads(data)


def _drop_stream(stream: str) -> None:
    import nats
    import nats.js.errors

    async def drop() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(stream)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await nc.close()

    try:
        asyncio.run(drop())
    except Exception as exc:  # say so; the bench's figures stand
        print(f"WARNING: could not delete JetStream stream {stream}: {exc!r}", file=sys.stderr)
