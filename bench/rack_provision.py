"""Rack provisioning through the real server against the storage backend alone.

Builds the rack-inventory project of examples/rack-reconciliation with the real CLI, exactly as
a user would (`fabrica init rack-inventory ... --storage-type file --events --events-bus memory
--reconcile`, or `--storage-type sql --db sqlite|postgres|mysql` for the SQL backends,
`fabrica add resource` for the six kinds, the example's files copied in, `fabrica generate`),
serves it on 127.0.0.1 with the chosen backend (`--backend file|sqlite|postgresql|mariadb`:
a data dir, a SQLite file, or a schema / database of its own on the local PostgreSQL or
MariaDB server, migrated with `python -m rack_inventory.server migrate`), POSTs the largest
template
(42 chassis x 16 blades x 8 nodes, dedicated BMCs: 42 + 672 + 5,376 + 5,376 = 11,466
children), then POSTs a rack and times it from that POST until `GET /racks/NAME` reports
`status.phase == "Ready"`; the children are then counted through the list endpoints.

In the same run, the same backend alone (`fabrica.storage.FileStorage` on a fresh data dir, or
`fabrica.storage.SQLStorage` on a fresh, migrated database of its own; in this process)
creates the same documents: the same collections, names, labels, owner references, specs and
statuses the reconciler writes, built beforehand from the example's typed resources, with 32
creates in flight (the reconciler's PARALLEL_CREATES) and again one at a time. The headline
ratio is controller time / storage time at 32 in flight; the aim is at most 2. On files it
also times a raw write floor, the same documents as bare temp file + fsync + rename (32
threads), just before and just after the controller, and prints the files row: time to
Ready / the floor's mean, aim at most 2.

Every schema / database made for a run is dropped at its end, on failure too.

    .venv/bin/python bench/rack_provision.py                 # full size, file backend, ~1 min
    .venv/bin/python bench/rack_provision.py --quick         # 4 x 4 x 4 dedicated smoke run
    .venv/bin/python bench/rack_provision.py --backend postgresql --timeout 1200
    .venv/bin/python bench/rack_provision.py --chassis 8 --blades 16 --nodes 8 --bmc-mode shared

With ``--bus nats`` (PostgreSQL or MariaDB) it runs several processes instead: one
``--role api`` and N ``--role controller`` processes on one database and NATS JetStream,
for each N of ``--controllers`` (default 1,2), each on a fresh schema and stream; it POSTs
``--racks`` racks at once and times until all are Ready, then prints the speed-up of each N
over one controller (see `_processes`).

    .venv/bin/python bench/rack_provision.py --backend postgresql --bus nats --controllers 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HOST, Server, durable_write, free_port, request  # noqa: E402
from _processes import ProcessesError, cpu_seconds, provision_with_processes  # noqa: E402

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
BACKENDS = ("file", "sqlite", "postgresql", "mariadb")
INIT_DB = {"sqlite": "sqlite", "postgresql": "postgres", "mariadb": "mysql"}  # fabrica init --db
# The machine's own database servers (as tests/_support/sqldb.py and bench/storage_scale.py
# use them).
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql://root@127.0.0.1:3306/test"


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


def make_project(tmp: Path, backend: str) -> Path:
    """The rack-inventory project, made with the real CLI as the example's README does."""
    cli = [sys.executable, "-m", "fabrica.cli"]
    storage = (["--storage-type", "file"] if backend == "file"
               else ["--storage-type", "sql", "--db", INIT_DB[backend]])
    _run([*cli, "init", "rack-inventory", "--module", "github.com/example/rack-inventory",
          *storage, "--events", "--events-bus", "memory", "--reconcile"], tmp)
    project = tmp / "rack-inventory"
    for kind in KINDS:
        _run([*cli, "add", "resource", kind], project)
    for name in RESOURCE_FILES:
        shutil.copy(EXAMPLE / f"{name}.py", project / PACKAGE / "resources" / f"{name}.py")
    shutil.copy(EXAMPLE / "rack_reconciler.py", project / PACKAGE / "reconcilers")
    _run([*cli, "generate"], project)
    return project


