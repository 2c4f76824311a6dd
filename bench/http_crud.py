"""HTTP CRUD throughput of a generated fabrica server against a bare Starlette baseline.

Builds a project with the real CLI (`fabrica init device-api`, `fabrica add resource Device`,
the SPEC's device.py, `fabrica generate`), serves it with the file backend, and measures
requests per second and p50/p99 latency for

    create   POST /devices              (unique names)
    get      GET /devices/{uid}         (rotating over 100 pre-created devices)
    list100  GET /devices               (100 devices in the collection)

then puts the same load on a bare Starlette app doing the least work that answers the same
requests from the same JSON files: get returns the bytes of DATA_DIR/devices/UID.json, list
joins the bytes of all files of the directory into a JSON array, create parses the body and
writes it with temp file + fsync + rename. The ratio (fabrica rps / baseline rps) is the
share of the bare framework-plus-disk speed fabrica keeps.

Both servers run on uvicorn the same way (uvloop, httptools, no access log), one at a time,
each in its own process; the load generator is a third process (wrk, or a Python asyncio fallback).
Traffic goes only to 127.0.0.1. Any non-2xx response or connection error fails the run.

    .venv/bin/python bench/http_crud.py [--duration S] [--concurrency N] [--quick]

With ``--api-version v1`` it measures API versions instead (SPEC section 9): the project is
examples/api-versions (Device stored in v2, v1 served and converted), and get and list100
run twice against the same server, once in the storage version and once with
``Accept: application/json;version=v1``; the ratio (converted rps / storage rps) is the
share of the storage version's speed a converted version keeps.

    .venv/bin/python bench/http_crud.py --api-version v1 [--duration S] [--quick]

With ``--auth`` it measures the cost of authentication: get and list100 on the project without
auth and on the same project made with ``fabrica init --auth``, served with
``--auth-public-key`` (an RSA key made here) and sent a valid RS256 token (role viewer) on
every request, over the same files, both servers up and measured in alternating rounds; the
ratio is auth rps / no-auth rps.

    .venv/bin/python bench/http_crud.py --auth [--rounds N] [--duration S] [--quick]

With ``--subscribers N`` it measures something else: create throughput of a service with
events on, first with no ``GET /events`` subscriber, then with N of them connected (held by
another process that reads every stream), each on a fresh server and data directory, and
prints the ratio. Publishing must not cost the writer per subscriber.

    .venv/bin/python bench/http_crud.py --subscribers 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    DEVICE_SPEC,
    HOST,
    LoadResult,
    LoadSpec,
    Server,
    durable_write,
    fabrica_command,
    find_wrk,
    free_port,
    hold_readers,
    request,
    run_load,
)

# The SPEC's device.py, as the walkthrough copies it.
DEVICE_PY = Path(__file__).resolve().parent.parent / "examples" / "device" / "device.py"
# Device stored in v2 (ipAddress renamed address, location added), v1 served beside it.
VERSIONS_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "api-versions"
DEVICE_SPEC_V2 = {"type": "server", "address": "10.0.0.1", "port": 443, "tags": {"rack": "r1"},
                  "location": "dc-1"}

SEEDED = 100
OPS = ("create", "get", "list100")


# -- the baseline: a bare Starlette app over the same files -----------------------------------


def baseline_app(data_dir: Path):  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    devices = data_dir / "devices"
    devices.mkdir(parents=True, exist_ok=True)
    uid_pattern = re.compile(r"^[a-z][a-z0-9]*-[0-9a-f]{8,64}$")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def get_device(request: Request) -> Response:
        uid = request.path_params["uid"]
        if not uid_pattern.match(uid):
            return JSONResponse({"error": "not found", "code": 404}, 404)
        try:
            data = (devices / f"{uid}.json").read_bytes()
        except FileNotFoundError:
            return JSONResponse({"error": "not found", "code": 404}, 404)
        return Response(data, media_type="application/json")

    async def list_devices(request: Request) -> Response:
        parts = []
        for entry in os.scandir(devices):
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                with open(entry.path, "rb") as fh:
                    parts.append(fh.read())
        return Response(b"[" + b",".join(parts) + b"]", media_type="application/json")

    async def create_device(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "bad JSON", "code": 400}, 400)
        data = json.dumps(body, separators=(",", ":")).encode()
        path = devices / f"dev-{secrets.token_hex(4)}.json"
        await asyncio.to_thread(durable_write, path, data)
        return Response(data, status_code=201, media_type="application/json")

    return Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/devices", list_devices, methods=["GET"]),
        Route("/devices", create_device, methods=["POST"]),
        Route("/devices/{uid}", get_device, methods=["GET"]),
    ])


def serve_baseline(argv: list[str]) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="http_crud.py _baseline-serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(baseline_app(args.data_dir), host=HOST, port=args.port, log_config=None,
                access_log=False, server_header=False)


# -- the generated project ---------------------------------------------------------------------


def make_project(tmp: Path, versions: bool = False, *init_options: str) -> Path:
    """device-api with the SPEC's Device; with `versions`, examples/api-versions' instead;
    `init_options` go to ``fabrica init`` (``--auth``)."""
    fabrica = fabrica_command()
    tmp.mkdir(parents=True, exist_ok=True)
    _run([*fabrica, "init", "device-api", *init_options], cwd=tmp)
    project = tmp / "device-api"
    _run([*fabrica, "add", "resource", "Device"], cwd=project)
    resources = project / "device_api" / "resources"
    if versions:
        for name in ("device.py", "device_v1.py"):
            (resources / name).write_text((VERSIONS_EXAMPLE / name).read_text())
    else:
        (resources / "device.py").write_text(DEVICE_PY.read_text())
    _run([*fabrica, "generate"], cwd=project)
    return project


def _run(argv: list[str], cwd: Path) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed ({done.returncode}) in {cwd}:\n"
                           f"{done.stdout}{done.stderr}")


def fabrica_server(project: Path, data_dir: Path, logs: Path, *options: str,
                   name: str = "fabrica") -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "device_api.server", "serve", "--host", HOST,
            "--port", str(port), "--data-dir", str(data_dir), "--no-access-log",
            "--log-level", "info", *options]
    return Server(name, argv, port, cwd=project, log_dir=logs)


def rs256_key_and_token(tmp: Path) -> tuple[Path, str]:
    """A fresh RSA key's public half in a PEM file, and a token it signs (1 hour, viewer)."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp / "issuer.pem"
    pem.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    now = int(time.time())
    token = jwt.encode({"sub": "bench", "scope": "viewer", "iat": now, "exp": now + 3600},
                       key, algorithm="RS256", headers={"kid": "bench"})
    return pem, token


