"""Rack provisioning through the real server against the storage backend alone.

Builds the rack-inventory project of examples/rack-reconciliation with the real CLI, exactly as
a user would (`fabrica init rack-inventory ... --storage-type file --events --events-bus memory
--reconcile`, `fabrica add resource` for the six kinds, the example's files copied in,
`fabrica generate`), serves it on 127.0.0.1 with the file backend, POSTs the largest template
(42 chassis x 16 blades x 8 nodes, dedicated BMCs: 42 + 672 + 5,376 + 5,376 = 11,466
children), then POSTs a rack and times it from that POST until `GET /racks/NAME` reports
`status.phase == "Ready"`; the children are then counted through the list endpoints.

In the same run, the storage backend alone (`fabrica.storage.FileStorage`, in this process, on
a fresh data dir) creates the same documents: the same collections, names, labels, owner
references, specs and statuses the reconciler writes, built beforehand from the example's
typed resources, with 32 creates in flight (the reconciler's PARALLEL_CREATES) and again one
at a time. The headline ratio is controller time / storage time at 32 in flight; the aim is
at most 2.

    .venv/bin/python bench/rack_provision.py                 # full size, ~1 min
    .venv/bin/python bench/rack_provision.py --quick         # 4 x 4 x 4 dedicated smoke run
    .venv/bin/python bench/rack_provision.py --chassis 8 --blades 16 --nodes 8 --bmc-mode shared
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HOST, Server, free_port, request  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "rack-reconciliation"
KINDS = ("RackTemplate", "Rack", "Chassis", "Blade", "BMC", "Node")
RESOURCE_FILES = ("racktemplate", "rack", "chassis", "blade", "bmc", "node")
PACKAGE = "rack_inventory"
RACK_UID_LABEL = "fabrica.io/rack-uid"  # the reconciler's label on every child
PARALLEL = 32  # PARALLEL_CREATES in examples/rack-reconciliation/rack_reconciler.py
POLL_SECONDS = 0.2
AIM = 2.0
TEMPLATE_NAME = "big"
RACK_NAME = "big-01"
COLLECTIONS = ("chassis", "blades", "bmcs", "nodes")


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Shape:
    chassis: int
    blades: int
    nodes: int
    bmc_mode: str

    @property
    def counts(self) -> dict[str, int]:
        """Expected children per collection."""
        blades = self.chassis * self.blades
        nodes = blades * self.nodes
        bmcs = nodes if self.bmc_mode == "dedicated" else blades
        return {"chassis": self.chassis, "blades": blades, "bmcs": bmcs, "nodes": nodes}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        c = self.counts
        return (f"{self.chassis} chassis x {self.blades} blades x {self.nodes} nodes, "
                f"{self.bmc_mode} BMCs: {c['chassis']} chassis + {c['blades']} blades + "
                f"{c['nodes']} nodes + {c['bmcs']} BMCs = {self.total:,} children")

    def template_body(self) -> dict[str, Any]:
        return {"name": TEMPLATE_NAME, "chassisCount": self.chassis,
                "chassisConfig": {"bladeCount": self.blades,
                                  "bladeConfig": {"nodeCount": self.nodes,
                                                  "bmcMode": self.bmc_mode}}}


@dataclass
class Timing:
    scenario: str
    seconds: float
    resources: int
    note: str = ""

    @property
    def rate(self) -> float:
        return self.resources / self.seconds if self.seconds > 0 else float("nan")


# -- the generated project ---------------------------------------------------------------------


def make_project(tmp: Path) -> Path:
    """The rack-inventory project, made with the real CLI as the example's README does."""
    cli = [sys.executable, "-m", "fabrica.cli"]
    _run([*cli, "init", "rack-inventory", "--module", "github.com/example/rack-inventory",
          "--storage-type", "file", "--events", "--events-bus", "memory", "--reconcile"], tmp)
    project = tmp / "rack-inventory"
    for kind in KINDS:
        _run([*cli, "add", "resource", kind], project)
    for name in RESOURCE_FILES:
        shutil.copy(EXAMPLE / f"{name}.py", project / PACKAGE / "resources" / f"{name}.py")
    shutil.copy(EXAMPLE / "rack_reconciler.py", project / PACKAGE / "reconcilers")
    _run([*cli, "generate"], project)
    return project