def _run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(argv)}` failed ({done.returncode}) in {cwd}:\n"
                         f"{done.stdout}{done.stderr}")
    return done.stdout


# -- where the documents go: a data dir, or an empty database of the run's own -----------------


@dataclass(frozen=True)
class Place:
    """One scenario's storage: `data_dir` for the file backend, `url` (a fresh, empty
    database) for the SQL ones."""

    backend: str
    data_dir: Path
    url: str | None = None

    def counts(self) -> dict[str, int]:
        """Documents stored so far per collection (a count query on SQL)."""
        if self.url is None:
            return {c: _documents_in(self.data_dir / c) for c in COLLECTIONS}
        url = self.url

        async def count() -> dict[str, int]:
            from fabrica.storage import SQLStorage

            storage = SQLStorage(url)
            try:
                return await _sql_counts(storage)
            finally:
                await storage.close()

        return asyncio.run(count())


@contextmanager
def place(backend: str, tmp: Path, label: str) -> Iterator[Place]:
    """A fresh place for `label`'s documents. PostgreSQL: a schema of its own in database
    ``test``, reached through ``?options=-csearch_path=...``; MariaDB: a database of its own.
    Either is dropped when the block ends, however it ends."""
    data_dir = tmp / f"data-{label}"
    if backend == "file":
        yield Place(backend, data_dir)
        return
    if backend == "sqlite":
        yield Place(backend, data_dir, f"sqlite:///{tmp / label}.db")
        return
    name = f"fabrica_bench_{secrets.token_hex(4)}"
    if backend == "postgresql":
        admin = POSTGRES_URL
        create, drop = f"CREATE SCHEMA {name}", f"DROP SCHEMA IF EXISTS {name} CASCADE"
        url = f"{POSTGRES_URL}?options={quote(f'-csearch_path={name}')}"
    elif backend == "mariadb":
        admin = MARIADB_URL
        create = f"CREATE DATABASE {name} CHARACTER SET utf8mb4"
        drop = f"DROP DATABASE IF EXISTS {name}"
        url = f"{MARIADB_URL.rsplit('/', 1)[0]}/{name}"
    else:  # pragma: no cover - argparse's choices
        raise ValueError(backend)
    try:
        _admin(admin, create)
    except Exception as exc:
        raise BenchError(f"cannot create {name} on {admin}: {type(exc).__name__}: {exc}\n"
                         "(is the database server running? .ci/run starts it)") from exc
    try:
        yield Place(backend, data_dir, url)
    finally:
        _drop(admin, name, drop)


def _drop(admin: str, name: str, drop: str, attempts: int = 10) -> None:
    """Drop, retried: a server stopped in the middle of its writes leaves them to finish
    (or roll back) on the database's side, and PostgreSQL can answer a DROP SCHEMA that
    meets them with a deadlock."""
    for attempt in range(attempts):
        try:
            _admin(admin, drop)
            return
        except Exception as exc:  # say so, without hiding what happened in the block
            if attempt + 1 == attempts:
                print(f"WARNING: could not drop {name} on {admin}: {exc!r}",
                      file=sys.stderr, flush=True)
                return
            time.sleep(1)


def _admin(url: str, statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncEngine

    from fabrica.storage import SQLStorage

    async def go() -> None:
        storage = SQLStorage(url)
        assert isinstance(storage.engine, AsyncEngine)
        try:
            async with storage.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(statement))
        finally:
            await storage.close()

    asyncio.run(go())


async def _sql_counts(storage: Any) -> dict[str, int]:
    """Rows per collection in `storage`'s ``fabrica_resources`` (a `SQLStorage`)."""
    from sqlalchemy import Engine, text

    query = text("SELECT collection, COUNT(*) FROM fabrica_resources GROUP BY collection")
    engine = storage.engine
    if isinstance(engine, Engine):  # SQLite: the synchronous engine, in a worker thread
        def sync() -> list[Any]:
            with engine.connect() as conn:
                return list(conn.execute(query).all())

        rows = await asyncio.to_thread(sync)
    else:
        async with engine.connect() as conn:
            rows = list((await conn.execute(query)).all())
    found = {collection: int(n) for collection, n in rows}
    return {c: found.get(c, 0) for c in COLLECTIONS}


# -- the controller through the real server ----------------------------------------------------


def provision_through_server(project: Path, where: Place, logs: Path, shape: Shape,
                             timeout: float) -> list[Timing]:
    module = [sys.executable, "-m", f"{PACKAGE}.server"]
    if where.url is None:
        storage = ["--data-dir", str(where.data_dir)]
    else:
        storage = ["--database-url", where.url]  # SQLite: auto-migrate, its default
        if where.backend != "sqlite":
            said = _run([*module, "migrate", *storage], project).strip()
            print(f"  python -m {PACKAGE}.server migrate: {said}", flush=True)
    port = free_port()
    argv = [*module, "serve", "--host", HOST, "--port", str(port), *storage, "--no-access-log"]
    server = Server("rack-inventory", argv, port, cwd=project, log_dir=logs)
    try:
        server.__enter__()  # not `with server:`, which would start a second server
    except RuntimeError as exc:  # exited or never healthy: the message has its log
        raise BenchError(str(exc)) from exc
    try:
        return _provision(server, where, shape, timeout)
    except BaseException:
        print(f"\nserver log (tail):\n{server.log_tail(40)}", file=sys.stderr, flush=True)
        raise
    finally:
        server.stop()


def _provision(server: Server, where: Place, shape: Shape, timeout: float
               ) -> list[Timing]:
    template = _call(server, "POST", "/racktemplates", shape.template_body(), expect=201)
    body = {"name": RACK_NAME, "templateUID": template["metadata"]["uid"]}

    cpu_before = cpu_seconds(server)
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
            stored = where.counts()
            print(f"  {now - started:5.0f}s  phase {status.get('phase')!r}, "
                  f"{sum(stored.values()):,} children stored so far {stored}", flush=True)
        time.sleep(POLL_SECONDS)
        asked = time.perf_counter()
        rack = _call(server, "GET", f"/racks/{RACK_NAME}", expect=200)
        polls.append(time.perf_counter() - asked)
    seconds = time.perf_counter() - started
    print(f"  the server process used {cpu_seconds(server) - cpu_before:.1f}s of CPU meanwhile",
          flush=True)

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

    taken: set[str] = set()

    def fresh_uid(prefix: str) -> str:
        """A uid no other document has: 32 random bits collide now and then among 11,466
        (the store draws again on a collision; these documents go to storage directly)."""
        while (uid := new_uid(prefix)) in taken:
            pass
        taken.add(uid)
        return uid

    def make(cls: Any, name: str, spec: Any, owner: OwnerReference) -> Any:
        now = utcnow()
        obj = cls(metadata=Metadata(
            name=name, uid=fresh_uid(cls.resource_info.prefix), labels=labels,
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


def storage_alone(project: Path, where: Place, shape: Shape, parallel: int) -> Timing:
    """Time `create` of every child on a fresh place, `parallel` in flight: `FileStorage`
    on a data dir, or `SQLStorage` (its default engine options, as the server opens it) on
    a database migrated beforehand, outside the clock."""
    from fabrica.storage import FileStorage, SQLStorage

    docs = storage_documents(project, shape)
    if len(docs) != shape.total:
        raise BenchError(f"built {len(docs)} documents, want {shape.total}")
    with _runner() as runner:
        if where.url is None:
            storage: FileStorage | SQLStorage = FileStorage(where.data_dir)
            seconds = runner.run(_create_all(storage, docs, parallel))
            got = where.counts()
            note = "FileStorage.create of the same documents, built beforehand"
        else:
            storage = SQLStorage(where.url)
            try:
                runner.run(storage.migrate())
                seconds = runner.run(_create_all(storage, docs, parallel))
                got = runner.run(_sql_counts(storage))
            finally:
                runner.run(storage.close())
            fresh = {"sqlite": "SQLite file", "postgresql": "schema"}.get(where.backend,
                                                                            "database")
            note = (f"SQLStorage.create ({where.backend}) of the same documents, built "
                    f"beforehand, on a fresh {fresh} migrated outside the clock")
    if got != shape.counts:
        raise BenchError(f"storage alone stored {got}, want {shape.counts}")
    return Timing(_storage_label(parallel), seconds, len(docs), note)


RAW_FLOOR = "raw write floor (tmp+fsync+rename)"


def raw_floor(project: Path, data_dir: Path, shape: Shape, parallel: int) -> Timing:
    """The least a durable file write of the same documents costs: each one's JSON written
    to a temp file, fsynced and renamed to ``COLLECTION/UID.json``, `parallel` threads at
    once (the kernel groups their journal commits), then each collection's directory
    fsynced once. No name links, change log, locks or checks: a floor, not a store."""
    from concurrent.futures import ThreadPoolExecutor

    docs = storage_documents(project, shape)
    encoded = [(collection, doc["metadata"]["uid"],
                json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())
               for collection, doc in docs]
    for collection in {c for c, _, _ in encoded}:
        (data_dir / collection).mkdir(parents=True, exist_ok=True)

    def write(item: tuple[str, str, bytes]) -> None:
        collection, uid, data = item
        durable_write(data_dir / collection / f"{uid}.json", data)

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        for _ in pool.map(write, encoded):
            pass
    for collection in {c for c, _, _ in encoded}:
        fd = os.open(data_dir / collection, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    seconds = time.perf_counter() - started
    got = {c: _documents_in(data_dir / c) for c in COLLECTIONS}
    if got != shape.counts:
        raise BenchError(f"the raw floor wrote {got}, want {shape.counts}")
    return Timing(RAW_FLOOR, seconds, len(docs),
                  f"os-level temp file + fsync + rename of the same documents, {parallel} "
                  "threads, one directory fsync per collection: no store, no log")


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
    cpu_before = time.process_time()
    started = time.perf_counter()
    if parallel == 1:
        for item in work:
            await item()
    else:
        await _limited(work, parallel)
    seconds = time.perf_counter() - started
    print(f"  this process used {time.process_time() - cpu_before:.1f}s of CPU", flush=True)
    return seconds


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


def bench(shape: Shape, backend: str, timeout: float) -> list[Timing]:
    with tempfile.TemporaryDirectory(prefix="fabrica-bench-rack-") as tmp_name:
        tmp = Path(tmp_name)
        logs = tmp / "logs"
        logs.mkdir()
        started = time.monotonic()
        project = make_project(tmp, backend)
        print(f"generated rack-inventory with the fabrica CLI in "
              f"{time.monotonic() - started:.1f}s", flush=True)

        floors: list[Timing] = []
        if backend == "file":  # just before and just after the controller: see `_floor`
            floors.append(_floor_run(project, tmp / "raw-floor-before", shape, "before"))
        print("controller: POST /racks, waiting for phase Ready ...", flush=True)
        with place(backend, tmp, "server") as where:
            print(f"  storage: {_where(where)}", flush=True)
            timings = provision_through_server(project, where, logs, shape, timeout)
        print(f"  Ready after {timings[0].seconds:.2f}s", flush=True)
        if backend == "file":
            floors.append(_floor_run(project, tmp / "raw-floor-after", shape, "after"))

        creator = "FileStorage.create" if backend == "file" else "SQLStorage.create"
        for parallel in (PARALLEL, 1):
            print(f"storage alone: {shape.total:,} {creator}, {parallel} in flight ...",
                  flush=True)
            with place(backend, tmp, f"storage-{parallel}") as where:
                print(f"  storage: {_where(where)}", flush=True)
                timing = storage_alone(project, where, shape, parallel)
            print(f"  {timing.seconds:.2f}s", flush=True)
            timings.append(timing)
        if floors:
            timings.append(_floor(floors))
    return timings


def _floor_run(project: Path, data_dir: Path, shape: Shape, when: str) -> Timing:
    print(f"raw write floor ({when} the controller): {shape.total:,} tmp+fsync+rename, "
          f"{PARALLEL} in flight ...", flush=True)
    timing = raw_floor(project, data_dir, shape, PARALLEL)
    print(f"  {timing.seconds:.2f}s", flush=True)
    return timing


def _floor(runs: list[Timing]) -> Timing:
    """The floor the controller is held to: the mean of the runs just before and just
    after it. A new file's inode costs what the filesystem's recent history makes it (ext4
    without a journal skips, on every allocation, each inode freed in the last minutes:
    a test suite that just removed its temp dirs makes them several times dearer), so a
    floor measured far from the controller's run measures another machine."""
    seconds = sum(t.seconds for t in runs) / len(runs)
    each = " and ".join(f"{t.seconds:.2f}s" for t in runs)
    return Timing(RAW_FLOOR, seconds, runs[0].resources,
                  f"{runs[0].note}; the mean of {each}, measured just before and just after "
                  "the controller")


def bench_processes(shape: Shape, backend: str, racks: int, controllers: list[int],
                    timeout: float) -> list[Timing]:
    """One api and N controller processes on one database and NATS, for each N."""
    timings = []
    with tempfile.TemporaryDirectory(prefix="fabrica-bench-rack-") as tmp_name:
        tmp = Path(tmp_name)
        logs = tmp / "logs"
        logs.mkdir()
        project = make_project(tmp, backend)
        for count in controllers:
            print(f"{count} controller process(es): POST {racks} racks, waiting for Ready ...",
                  flush=True)
            with place(backend, tmp, f"processes-{count}") as where:
                assert where.url is not None
                try:
                    seconds, note = provision_with_processes(
                        project, where.url, logs, shape.template_body(), racks, count, timeout,
                        _run, where.counts, shape.counts)
                except ProcessesError as exc:
                    raise BenchError(str(exc)) from exc
            print(f"  all Ready after {seconds:.2f}s", flush=True)
            timings.append(Timing(f"{count} controller process(es)", seconds,
                                  shape.total * racks, note))
    return timings


def print_processes_report(timings: list[Timing]) -> None:
    one = timings[0]
    print()
    print(f"{'scenario':36} {'seconds':>9} {'resources/s':>12} {'speed-up':>9}")
    for t in timings:
        print(f"{t.scenario:36} {t.seconds:9.2f} {t.rate:12.0f} {one.seconds / t.seconds:9.2f}")
    print()
    for t in timings:
        print(f"{t.scenario}: {t.note}")


def _where(where: Place) -> str:
    if where.url is None:
        return f"data dir {where.data_dir}"
    return where.url


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
    floor = next((t for t in timings if t.scenario == RAW_FLOOR), None)
    if floor is not None:
        to_floor = controller.seconds / floor.seconds
        met_floor = to_floor <= AIM
        print(f"files: time to Ready {controller.seconds:.2f}s; raw write floor "
              f"{floor.seconds:.2f}s ({floor.rate:.0f} documents/s); ratio {to_floor:.2f} "
              f"(aim <= {AIM:g}: {'met' if met_floor else 'NOT met'})")
        met = met and met_floor
    return met


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, default="file",
                        help="storage backend of the server and of the baseline (default "
                             "file); postgresql and mariadb use the local servers "
                             f"({POSTGRES_URL}, {MARIADB_URL}) in a schema / database of "
                             "the run's own")
    parser.add_argument("--chassis", type=int, help="chassis per rack, 1..42 (default 42)")
    parser.add_argument("--blades", type=int, help="blades per chassis, 1..16 (default 16)")
    parser.add_argument("--nodes", type=int, help="nodes per blade, 1..8 (default 8)")
    parser.add_argument("--bmc-mode", choices=["dedicated", "shared"],
                        help="one BMC per node or per blade (default dedicated)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4 x 4 x 4 dedicated unless sizes are given")
    parser.add_argument("--bus", choices=["memory", "nats"], default="memory",
                        help="memory (default): one server process; nats: one api process "
                             "and --controllers controller processes (postgresql, mariadb)")
    parser.add_argument("--controllers", default="1,2",
                        help="with --bus nats: controller process counts to run, in turn "
                             "(default 1,2)")
    parser.add_argument("--racks", type=int, default=6,
                        help="with --bus nats: racks POSTed at once (default 6)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for Ready before failing (default 600)")
    args = parser.parse_args(argv)
    small = args.quick or args.bus == "nats"  # several racks: smaller ones by default
    if args.bus == "nats":
        if args.backend not in ("postgresql", "mariadb"):
            parser.error("--bus nats needs a database shared by processes: --backend "
                         "postgresql or mariadb")
        try:
            args.controllers = [int(n) for n in args.controllers.split(",")]
        except ValueError:
            parser.error("--controllers is a comma-separated list of counts, e.g. 1,2")
        if not args.controllers or min(args.controllers) < 1 or args.racks < 1:
            parser.error("--controllers and --racks must be at least 1")
        if not args.quick:
            args.chassis, args.blades = args.chassis or 8, args.blades or 8
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
        if args.bus == "nats":
            timings = bench_processes(shape, args.backend, args.racks, args.controllers,
                                      args.timeout)
        else:
            timings = bench(shape, args.backend, args.timeout)
    except BenchError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 1
    if args.bus == "nats":
        print_processes_report(timings)
    else:
        print_report(shape, timings)
    print(f"total time {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