def baseline_server(data_dir: Path, logs: Path) -> Server:
    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), "_baseline-serve",
            "--port", str(port), "--data-dir", str(data_dir)]
    return Server("baseline", argv, port, cwd=data_dir.parent, log_dir=logs)


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Settings:
    duration: float
    warmup: float
    concurrency: int
    wrk: str | None


class Runs:
    """Every load run of the bench, warm-ups included, for the table and the error check."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.results: dict[tuple[str, str], LoadResult] = {}
        self.problems: list[str] = []

    def measure(self, server: Server, op: str, paths: list[str] | None = None,
                label: str | None = None, accept: str = "", authorization: str = "",
                accumulate: bool = False) -> None:
        """Load `server` with `op`; the result is filed under (op, `label` or server name),
        or with `accumulate` added to what is filed there (requests and seconds summed,
        latencies of the slowest run kept)."""
        label = label or server.name
        mode = "list" if op == "list100" else op
        phases = [("warm-up", self.settings.warmup), ("measured", self.settings.duration)]
        for phase, seconds in phases:
            if seconds <= 0:
                continue
            spec = LoadSpec(mode=mode, port=server.port, duration=seconds,
                            concurrency=self.settings.concurrency, paths=paths or [],
                            tag=f"{server.name[0]}{phase[0]}{secrets.token_hex(3)}",
                            accept=accept, authorization=authorization)
            result = run_load(spec, self.settings.wrk)
            self._check(server, op, phase, result)
        print(f"  {label:9} {op:8} {result.rps:9.0f} rps  p50 {result.p50_ms:.2f} ms  "
              f"p99 {result.p99_ms:.2f} ms  ({result.requests} requests)", flush=True)
        earlier = self.results.get((op, label)) if accumulate else None
        self.results[(op, label)] = _combined(earlier, result) if earlier else result

    def _check(self, server: Server, op: str, phase: str, result: LoadResult) -> None:
        where = f"{server.name} {op} ({phase})"
        if result.non2xx:
            self.problems.append(f"{where}: {result.non2xx} non-2xx responses, "
                                 f"statuses seen (wrk samples the first few): {result.statuses}")
        if result.errors:
            self.problems.append(f"{where}: {result.errors} connection errors/timeouts")
        if result.requests == 0:
            self.problems.append(f"{where}: no request completed")
        if result.non2xx or result.errors:
            self.problems.append(f"{server.name} server log (tail):\n{server.log_tail(15)}")


def _combined(a: LoadResult, b: LoadResult) -> LoadResult:
    return LoadResult(requests=a.requests + b.requests, seconds=a.seconds + b.seconds,
                      p50_ms=max(a.p50_ms, b.p50_ms), p99_ms=max(a.p99_ms, b.p99_ms),
                      non2xx=a.non2xx + b.non2xx, errors=a.errors + b.errors,
                      statuses={**a.statuses, **b.statuses})


def seed(server: Server, count: int, spec: dict[str, object] | None = None) -> list[str]:
    uids = []
    for i in range(count):
        body = {"metadata": {"name": f"seed-{i:03d}", "labels": {"bench": "seed"}},
                "spec": spec or DEVICE_SPEC}
        status, data = request(server.port, "POST", "/devices", body)
        if status != 201:
            raise RuntimeError(f"seeding: POST /devices -> {status}: {data[:300]!r}")
        uids.append(json.loads(data)["metadata"]["uid"])
    return uids


def expect_items(server: Server, count: int, headers: dict[str, str] | None = None) -> None:
    status, data = request(server.port, "GET", "/devices", headers=headers)
    items = json.loads(data) if status == 200 else None
    if not isinstance(items, list) or len(items) != count:
        got = len(items) if isinstance(items, list) else f"status {status}"
        raise RuntimeError(f"{server.name}: GET /devices should list {count} items, got {got}")


def bench(settings: Settings, rounds: int = 1) -> Runs:
    """create one server at a time; get and list100 with both servers up over the same
    files, measured in turns (`rounds` of each, the order swapped every round), so that a
    change in the machine's load (other work on a shared host) falls on both alike."""
    runs = Runs(settings)
    with tempfile.TemporaryDirectory(prefix="fabrica-bench-") as tmp_name:
        tmp = Path(tmp_name)
        logs = tmp / "logs"
        logs.mkdir()
        started = time.monotonic()
        project = make_project(tmp)
        print(f"generated {project.name} with the fabrica CLI in "
              f"{time.monotonic() - started:.1f}s", flush=True)

        shared = tmp / "data-read"  # get and list100 read the same 100 files on both servers
        with fabrica_server(project, shared, logs) as server, \
                baseline_server(shared, logs) as baseline:
            uids = seed(server, SEEDED)
            paths = [f"/devices/{uid}" for uid in uids]
            expect_items(server, SEEDED)
            expect_items(baseline, SEEDED)
            sides = [server, baseline]
            for turn in range(rounds):
                for op in ("get", "list100"):
                    for srv in sides[::-1] if turn % 2 else sides:
                        runs.measure(srv, op, paths if op == "get" else None,
                                     accumulate=True)

        with fabrica_server(project, tmp / "data-create-fabrica", logs) as server:
            runs.measure(server, "create")
        with baseline_server(tmp / "data-create-baseline", logs) as server:
            runs.measure(server, "create")
    return runs