def _run(argv: list[str], cwd: Path) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(argv)}` failed ({done.returncode}) in {cwd}:\n"
                         f"{done.stdout}{done.stderr}")


# -- the controller through the real server ----------------------------------------------------


def provision_through_server(project: Path, data_dir: Path, logs: Path, shape: Shape,
                             timeout: float) -> list[Timing]:
    port = free_port()
    argv = [sys.executable, "-m", f"{PACKAGE}.server", "serve", "--host", HOST,
            "--port", str(port), "--data-dir", str(data_dir), "--no-access-log"]
    server = Server("rack-inventory", argv, port, cwd=project, log_dir=logs)
    with server:
        try:
            return _provision(server, data_dir, shape, timeout)
        except BaseException:
            print(f"\nserver log (tail):\n{server.log_tail(40)}",
                  file=sys.stderr, flush=True)
            raise


def _provision(server: Server, data_dir: Path, shape: Shape, timeout: float
               ) -> list[Timing]:
    template = _call(server, "POST", "/racktemplates", shape.template_body(), expect=201)
    body = {"name": RACK_NAME, "templateUID": template["metadata"]["uid"]}

    started = time.perf_counter()
    rack = _call(server, "POST", "/racks", body, expect=201)
    deadline = started + timeout
    last_report = started
    polls: list[float] = []  # seconds each GET took to answer
    while True:
        status = rack.get("status", {})
        if status.get("phase") == "Ready":
            break
        if status.get("phase") == "Error":
            raise BenchError(f"rack {RACK_NAME} went to Error: {status.get('message')!r}")
        now = time.perf_counter()
        if now > deadline:
            raise BenchError(f"rack {RACK_NAME} not Ready after {timeout:.0f}s; last status: "
                             f"{json.dumps(status)[:600]}")
        if now - last_report >= 10:
            last_report = now
            stored = {c: _documents_in(data_dir / c) for c in COLLECTIONS}
            print(f"  {now - started:5.0f}s  phase {status.get('phase')!r}, "
                  f"{sum(stored.values()):,} children stored so far {stored}", flush=True)
        time.sleep(POLL_SECONDS)
        asked = time.perf_counter()
        rack = _call(server, "GET", f"/racks/{RACK_NAME}", expect=200)
        polls.append(time.perf_counter() - asked)
    seconds = time.perf_counter() - started

    _verify(server, shape, rack)
    timings = [Timing(
        "controller: POST -> GET sees Ready", seconds, shape.total,
        f"POST /racks until GET /racks/{RACK_NAME} answers phase Ready, polled every "
        f"{POLL_SECONDS:g}s; {len(polls)} polls, slowest answer {max(polls, default=0):.2f}s, "
        f"the last (Ready) {polls[-1] if polls else 0:.2f}s")]
    server_side = _server_seconds(rack)
    if server_side is not None:
        timings.append(Timing(
            "controller: server clock", server_side, shape.total,
            "the rack's metadata.createdAt -> its Ready condition's lastTransitionTime"))
    return timings


def _verify(server: Server, shape: Shape, rack: dict[str, Any]) -> None:
    """Every expected child exists, carries the rack's label, and the rack counted them."""
    problems = []
    selector = f"labelSelector={RACK_UID_LABEL}={rack['metadata']['uid']}"
    for collection, want in shape.counts.items():
        everything = _call(server, "GET", f"/{collection}", expect=200, timeout=120)
        labelled = _call(server, "GET", f"/{collection}?{selector}", expect=200, timeout=120)
        if len(everything) != want or len(labelled) != want:
            problems.append(f"GET /{collection}: want {want}, got {len(everything)} "
                            f"({len(labelled)} with the rack's label)")
    status = rack["status"]
    reported = {"chassis": status.get("totalChassis"), "blades": status.get("totalBlades"),
                "bmcs": status.get("totalBMCs"), "nodes": status.get("totalNodes")}
    if reported != shape.counts:
        problems.append(f"rack status counts {reported}, want {shape.counts}")
    if problems:
        raise BenchError("the rack is Ready but its children are wrong:\n  "
                         + "\n  ".join(problems))
    print(f"  verified through the list endpoints: {shape.counts} "
          f"= {shape.total:,} children, all labelled with the rack's uid", flush=True)


def _server_seconds(rack: dict[str, Any]) -> float | None:
    ready = next((c for c in rack["status"].get("conditions", []) if c["type"] == "Ready"), None)
    created = rack["metadata"].get("createdAt")
    if ready is None or not created:
        return None
    return (datetime.fromisoformat(ready["lastTransitionTime"].replace("Z", "+00:00"))
            - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()


def _call(server: Server, method: str, path: str, body: Any = None, *, expect: int,
          timeout: float = 30.0) -> Any:
    try:
        status, data = request(server.port, method, path, body, timeout=timeout)
    except OSError as exc:
        raise BenchError(f"{method} {path}: {exc!r}") from exc
    if status != expect:
        raise BenchError(f"{method} {path} -> {status} (want {expect}): {data[:500]!r}")
    return json.loads(data)


# -- the storage backend alone -----------------------------------------------------------------


def storage_documents(project: Path, shape: Shape) -> list[tuple[str, dict[str, Any]]]:
    """(collection, document) for every child, as the reconciler's writes store them.

    Built with the project's own typed resources the way `ResourceStore.create` builds them
    (fresh uids, labels, owner references, timestamps, generation 1, default status), then
    dumped to the wire form the backend stores. Parents come before their children.
    """
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    res = {name: importlib.import_module(f"{PACKAGE}.resources.{name}")
           for name in ("rack", "chassis", "blade", "bmc", "node")}
    from fabrica.resource import Metadata, OwnerReference, new_uid, utcnow

    rack_cls = res["rack"].Rack
    rack_uid = new_uid(rack_cls.resource_info.prefix)
    labels = {RACK_UID_LABEL: rack_uid}
    docs: list[tuple[str, dict[str, Any]]] = []

    def make(cls: Any, name: str, spec: Any, owner: OwnerReference) -> Any:
        now = utcnow()
        obj = cls(metadata=Metadata(
            name=name, uid=new_uid(cls.resource_info.prefix), labels=labels,
            created_at=now, updated_at=now, generation=1, owner_references=[owner],
        ), spec=spec, status=cls.resource_info.status_type())
        docs.append((cls.resource_info.plural, obj.model_dump(mode="json", by_alias=True)))
        return obj

    ch_m, bl_m, bmc_m, node_m = res["chassis"], res["blade"], res["bmc"], res["node"]
    rack_owner = OwnerReference(kind=rack_cls.resource_info.kind, name=RACK_NAME, uid=rack_uid,
                                controller=True, block_owner_deletion=True)
    for c in range(shape.chassis):
        box = make(ch_m.Chassis, f"{RACK_NAME}-c{c}",
                   ch_m.ChassisSpec(rack_uid=rack_uid, chassis_number=c), rack_owner)
        for b in range(shape.blades):
            blade_name = f"{box.name}-b{b}"
            blade = make(bl_m.Blade, blade_name,
                         bl_m.BladeSpec(chassis_uid=box.uid, blade_number=b),
                         box.owner_reference())
            owner = blade.owner_reference()
            shared = None
            if shape.bmc_mode == "shared":
                shared = make(bmc_m.BMC, f"{blade_name}-bmc",
                              bmc_m.BMCSpec(blade_uid=blade.uid), owner)
            for n in range(shape.nodes):
                node_name = f"{blade_name}-n{n}"
                bmc = shared or make(bmc_m.BMC, f"{node_name}-bmc",
                                     bmc_m.BMCSpec(blade_uid=blade.uid), owner)
                make(node_m.Node, node_name,
                     node_m.NodeSpec(blade_uid=blade.uid, bmc_uid=bmc.uid, node_number=n),
                     owner)
    return docs


def storage_alone(project: Path, data_dir: Path, shape: Shape, parallel: int) -> Timing:
    """Time `FileStorage.create` of every child on a fresh data dir, `parallel` in flight."""
    from fabrica.storage import FileStorage

    docs = storage_documents(project, shape)
    if len(docs) != shape.total:
        raise BenchError(f"built {len(docs)} documents, want {shape.total}")
    storage = FileStorage(data_dir)
    with _runner() as runner:
        seconds = runner.run(_create_all(storage, docs, parallel))
    got = {c: _documents_in(data_dir / c) for c in COLLECTIONS}
    if got != shape.counts:
        raise BenchError(f"storage alone stored {got}, want {shape.counts}")
    return Timing(_storage_label(parallel), seconds, len(docs),
                  "FileStorage.create of the same documents, built beforehand")


def _storage_label(parallel: int) -> str:
    return f"storage alone, {parallel} in flight" if parallel > 1 else \
        "storage alone, sequential"


def _documents_in(directory: Path) -> int:
    if not directory.is_dir():
        return 0
    return sum(1 for n in os.listdir(directory) if n.endswith(".json") and not n.startswith("."))


async def _create_all(storage: Any, docs: list[tuple[str, dict[str, Any]]],
                      parallel: int) -> float:
    work = [_bind(storage.create, collection, doc) for collection, doc in docs]
    started = time.perf_counter()
    if parallel == 1:
        for item in work:
            await item()
    else:
        await _limited(work, parallel)
    return time.perf_counter() - started


def _bind(fn: Callable[..., Awaitable[Any]], *args: Any) -> Callable[[], Awaitable[Any]]:
    return lambda: fn(*args)


async def _limited(work: Iterable[Callable[[], Awaitable[Any]]], limit: int) -> None:
    """The reconciler's `_limited`: at most `limit` awaits in flight, first failure raised."""
    semaphore = asyncio.Semaphore(limit)

    async def one(item: Callable[[], Awaitable[Any]]) -> None:
        async with semaphore:
            await item()

    try:
        async with asyncio.TaskGroup() as group:
            for item in work:
                group.create_task(one(item))
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None


def _runner() -> asyncio.Runner:
    """The event loop uvicorn gives the server: uvloop when installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


# -- the run -----------------------------------------------------------------------------------


def bench(shape: Shape, timeout: float) -> list[Timing]:
    with tempfile.TemporaryDirectory(prefix="fabrica-bench-rack-") as tmp_name:
        tmp = Path(tmp_name)
        logs = tmp / "logs"
        logs.mkdir()
        started = time.monotonic()
        project = make_project(tmp)
        print(f"generated rack-inventory with the fabrica CLI in "
              f"{time.monotonic() - started:.1f}s", flush=True)

        print("controller: POST /racks, waiting for phase Ready ...", flush=True)
        timings = provision_through_server(project, tmp / "data-server", logs, shape, timeout)
        print(f"  Ready after {timings[0].seconds:.2f}s", flush=True)

        for parallel in (PARALLEL, 1):
            print(f"storage alone: {shape.total:,} FileStorage.create, {parallel} in flight ...",
                  flush=True)
            timing = storage_alone(project, tmp / f"data-storage-{parallel}", shape, parallel)
            print(f"  {timing.seconds:.2f}s", flush=True)
            timings.append(timing)
    return timings


def print_report(shape: Shape, timings: list[Timing]) -> bool:
    controller = timings[0]
    storage32 = next(t for t in timings if t.scenario == _storage_label(PARALLEL))
    print()
    print(f"{'scenario':36} {'seconds':>9} {'resources/s':>12} {'ratio to storage alone':>23}")
    for t in timings:
        ratio = t.seconds / storage32.seconds
        print(f"{t.scenario:36} {t.seconds:9.2f} {t.rate:12.0f} {ratio:23.2f}")
    print()
    for t in timings:
        print(f"{t.scenario}: {t.note}")
    ratio = controller.seconds / storage32.seconds
    met = ratio <= AIM
    print(f"\n{shape.total:,} children: time to Ready {controller.seconds:.2f}s "
          f"({controller.rate:.0f} resources/s); storage alone ({PARALLEL} in flight) "
          f"{storage32.seconds:.2f}s ({storage32.rate:.0f} resources/s); "
          f"ratio {ratio:.2f} (aim <= {AIM:g}: {'met' if met else 'NOT met'})")
    return met


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["file"], default="file",
                        help="storage backend of the server and of the baseline (file only)")
    parser.add_argument("--chassis", type=int, help="chassis per rack, 1..42 (default 42)")
    parser.add_argument("--blades", type=int, help="blades per chassis, 1..16 (default 16)")
    parser.add_argument("--nodes", type=int, help="nodes per blade, 1..8 (default 8)")
    parser.add_argument("--bmc-mode", choices=["dedicated", "shared"],
                        help="one BMC per node or per blade (default dedicated)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4 x 4 x 4 dedicated unless sizes are given")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for Ready before failing (default 600)")
    args = parser.parse_args(argv)
    small = args.quick
    args.chassis = args.chassis or (4 if small else 42)
    args.blades = args.blades or (4 if small else 16)
    args.nodes = args.nodes or (4 if small else 8)
    args.bmc_mode = args.bmc_mode or "dedicated"
    for flag, value, top in (("--chassis", args.chassis, 42), ("--blades", args.blades, 16),
                             ("--nodes", args.nodes, 8)):
        if not 1 <= value <= top:
            parser.error(f"{flag} must be 1..{top} (the RackTemplate's limits)")
    if args.timeout <= 0:
        parser.error("--timeout must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    shape = Shape(args.chassis, args.blades, args.nodes, args.bmc_mode)
    print(f"rack: {shape.describe()}")
    print(f"backend: {args.backend} (server and baseline); host: {os.cpu_count()} CPUs "
          f"(load average {os.getloadavg()[0]:.2f} at start), Python "
          f"{platform.python_version()}, traffic to {HOST} only", flush=True)
    started = time.monotonic()
    try:
        timings = bench(shape, args.timeout)
    except BenchError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 1
    print_report(shape, timings)
    print(f"total time {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
