"""Creates per second of one kind from 1 and from 2 processes on one SQL database.

Each process opens its own `SQLStorage` (its own connection pool) and creates Devices in
one collection, as an API process under load does; the processes start together (a
barrier) and the clock runs from the barrier until the last create of the last process.
The same clients are split among the processes, as a load balancer would: the total
number of creates (`--creates`) and of creates in flight (`--concurrency`) are divided
among them, so 1 and 2 processes do the same work under the same load
(`--per-process` gives each process `--concurrency` in flight instead). Each round
measures 1 and 2 processes on a fresh schema each, in alternating order (so the load of
other work on a shared machine falls on both alike); the summary gives the median and
range over the rounds, and the ratio 2 processes / 1 process per round and of the medians.
Each measurement also says how busy the machine's cores were meanwhile (all work on the
machine, the database's included): a second process can only add creates where the first
one left a core idle.

On PostgreSQL and MariaDB (the machine's own servers, a throw-away schema / database per
measurement). Run it from the repository root::

    .venv/bin/python bench/pg_processes.py                        # ~2 min
    .venv/bin/python bench/pg_processes.py --backends postgresql --rounds 5 --creates 4000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storage_scale import COLLECTION, _database, _execute, device  # noqa: E402

from fabrica.storage import SQLStorage  # noqa: E402

BACKENDS = ("postgresql", "mariadb")


def _worker(url: str, first: int, count: int, concurrency: int, barrier: Any,
            results: Any) -> None:
    async def work() -> tuple[float, float, float, tuple[int, int], tuple[int, int]]:
        storage = SQLStorage(url)
        try:
            for i in range(first, first + 3):  # warm: pool, statements, the collection row
                await storage.create(COLLECTION, device(i))
            numbers = iter(range(first + 3, first + 3 + count))

            async def writer() -> None:
                for i in numbers:
                    await storage.create(COLLECTION, device(i))

            cpu = time.process_time()
            await asyncio.to_thread(barrier.wait)
            began, busy = time.time(), machine_busy()
            await asyncio.gather(*(writer() for _ in range(concurrency)))
            return began, time.time(), time.process_time() - cpu, busy, machine_busy()
        finally:
            await storage.close()

    results.put(asyncio.run(work()))


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (Linux /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)  # idle and iowait aside


def measure(backend: str, processes: int, args: argparse.Namespace
            ) -> tuple[float, float, float]:
    """(creates per second, CPU seconds of the writer processes, how busy the machine's
    cores were)."""
    admin_url, url, (create, drop) = _database(backend, Path("/nonexistent"))
    ctx = multiprocessing.get_context("spawn")
    asyncio.run(_admin(admin_url, create, url))
    try:
        barrier, results = ctx.Barrier(processes), ctx.Queue()
        share = args.creates // processes
        tasks = args.concurrency if args.per_process else max(args.concurrency // processes, 1)
        procs = [ctx.Process(target=_worker, args=(url, n * 10_000_000, share, tasks,
                                                   barrier, results))
                 for n in range(processes)]
        for proc in procs:
            proc.start()
        timings = [results.get(timeout=600) for _ in procs]
        for proc in procs:
            proc.join(60)
            if proc.exitcode != 0:
                raise SystemExit(f"a writer process failed (exit code {proc.exitcode})")
        began = min(t[0] for t in timings)
        ended = max(t[1] for t in timings)
        first = min(timings, key=lambda t: t[0])[3]
        last = max(timings, key=lambda t: t[1])[4]
        busy = (last[0] - first[0]) / max(last[1] - first[1], 1)
        return share * processes / (ended - began), sum(t[2] for t in timings), busy
    finally:
        asyncio.run(_admin(admin_url, drop, None))


async def _admin(admin_url: str | None, statement: str, migrate_url: str | None) -> None:
    assert admin_url is not None
    admin = SQLStorage(admin_url)
    try:
        await _execute(admin, statement)
    finally:
        await admin.close()
    if migrate_url is not None:
        storage = SQLStorage(migrate_url)
        try:
            await storage.migrate()
        finally:
            await storage.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated, from: " + ", ".join(BACKENDS))
    parser.add_argument("--creates", type=int, default=2000,
                        help="creates per measurement, split among the processes")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="creates in flight, split among the processes")
    parser.add_argument("--per-process", action="store_true",
                        help="--concurrency in flight in each process, not in all")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.creates} "
          f"creates per measurement, {args.concurrency} in flight "
          f"{'in each process' if args.per_process else 'in all'}", flush=True)
    for backend in args.backends.split(","):
        if backend not in BACKENDS:
            parser.error(f"unknown backend {backend!r}")
        rates: dict[int, list[float]] = {1: [], 2: []}
        for round_ in range(args.rounds):
            order = (1, 2) if round_ % 2 == 0 else (2, 1)
            for processes in order:
                rate, cpu, busy = measure(backend, processes, args)
                rates[processes].append(rate)
                print(f"  {backend:<10} round {round_ + 1}  {processes} process"
                      f"{'es' if processes > 1 else '  '}  {rate:7.0f} creates/s  "
                      f"(writers' CPU {cpu:5.1f} s, cores {busy:4.0%} busy, "
                      f"load {os.getloadavg()[0]:.1f})", flush=True)
        one, two = statistics.median(rates[1]), statistics.median(rates[2])
        per_round = [b / a for a, b in zip(rates[1], rates[2], strict=True)]
        print(f"{backend}: 1 process {one:.0f}/s (range {min(rates[1]):.0f}-"
              f"{max(rates[1]):.0f}), 2 processes {two:.0f}/s (range {min(rates[2]):.0f}-"
              f"{max(rates[2]):.0f}); ratio of medians {two / one:.2f}, per round "
              f"{', '.join(f'{r:.2f}' for r in per_round)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
