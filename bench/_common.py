"""Shared machinery of the benchmarks in bench/: servers as subprocesses, and load generators.

Why subprocesses everywhere: the machines this runs on have few cores, and a load generator
sharing an interpreter (and a GIL) with the server it measures would measure itself. Each
server runs alone, on uvicorn, in its own process; the load generator is another process,
`wrk` when available (C, one thread, little overhead) or, as a fallback, a small asyncio
HTTP/1.1 keep-alive client (uvloop when installed) started as
``python bench/_common.py loadgen SPEC_JSON``.

All traffic goes to 127.0.0.1, every run has a fixed duration, and every server started here
is stopped by its pid when its ``with`` block ends.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "HOST",
    "LoadResult",
    "LoadSpec",
    "Server",
    "fabrica_command",
    "find_wrk",
    "free_port",
    "request",
    "run_load",
]

HOST = "127.0.0.1"
_HERE = Path(__file__).resolve()

# The Device spec every benchmark creates (SPEC section 2's example resource).
DEVICE_SPEC = {"type": "server", "ipAddress": "10.0.0.1", "port": 443, "tags": {"rack": "r1"}}


# -- small HTTP helpers (stdlib: no proxies, no surprises) ------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def hold_readers(one: Callable[[int, asyncio.Event], Awaitable[None]], count: int,
                       ready: Path) -> None:
    """Start `count` readers (`one(index, connected)`), write "ready" to `ready` once all are
    connected, and keep them reading until this process gets SIGINT."""
    flags = [asyncio.Event() for _ in range(count)]
    tasks = [asyncio.create_task(one(i, flag)) for i, flag in enumerate(flags)]
    await asyncio.gather(*(flag.wait() for flag in flags))
    ready.write_text("ready")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()


def request(
    port: int, method: str, path: str, body: Any = None, timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request to 127.0.0.1:`port`; returns (status, body bytes)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def durable_write(path: Path, data: bytes) -> None:
    """What a bare file server does per document: a temp file, fsync, rename."""
    tmp = path.parent / f".tmp-{path.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def fabrica_command() -> list[str]:
    """The `fabrica` CLI of the interpreter running the bench."""
    script = Path(sys.executable).parent / "fabrica"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "fabrica.cli"]


# -- servers -----------------------------------------------------------------------------------


class Server:
    """A server subprocess on 127.0.0.1:`port`, its output in a log file; use as a context."""

    def __init__(self, name: str, argv: Sequence[str], port: int, cwd: Path, log_dir: Path):
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.cwd = cwd
        self.log_path = log_dir / f"{name}-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited with {self.proc.returncode} "
                                   f"before it was ready:\n{self.log_tail()}")
            try:
                status, _ = request(self.port, "GET", "/health", timeout=2.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} server not healthy after {timeout:.0f}s:\n"
                           f"{self.log_tail()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


# -- load generation ---------------------------------------------------------------------------


@dataclass
class LoadSpec:
    """What to send: `mode` is create (POST /devices), get (GET paths in turn) or list."""

    mode: str
    port: int
    duration: float
    concurrency: int
    paths: list[str] = field(default_factory=list)
    tag: str = "x"  # makes create names unique across runs
    accept: str = ""  # an Accept header for reads, e.g. application/json;version=v1
    authorization: str = ""  # an Authorization header value sent with every request

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    errors: int  # connect/read/write/timeout errors, no response at all
    statuses: dict[str, int] = field(default_factory=dict)  # non-2xx status -> count

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def find_wrk(install: bool) -> str | None:
    """Path of `wrk`; when missing and `install` and root, try `apt-get install -y wrk`."""
    found = shutil.which("wrk")
    if found or not install:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    print("wrk not found; running `apt-get install -y wrk` (we are root) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env,
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"  apt-get failed: {exc}", flush=True)
        return None
    if done.returncode != 0:
        print(f"  apt-get failed ({done.returncode}): {done.stderr.strip()[-500:]}", flush=True)
        return None
    print("  installed wrk with apt-get", flush=True)
    return shutil.which("wrk")


def run_load(spec: LoadSpec, wrk: str | None) -> LoadResult:
    """Drive `spec` with wrk if given, else with the Python load generator subprocess."""
    return _run_wrk(spec, wrk) if wrk else _run_python(spec)


# wrk: one thread, `concurrency` keep-alive connections. request() makes each request (unique
# names for create, rotating uids for get), response() counts statuses outside 2xx, done()
# prints one JSON line the bench parses.
_LUA = r"""
local mode = "%(mode)s"
local paths = {%(paths)s}
local head = "%(head)s"
local tail = "%(tail)s"
local accept = "%(accept)s"
local auth = "%(auth)s"
local read_headers = {}
local write_headers = {["Content-Type"] = "application/json"}
if accept ~= "" then read_headers["Accept"] = accept end
if auth ~= "" then
  read_headers["Authorization"] = auth
  write_headers["Authorization"] = auth
end
local counter = 0
local threads = {}
local n_threads = 0

function setup(thread)
  n_threads = n_threads + 1
  thread:set("tid", n_threads)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  bad = ""
end