# -- events subscribers ------------------------------------------------------------------------


class Subscribers:
    """N ``GET /events`` streams held open by another process, which reads them all and
    reports, when stopped, how many events each one received."""

    def __init__(self, port: int, count: int, log_dir: Path) -> None:
        self.ready = log_dir / f"subscribers-{port}.ready"
        argv = [sys.executable, str(Path(__file__).resolve()), "_subscribe",
                str(port), str(count), str(self.ready)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the subscribers did not connect")
            time.sleep(0.05)

    def stop(self) -> list[int]:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        return json.loads(out)


def subscribe_main(argv: list[str]) -> None:
    """``http_crud.py _subscribe PORT COUNT READY_FILE``: the subscribers' process."""
    port, count, ready = int(argv[0]), int(argv[1]), Path(argv[2])
    received = [0] * count

    async def one(index: int, connected: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(f"GET /events HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        await reader.readuntil(b": connected\n\n")
        connected.set()
        partial = b""
        while chunk := await reader.read(65536):
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            received[index] += sum(1 for line in lines if line.startswith(b"data: "))

    asyncio.run(hold_readers(one, count, ready))
    print(json.dumps(received))


def fabrica_events_server(project: Path, data_dir: Path, logs: Path) -> Server:
    server = fabrica_server(project, data_dir, logs)
    server.name = "fabrica+events"
    return server


def bench_subscribers(settings: Settings, count: int) -> tuple[Runs, list[int]]:
    runs = Runs(settings)
    with tempfile.TemporaryDirectory(prefix="fabrica-bench-") as tmp_name:
        tmp = Path(tmp_name)
        logs = tmp / "logs"
        logs.mkdir()
        project = make_project(tmp, False, "--events")
        with fabrica_events_server(project, tmp / "data-none", logs) as server:
            runs.measure(server, "create", label="no subscribers")
        with fabrica_events_server(project, tmp / "data-many", logs) as server:
            subscribers = Subscribers(server.port, count, logs)
            try:
                runs.measure(server, "create", label=f"{count} subscribers")
            finally:
                received = subscribers.stop()
    return runs, received


def bench_api_version(settings: Settings, version: str) -> Runs:
    """get and list100 in the storage version, then converted to `version`, one server."""
    runs = Runs(settings)
    accept = f"application/json;version={version}"
    with tempfile.TemporaryDirectory(prefix="fabrica-bench-") as tmp_name:
        tmp = Path(tmp_name)
        logs = tmp / "logs"
        logs.mkdir()
        project = make_project(tmp, versions=True)
        with fabrica_server(project, tmp / "data", logs) as server:
            uids = seed(server, SEEDED, DEVICE_SPEC_V2)
            expect_version(server, f"/devices/{uids[0]}", accept, version)
            paths = [f"/devices/{uid}" for uid in uids]
            for op in ("get", "list100"):
                runs.measure(server, op, paths, label="storage")
                runs.measure(server, op, paths, label="converted", accept=accept)
    return runs


def expect_version(server: Server, path: str, accept: str, version: str) -> None:
    status, data = request(server.port, "GET", path, headers={"Accept": accept})
    got = json.loads(data).get("schemaVersion") if status == 200 else f"status {status}"
    if got != version:
        raise RuntimeError(f"GET {path} with Accept {accept}: expected schemaVersion "
                           f"{version}, got {got}")


def print_version_table(runs: Runs, version: str) -> None:
    print_ratio_table(runs, ("storage", "storage"), ("converted", version),
                      measured="converted", aim=0.7)


def bench_auth(settings: Settings, rounds: int) -> Runs:
    """get and list100 without auth and with a valid RS256 token, over the same files: both
    servers up at once, measured in turns (`rounds` of each, the order swapped every round),
    so a change in the machine's load falls on both sides alike."""
    runs = Runs(settings)
    with tempfile.TemporaryDirectory(prefix="fabrica-bench-") as tmp_name:
        tmp = Path(tmp_name)
        logs = tmp / "logs"
        logs.mkdir()
        plain = make_project(tmp / "plain")
        secured = make_project(tmp / "auth", False, "--auth")
        pem, token = rs256_key_and_token(tmp)
        bearer = f"Bearer {token}"
        shared = tmp / "data-read"
        with fabrica_server(plain, shared, logs) as server, \
                fabrica_server(secured, shared, logs, "--auth-public-key", str(pem),
                               name="auth") as guarded:
            uids = seed(server, SEEDED)
            paths = [f"/devices/{uid}" for uid in uids]
            status, _ = request(guarded.port, "GET", "/devices")
            if status != 401:
                raise RuntimeError(f"the auth server answered {status} without a token")
            expect_items(guarded, SEEDED, {"Authorization": bearer})
            sides = [(server, ""), (guarded, bearer)]
            for turn in range(rounds):
                for op in ("get", "list100"):
                    for srv, authorization in sides[::-1] if turn % 2 else sides:
                        runs.measure(srv, op, paths if op == "get" else None,
                                     authorization=authorization, accumulate=True)
    return runs


def print_auth_table(runs: Runs) -> None:
    print_ratio_table(runs, ("auth", "auth"), ("fabrica", "no-auth"), measured="auth", aim=0.9)


def print_ratio_table(runs: Runs, left: tuple[str, str], right: tuple[str, str], *,
                      measured: str, aim: float) -> None:
    """get and list100 of two servers of `runs`, a column each: (server name, label); the
    ratio is the `measured` server's rps over the other's."""
    (left_key, left_label), (right_key, right_label) = left, right
    base = right_key if measured == left_key else left_key
    print()
    print(f"{'op':8} {left_label + ' rps':>12} {right_label + ' rps':>12} {'ratio':>7}"
          f"  (aim >= {aim}) {left_label + ' p50/p99 ms':>20} {right_label + ' p50/p99 ms':>20}")
    for op in ("get", "list100"):
        first, second = runs.results[(op, left_key)], runs.results[(op, right_key)]
        over, under = runs.results[(op, measured)], runs.results[(op, base)]
        ratio = over.rps / under.rps if under.rps else float("nan")
        print(f"{op:8} {first.rps:12.0f} {second.rps:12.0f} {ratio:7.2f}"
              f"{'':14} {_latency(first):>20} {_latency(second):>20}")


def print_subscribers(runs: Runs, count: int, received: list[int]) -> None:
    none = runs.results[("create", "no subscribers")]
    many = runs.results[("create", f"{count} subscribers")]
    print()
    print(f"create with no /events subscriber: {none.rps:8.0f} rps  {_latency(none)} ms p50/p99")
    print(f"create with {count} subscribers:    {many.rps:8.0f} rps  {_latency(many)} ms p50/p99")
    print(f"ratio ({count} subscribers / none): {many.rps / none.rps:.2f}  (aim >= 0.8)")
    ordered = sorted(received)
    print(f"events each subscriber received (warm-up included): min {ordered[0]}, median "
          f"{ordered[len(ordered) // 2]}, max {ordered[-1]}; creates answered 201: "
          f"{sum(r.requests - r.non2xx for r in runs.results.values())}")


# -- reporting ---------------------------------------------------------------------------------


def print_table(runs: Runs) -> None:
    print()
    print(f"{'op':8} {'fabrica rps':>12} {'baseline rps':>13} {'ratio':>7}"
          f" {'fabrica p50/p99 ms':>20} {'baseline p50/p99 ms':>21}")
    for op in OPS:
        fab = runs.results.get((op, "fabrica"))
        base = runs.results.get((op, "baseline"))
        if fab is None or base is None:
            continue
        ratio = fab.rps / base.rps if base.rps else float("nan")
        print(f"{op:8} {fab.rps:12.0f} {base.rps:13.0f} {ratio:7.2f}"
              f" {_latency(fab):>20} {_latency(base):>21}")
    total = sum(r.requests for r in runs.results.values())
    non2xx = sum(r.non2xx for r in runs.results.values())
    errors = sum(r.errors for r in runs.results.values())
    print(f"\nmeasured requests: {total}; non-2xx responses: {non2xx}; "
          f"connection errors/timeouts: {errors} (warm-ups checked too)")


def _latency(result: LoadResult) -> str:
    return f"{result.p50_ms:.2f} / {result.p99_ms:.2f}"


def _describe(settings: Settings, together: bool = False) -> str:
    loadgen = (f"wrk ({settings.wrk}, 1 thread)" if settings.wrk
               else "Python asyncio load generator (one process; slower than wrk, it may be "
                                 "the bottleneck)")
    return (f"load: {loadgen}, {settings.concurrency} connections, "
            f"{settings.duration:g}s per op after {settings.warmup:g}s warm-up\n"
            f"host: {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.2f} at start), "
            f"Python {platform.python_version()}, servers on uvicorn, "
            f"{'both up, measured in turns' if together else 'one at a time'}, "
            f"traffic to {HOST} only")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=None,
                        help="measured seconds per op and server (default 10; --quick: 1)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="warm-up seconds before each measurement (default 2; --quick: 1)")
    parser.add_argument("--concurrency", type=int, default=32,
                        help="concurrent connections (default 32)")
    parser.add_argument("--quick", action="store_true", help="a ~20 s smoke run")
    parser.add_argument("--subscribers", type=int, default=0, metavar="N",
                        help="instead: create throughput with N /events subscribers vs none")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto",
                        help="auto: wrk if found (installed with apt-get when root), else python")
    parser.add_argument("--api-version", metavar="V", choices=["v1"],
                        help="measure get and list100 converted to API version V against the "
                        "storage version (examples/api-versions serves v1 beside v2)")
    parser.add_argument("--auth", action="store_true",
                        help="measure get and list100 with a valid RS256 token against the "
                             "same without auth")
    parser.add_argument("--rounds", type=int, default=3,
                        help="turns of each get and list100 measurement, both servers up, "
                             "the order swapped every turn (default 3)")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 1.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    if args.duration <= 0 or args.concurrency < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--duration must be > 0, --concurrency >= 1, --warmup >= 0, "
                     "--rounds >= 1")
    if args.auth and args.api_version:
        parser.error("--auth and --api-version measure different things: give one")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_baseline-serve"]:
        serve_baseline(argv[1:])
        return 0
    if argv[:1] == ["_subscribe"]:
        subscribe_main(argv[1:])
        return 0
    args = parse_args(argv)
    wrk = None
    if args.loadgen != "python":
        wrk = find_wrk(install=True)
        if wrk is None and args.loadgen == "wrk":
            print("error: wrk is not available", file=sys.stderr)
            return 2
    settings = Settings(duration=args.duration, warmup=args.warmup,
                        concurrency=args.concurrency, wrk=wrk)
    print(_describe(settings, together=not (args.subscribers or args.api_version)),
          flush=True)
    started = time.monotonic()
    if args.subscribers > 0:
        runs, received = bench_subscribers(settings, args.subscribers)
        print_subscribers(runs, args.subscribers, received)
    elif args.auth:
        runs = bench_auth(settings, args.rounds)
        print_auth_table(runs)
    elif args.api_version:
        runs = bench_api_version(settings, args.api_version)
        print_version_table(runs, args.api_version)
    else:
        runs = bench(settings, args.rounds)
        print_table(runs)
    print(f"total time {time.monotonic() - started:.0f}s")
    if runs.problems:
        print("\nFAILED: the bench saw errors:", file=sys.stderr)
        for problem in runs.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
