"""What the change log (watch, issue 12) costs writers and readers, per backend.

Every write takes its revision from its collection. On SQLite (and MySQL) that is a row
lock per collection held until commit, so the writers of one kind commit one at a time while
writers of different kinds stay parallel; on PostgreSQL and MariaDB a sequence per
collection, and readers stop at the first revision still in flight, so writers of one kind
commit in parallel too (issue 19). This measures:

- ``one kind``: creates per second, C concurrent writers all creating in one collection;
- ``C kinds``: the same C writers, each creating in a collection of its own (no
  contention on any collection's lock); the ratio one/C kinds is what the per-collection
  order costs concurrent writers of one kind;
- ``latest``: mean time of `latest()` (called before every cached read) on a quiet
  collection, and ``changes``: mean time of reading 100 changes.

Run it from the repository root (the database servers are the machine's own; each run
works in a schema / database of its own and drops it)::

    .venv/bin/python bench/change_log.py                     # all four backends
    .venv/bin/python bench/change_log.py --backends postgresql --concurrency 16 --creates 2000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storage_scale import BACKENDS, device, open_backend  # noqa: E402

from fabrica.storage import Storage  # noqa: E402


async def create_rate(storage: Storage, collections: list[str], creates: int,
                      offset: int) -> float:
    """Creates per second, one writer per entry of `collections` (repeats allowed)."""
    numbers = iter(range(offset, offset + creates))

    async def writer(collection: str) -> None:
        for i in numbers:
            await storage.create(collection, device(i))

    began = time.perf_counter()
    await asyncio.gather(*(writer(c) for c in collections))
    return creates / (time.perf_counter() - began)


async def mean_ms(operation: Callable[[], Awaitable[object]], repeat: int) -> float:
    await operation()
    timings = []
    for _ in range(repeat):
        began = time.perf_counter()
        await operation()
        timings.append(time.perf_counter() - began)
    return statistics.fmean(timings) * 1000


async def measure(name: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="fabrica-bench-") as tmp:
        async with open_backend(name, Path(tmp)) as storage:
            c = args.concurrency
            await create_rate(storage, [f"warm{i}" for i in range(c)], c * 5, 10_000_000)
            one = await create_rate(storage, ["devices"] * c, args.creates, 0)
            spread = await create_rate(storage, [f"kind{i}" for i in range(c)], args.creates,
                                       1_000_000)
            latest = await mean_ms(lambda: storage.latest("devices"), 300)
            after = await storage.latest("devices") - 100

            async def read() -> None:
                assert len(await storage.changes("devices", after=after, limit=100)) == 100

            changes = await mean_ms(read, 30)
            print(f"| {name:<10} | {c:>3} | {one:>9,.0f} | {spread:>9,.0f} | "
                  f"{one / spread:>9.2f} | {latest:>11.3f} | {changes:>18.2f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated, from: " + ", ".join(BACKENDS))
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent writers")
    parser.add_argument("--creates", type=int, default=1000, help="creates per measurement")
    args = parser.parse_args(argv)
    print(f"| {'backend':<10} | {'C':>3} | {'one kind':>9} | {'C kinds':>9} | "
          f"{'one/C':>9} | {'latest (ms)':>11} | {'100 changes (ms)':>18} |")
    print(f"|{'-' * 12}|{'-' * 5}|{'-' * 11}|{'-' * 11}|{'-' * 11}|{'-' * 13}|{'-' * 20}|")
    for backend in args.backends.split(","):
        asyncio.run(measure(backend, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
