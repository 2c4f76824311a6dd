"""Watch delivery under write load, and the memory of the watch cache (SPEC section 8).

Delivery: a generated Device service (the real CLI, as http_crud.py builds it) on
PostgreSQL (default) or files; a watchers process opens N ``GET /devices?watch=true``
streams (default 500) and reads them all; a writer process patches pre-created devices at a
target rate (default 1,000 writes/s, as many as the server takes if it takes fewer), each
patch stamping its send time into ``spec.tags.sent``. Each event a watcher reads gives one
delivery latency: its arrival time minus that stamp (same machine, same clock). Printed:
writes/s achieved, events received (all watchers), delivery p50/p99/max, and how many
watchers ended with ERROR 410 (too far behind).

Memory: a fresh server over a database holding `--cached` Devices (default 100,000,
inserted as rows on PostgreSQL, through the storage API on files); RSS of the server
process before and after its cache holds them all (a full list fills it and makes every
wire form).

    .venv/bin/python bench/watch.py [--watchers 500] [--rate 1000] [--duration 10]
                                    [--storage postgresql|file] [--cached 100000]
    .venv/bin/python bench/watch.py --quick     # 100 watchers, 5 s, 10,000 cached
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEVICE_SPEC, HOST, Server, hold_readers, request  # noqa: E402
from http_crud import fabrica_server, make_project  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
DEVICES = 200
SAMPLED = 20  # watchers whose every event is timed against its write's answer


# -- the watchers' process ---------------------------------------------------------------------


def watchers_main(argv: list[str]) -> None:
    """``watch.py _watchers PORT COUNT READY_FILE``: open COUNT watches, read them until
    SIGINT, print latencies (ms), event and 410 counts as JSON."""
    port, count, ready = int(argv[0]), int(argv[1]), Path(argv[2])
    latencies: list[float] = []
    counts = {"events": 0, "expired": 0}

    sampled: list[tuple[str, float]] = []  # (resourceVersion, arrival) of a few watchers

    async def one(index: int, connected: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(f"GET /devices?watch=true&resourceVersion={version} HTTP/1.1\r\n"
                     f"Host: {HOST}\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        connected.set()
        partial = b""
        timed = index < SAMPLED
        while chunk := await reader.read(262144):
            now = time.time()
            if not timed:  # count only: parsing every event here would starve the server
                window = partial + chunk  # (an event's start may straddle two reads)
                counts["events"] += window.count(b'{"type":"MODIFIED"')
                if b'{"type":"ERROR"' in window:
                    counts["expired"] += 1
                    return
                partial = chunk[-17:]  # (one byte short of the pattern)
                continue
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            for line in lines:
                start = line.find(b'{"type":')
                if start < 0:
                    continue  # chunk sizes of the chunked encoding
                event = json.loads(line[start:])
                if event["type"] == "ERROR":
                    counts["expired"] += 1
                    return
                sent = event["object"]["spec"]["tags"].get("sent")
                if sent is not None:
                    latencies.append((now - float(sent)) * 1000)
                sampled.append((event["object"]["metadata"]["resourceVersion"], now))
                counts["events"] += 1

    version = argv[3]
    asyncio.run(hold_readers(one, count, ready))
    print(json.dumps({"latencies": latencies, "sampled": sampled, **counts}))


# -- the writer's process ----------------------------------------------------------------------


def writer_main(argv: list[str]) -> None:
    """``watch.py _writer PORT RATE SECONDS UIDS_JSON``: patch at RATE/s for SECONDS; print
    the writes done and failed as JSON."""
    port, rate, seconds, uids = int(argv[0]), float(argv[1]), float(argv[2]), json.loads(argv[3])
    done = {"writes": 0, "failed": 0}
    answered: dict[str, float] = {}
    workers = 64

    async def worker(index: int, deadline: float) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        interval = workers / rate
        next_at = time.monotonic() + index * interval / workers
        n = index
        while time.monotonic() < deadline:
            pause = next_at - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            next_at = max(next_at + interval, time.monotonic() - interval)
            body = json.dumps({"tags": {"sent": repr(time.time())}}).encode()
            uid = uids[n % len(uids)]
            n += workers
            writer.write(f"PATCH /devices/{uid} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: "
                         f"application/merge-patch+json\r\nContent-Length: {len(body)}\r\n\r\n"
                         .encode() + body)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            data = await reader.readexactly(length)
            ok = head.startswith(b"HTTP/1.1 200")
            done["writes" if ok else "failed"] += 1
            if ok:
                answered[json.loads(data)["metadata"]["resourceVersion"]] = time.time()
        writer.close()

    async def run() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(worker(i, deadline) for i in range(workers)))

    asyncio.run(run())
    print(json.dumps({**done, "answered": answered}))


# -- the bench ---------------------------------------------------------------------------------


def database(workdir: Path, storage: str) -> tuple[list[str], Any]:
    """(serve options, cleanup): a fresh PostgreSQL schema, or a data dir."""
    if storage == "file":
        return ["--data-dir", str(workdir / "data")], lambda: None
    schema = f"fabrica_bench_{secrets.token_hex(4)}"
    _sql(f"CREATE SCHEMA {schema}")
    url = f"{POSTGRES}?options={quote(f'-csearch_path={schema}')}"
    return ["--database-url", url], lambda: _sql(f"DROP SCHEMA {schema} CASCADE")


def _sql(statement: str) -> None:
    subprocess.run(["psql", POSTGRES, "-qc", statement], check=True, capture_output=True)


def seed(server: Server, count: int) -> list[str]:
    uids = []
    for i in range(count):
        body = {"metadata": {"name": f"w-{i:04d}"}, "spec": DEVICE_SPEC}
        status, data = request(server.port, "POST", "/devices", body)
        if status != 201:
            raise RuntimeError(f"seeding: {status} {data[:200]!r}")
        uids.append(json.loads(data)["metadata"]["uid"])
    return uids


def delivery(project: Path, tmp: Path, args: argparse.Namespace) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    options, cleanup = database(tmp, args.storage)
    try:
        with fabrica_server(project, tmp / "data", tmp, *options) as server:
            uids = seed(server, DEVICES)
            status, _ = request(server.port, "GET", "/devices")
            version = _header(server, "x-resource-version")
            ready = tmp / "watchers.ready"
            watchers = subprocess.Popen(
                [sys.executable, __file__, "_watchers", str(server.port), str(args.watchers),
                 str(ready), version], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while not ready.exists():
                if watchers.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the watchers did not connect")
                time.sleep(0.05)
            started = time.monotonic()
            wrote = subprocess.run(
                [sys.executable, __file__, "_writer", str(server.port), str(args.rate),
                 str(args.duration), json.dumps(uids)], capture_output=True, text=True,
                check=True)
            elapsed = time.monotonic() - started
            time.sleep(2)  # the last events arrive
            watchers.send_signal(signal.SIGINT)
            out, _ = watchers.communicate(timeout=60)
    finally:
        cleanup()
    writes = json.loads(wrote.stdout)
    seen = json.loads(out)
    lat = sorted(seen["latencies"])
    expected = writes["writes"] * args.watchers
    print(f"\n{args.watchers} watchers, storage {args.storage}, target {args.rate:g} writes/s "
          f"for {args.duration:g} s")
    print(f"writes: {writes['writes']} ({writes['writes'] / elapsed:.0f}/s achieved), "
          f"failed {writes['failed']}")
    print(f"events received: {seen['events']} of {expected} "
          f"({seen['events'] / max(expected, 1):.1%}); watchers ended with 410: "
          f"{seen['expired']}")
    if lat:
        print(f"from the write's send (includes the write's own time), ms: "
              f"p50 {_pct(lat, 50):.1f}  p99 {_pct(lat, 99):.1f}  max {lat[-1]:.1f}")
    answered = writes["answered"]
    after = sorted((arrival - answered[rv]) * 1000 for rv, arrival in seen["sampled"]
                   if rv in answered)
    if after:
        print(f"from the write's answer to each watcher ({min(SAMPLED, args.watchers)} "
              f"watchers timed), ms: p50 {_pct(after, 50):.1f}  p99 {_pct(after, 99):.1f}  "
              f"max {after[-1]:.1f}")


def _header(server: Server, name: str) -> str:
    import http.client

    conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
    conn.request("GET", "/devices?limit=1")
    response = conn.getresponse()
    response.read()
    value = response.getheader(name)
    conn.close()
    assert value is not None
    return value


def _pct(ordered: list[float], pct: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def memory(project: Path, tmp: Path, args: argparse.Namespace) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    options, cleanup = database(tmp, args.storage)
    try:
        started = time.monotonic()
        asyncio.run(_fill(options, args.cached))
        print(f"\nwrote {args.cached} Devices through the storage API in "
              f"{time.monotonic() - started:.0f} s")
        with fabrica_server(project, tmp / "data", tmp, *options, "--watch-cache-size",
                            str(args.cached)) as server:
            before = _rss(server)
            started = time.monotonic()
            status, data = request(server.port, "GET", "/devices?limit=1")  # starts the fill
            while "cached" not in server.log_tail(5):
                time.sleep(0.2)
            filled = time.monotonic() - started
            cached = _rss(server)
            status, data = request(server.port, "GET", "/devices")  # every wire form made
            count = len(json.loads(data))
            after = _rss(server)
    finally:
        cleanup()
    print(f"server RSS: {before / 2**20:.0f} MiB before; {cached / 2**20:.0f} MiB with "
          f"{count} Devices cached ({(cached - before) / max(count, 1):.0f} bytes each), "
          f"filled in {filled:.1f} s; {after / 2**20:.0f} MiB after listing them all once "
          f"(every wire form made, the list's own buffers freed)")


async def _fill(options: list[str], count: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from storage_scale import device

    from fabrica.storage import open_storage

    storage = open_storage(options[1])
    if hasattr(storage, "migrate"):
        await storage.migrate()
        await storage._run(lambda conn: _bulk_insert(conn, count), write=True)
        await storage.close()
        return
    queue = iter(range(count))

    async def writer() -> None:
        for i in queue:
            await storage.create("devices", device(i))

    await asyncio.gather(*(writer() for _ in range(32)))
    await storage.close()


def _bulk_insert(conn: Any, count: int) -> None:
    """`count` Devices as rows, in one transaction (as a database written before the change
    log looks: its history starts at its newest revision)."""
    from sqlalchemy import insert
    from storage_scale import device

    from fabrica.storage.sql._ops import encode, resource_columns
    from fabrica.storage.sql._schema import collections, labels, resources

    rows, label_rows = [], []
    for i in range(count):
        doc = device(i)
        meta = doc["metadata"]
        meta["resourceVersion"] = str(i + 1)
        rows.append({"resource_version": i + 1, "document": encode(doc),
                     **resource_columns(doc), "collection": "devices", "uid": meta["uid"],
                     "name": meta["name"]})
        label_rows += [{"collection": "devices", "uid": meta["uid"], "key": k, "value": v}
                       for k, v in meta["labels"].items()]
    for start in range(0, count, 5000):
        conn.execute(insert(resources), rows[start:start + 5000])
    for start in range(0, len(label_rows), 5000):
        conn.execute(insert(labels), label_rows[start:start + 5000])
    conn.execute(insert(collections), [{"collection": "devices", "revision": count,
                                        "horizon": count}])


def _rss(server: Server) -> int:
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=500)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--storage", choices=("postgresql", "file"), default="postgresql")
    parser.add_argument("--cached", type=int, default=100_000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.watchers, args.duration, args.cached = 100, 5, 10_000
    with tempfile.TemporaryDirectory(prefix="fabrica-bench-") as tmp_name:
        tmp = Path(tmp_name)
        project = make_project(tmp / "project")
        delivery(project, tmp / "delivery", args)
        if not args.skip_memory:
            memory(project, tmp / "memory", args)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_watchers":
        watchers_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "_writer":
        writer_main(sys.argv[2:])
    else:
        sys.exit(main())