function request()
  counter = counter + 1
  if mode == "create" then
    local body = head .. tid .. "-" .. counter .. tail
    return wrk.format("POST", "/devices", write_headers, body)
  elseif mode == "get" then
    return wrk.format("GET", paths[(counter %% #paths) + 1], read_headers)
  end
  return wrk.format("GET", "/devices", read_headers)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if #bad < 200 then bad = bad .. status .. " " end
  end
end

function done(summary, latency, requests)
  local total_bad = 0
  local bad_codes = ""
  for _, t in ipairs(threads) do
    total_bad = total_bad + t:get("non2xx")
    bad_codes = bad_codes .. t:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%f, "p99_us": %%f, ' ..
    '"non2xx": %%d, "errors": %%d, "bad": "%%s"}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    total_bad, e.connect + e.read + e.write + e.timeout, bad_codes))
end
"""


def _lua_string(text: str) -> str:
    if not text.isascii() or any(c in text for c in "\n\r"):
        raise ValueError(f"unsupported text for a Lua literal: {text!r}")
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _create_body_parts(tag: str) -> tuple[str, str]:
    """Create bodies are head + "WORKER-N" + tail: {"metadata": {"name": "b-TAG-WORKER-N"}...}."""
    marker = "@WORKER-N@"
    body = json.dumps({"metadata": {"name": f"b-{tag}-{marker}"}, "spec": DEVICE_SPEC},
                      separators=(",", ":"))
    head, tail = body.split(marker)
    return head, tail


def _run_wrk(spec: LoadSpec, wrk: str) -> LoadResult:
    head, tail = _create_body_parts(spec.tag)
    script = _LUA % {
        "mode": spec.mode,
        "paths": ", ".join(f'"{_lua_string(p)}"' for p in spec.paths),
        "head": _lua_string(head),
        "tail": _lua_string(tail),
        "accept": _lua_string(spec.accept),
        "auth": _lua_string(spec.authorization),
    }
    seconds = max(1, math.ceil(spec.duration))  # wrk takes whole seconds
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        argv = [wrk, "-t1", f"-c{spec.concurrency}", f"-d{seconds}s", "--timeout", "10s",
                "-s", fh.name, f"http://{HOST}:{spec.port}/"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                              stdin=subprocess.DEVNULL)
    finally:
        os.unlink(fh.name)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRKJSON "))
    statuses: dict[str, int] = {}
    for code in data["bad"].split():
        statuses[code] = statuses.get(code, 0) + 1  # a sample: the first few per thread
    return LoadResult(
        requests=data["requests"], seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1e3, p99_ms=data["p99_us"] / 1e3,
        non2xx=data["non2xx"], errors=data["errors"], statuses=statuses,
    )


def _run_python(spec: LoadSpec) -> LoadResult:
    argv = [sys.executable, str(_HERE), "loadgen", spec.to_json()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=spec.duration + 60,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"python load generator failed ({done.returncode}):\n{done.stderr}")
    return LoadResult(**json.loads(done.stdout))


# The fallback speaks HTTP/1.1 over asyncio streams itself: httpx's connection pool, tried
# first, fell from ~1,100 rps at one connection to ~300 at 32, far below the servers here.
class _Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, data: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get("transfer-encoding") == "chunked":
            await self._skip_chunks()
        else:
            await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            self.close()
        return status

    async def _skip_chunks(self) -> None:
        assert self.reader is not None
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await self.reader.readexactly(size + 2)
            if size == 0:
                return

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _request_bytes(spec: LoadSpec, wid: int, n: int, head: str, tail: str) -> bytes:
    host = f"Host: {HOST}:{spec.port}\r\n"
    if spec.authorization:
        host += f"Authorization: {spec.authorization}\r\n"
    if spec.mode == "create":
        body = f"{head}{wid}-{n}{tail}".encode()
        return (f"POST /devices HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    path = spec.paths[(wid + n) % len(spec.paths)] if spec.mode == "get" else "/devices"
    accept = f"Accept: {spec.accept}\r\n" if spec.accept else ""
    return f"GET {path} HTTP/1.1\r\n{host}{accept}\r\n".encode()


async def _python_load(spec: LoadSpec) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    counts = {"non2xx": 0, "errors": 0}
    head, tail = _create_body_parts(spec.tag)

    async def worker(wid: int, deadline: float) -> None:
        conn = _Conn(spec.port)
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            data = _request_bytes(spec, wid, n, head, tail)
            start = time.perf_counter()
            try:
                async with asyncio.timeout(10):
                    status = await conn.exchange(data)
            except (OSError, EOFError, ValueError, asyncio.IncompleteReadError, TimeoutError):
                counts["errors"] += 1
                conn.close()
                continue
            latencies.append(time.perf_counter() - start)
            if not 200 <= status <= 299:
                counts["non2xx"] += 1
                statuses[str(status)] = statuses.get(str(status), 0) + 1
        conn.close()

    began = time.perf_counter()
    deadline = began + spec.duration
    await asyncio.gather(*(worker(i + 1, deadline) for i in range(spec.concurrency)))
    seconds = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies), "seconds": seconds,
        "p50_ms": _percentile(latencies, 50) * 1e3, "p99_ms": _percentile(latencies, 99) * 1e3,
        "non2xx": counts["non2xx"], "errors": counts["errors"], "statuses": statuses,
    }


def _percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def _loadgen_main(spec_json: str) -> None:
    spec = LoadSpec(**json.loads(spec_json))
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(_python_load(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "loadgen":
        _loadgen_main(sys.argv[2])
    else:
        sys.exit("usage: python bench/_common.py loadgen SPEC_JSON")
