"""How storage costs grow with the number of resources, per backend.

For each backend (file, sqlite, postgresql, mariadb) it inserts N resources (default 1k,
10k, 100k; the file backend stops at 10k, ``--file-max``: it fsyncs every create) and measures
at each N:

- ``create/s``: creates per second while growing to N (16 concurrent writers);
- ``get``: mean time of one get by uid (random uids, one at a time);
- ``list``: mean time of one page of 100 with a label selector (``group in (g1,g3,g5)``,
  three resources in ten), starting after a random name, as
  ``GET /PLURAL?labelSelector=...&limit=100`` does;
- with ``--walk PAGE``: the time of one walk through the whole collection in pages of PAGE
  (``limit`` + ``continue``, no selector), as a client or the console lists a kind, and the
  time of one full list: a backend that reads only each page's documents walks in about the
  time of the full list, one that reads the collection per page takes pages x longer.

The growth lines divide each cost at the largest N by its cost at the smallest: ~1x means
the cost does not depend on N (keyset paging and indexes at work), ~100x from 1k to 100k
means it grows linearly.

Statistics: by default the tables are analyzed at each N (what autovacuum does within a
minute of a large change). ``--stale-statistics`` instead analyzes them once, when they hold
one resource, and never again (autovacuum off for them, MariaDB's automatic recalculation
too): the statistics of a table sampled while small, under which a plan that reads the whole
collection per write used to be chosen (issue 19, item 11).

The database servers are the machine's own (PostgreSQL 127.0.0.1:5432 database ``test``,
MariaDB 127.0.0.1:3306); each run works in a schema / database of its own and drops it.
Run it from the repository root::

    .venv/bin/python bench/storage_scale.py                      # ~6 min
    .venv/bin/python bench/storage_scale.py --sizes 1000,10000 --backends sqlite,postgresql
    .venv/bin/python bench/storage_scale.py --backends postgresql --stale-statistics
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fabrica.resource import parse_selector
from fabrica.storage import FileStorage, SQLStorage, Storage

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB = "mysql://root@127.0.0.1:3306/test"
BACKENDS = ("file", "sqlite", "postgresql", "mariadb")
COLLECTION = "devices"
SELECTOR = parse_selector("group in (g1,g3,g5)")  # three resources in ten
PAGE = 100


@dataclass
class Row:
    backend: str
    size: int
    creates_per_s: float
    get_ms: float
    list_ms: float
    walk_s: float | None = None
    full_s: float | None = None


def device(i: int) -> dict[str, Any]:
    name = f"node-{i:07d}"
    return {
        "apiVersion": "v1", "kind": "Device", "schemaVersion": "v1",
        "metadata": {"name": name, "uid": f"dev-{i:08x}{secrets.token_hex(2)}",
                     "labels": {"group": f"g{i % 10}", "tier": ("gold", "silver", "bronze")[i % 3],
                                "rack": f"r{i % 100}"},
                     "annotations": {"example.com/owner": "bench"},
                     "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
                     "resourceVersion": "", "generation": 1},
        "spec": {"type": "server", "ipAddress": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                 "port": 443, "tags": {"rack": f"r{i % 100}", "row": f"row-{i % 7}"}},
        "status": {"health": "unknown", "errorCount": 0},
    }


@asynccontextmanager
async def open_backend(name: str, workdir: Path) -> AsyncIterator[Storage]:
    if name == "file":
        yield FileStorage(workdir / "files")
        return
    admin_url, url, cleanup = _database(name, workdir)
    admin = SQLStorage(admin_url) if admin_url else None
    try:
        if admin is not None:
            await _execute(admin, cleanup[0])
        storage = SQLStorage(url, pool_size=20, max_overflow=0) if admin else SQLStorage(url)
        await storage.migrate()
        try:
            yield storage
        finally:
            await storage.close()
    finally:
        if admin is not None:
            await _execute(admin, cleanup[1])
            await admin.close()


def _database(name: str, workdir: Path) -> tuple[str | None, str, tuple[str, str]]:
    """(admin URL, URL of a fresh place, (create statement, drop statement))."""
    token = f"fabrica_bench_{secrets.token_hex(4)}"
    if name == "sqlite":
        return None, f"sqlite:///{workdir}/bench.db", ("", "")
    if name == "postgresql":
        url = f"{POSTGRES}?options={quote(f'-csearch_path={token}')}"
        return POSTGRES, url, (f"CREATE SCHEMA {token}", f"DROP SCHEMA {token} CASCADE")
    if name == "mariadb":
        return MARIADB, f"{MARIADB.rsplit('/', 1)[0]}/{token}", (
            f"CREATE DATABASE {token} CHARACTER SET utf8mb4", f"DROP DATABASE {token}")
    raise SystemExit(f"unknown backend {name!r}: choose from {', '.join(BACKENDS)}")


async def _execute(storage: SQLStorage, statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncEngine

    assert isinstance(storage.engine, AsyncEngine)
    async with storage.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        result = await conn.execute(text(statement))
        if result.returns_rows:  # MariaDB's ANALYZE TABLE answers with a status table
            result.all()


async def refresh_statistics(storage: Storage) -> None:
    """What autovacuum (PostgreSQL) and persistent statistics (InnoDB) do by themselves
    within about a minute of a large change: the planner needs them to choose the index walk
    in name order for a page, and this run adds 90,000 rows in less time than that."""
    if not isinstance(storage, SQLStorage) or storage.name == "sqlite":
        return
    statement = ("ANALYZE fabrica_resources, fabrica_labels" if storage.name == "postgresql"
                 else "ANALYZE TABLE fabrica_resources, fabrica_labels")
    await _execute(storage, statement)


_TABLES = ("fabrica_resources", "fabrica_labels", "fabrica_versions", "fabrica_changes")


async def freeze_statistics(storage: Storage) -> None:
    """Analyze the tables now, and never again (see the module docstring)."""
    if not isinstance(storage, SQLStorage) or storage.name == "sqlite":
        return
    for table in _TABLES:
        if storage.name == "postgresql":
            await _execute(storage, f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
            await _execute(storage, f"ANALYZE {table}")
        else:
            await _execute(storage, f"ALTER TABLE {table} STATS_AUTO_RECALC = 0")
            await _execute(storage, f"ANALYZE TABLE {table}")


async def grow(storage: Storage, start: int, stop: int, concurrency: int,
               uids: list[str]) -> float:
    """Create resources start..stop-1; return creates per second."""
    numbers = iter(range(start, stop))

    async def writer() -> None:
        for i in numbers:
            created = await storage.create(COLLECTION, device(i))
            uids.append(created["metadata"]["uid"])

    began = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(concurrency)))
    return (stop - start) / (time.perf_counter() - began)


async def mean_ms(operation: Callable[[], Any], repeat: int) -> float:
    await operation()  # warm: plans, caches, pooled connections
    timings = []
    for _ in range(repeat):
        began = time.perf_counter()
        await operation()
        timings.append(time.perf_counter() - began)
    return statistics.fmean(timings) * 1000


async def timed(operation: Callable[[], Any]) -> float:
    began = time.perf_counter()
    await operation()
    return time.perf_counter() - began


async def walk(storage: Storage, page: int, expected: int) -> None:
    """Every document of the collection, page by page, as ``?limit=PAGE&continue=...``."""
    seen, after = 0, None
    while found := await storage.list(COLLECTION, limit=page, after=after):
        seen += len(found)
        after = found[-1]["metadata"]["name"]
    assert seen == expected, (seen, expected)


async def full_list(storage: Storage, expected: int) -> None:
    assert len(await storage.list(COLLECTION)) == expected


async def measure(name: str, sizes: list[int], args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="fabrica-bench-") as tmp:
        async with open_backend(name, Path(tmp)) as storage:
            uids: list[str] = []
            if args.stale_statistics:
                await grow(storage, 0, 1, 1, uids)
                await freeze_statistics(storage)
            for size in sizes:
                rate = await grow(storage, len(uids), size, args.concurrency, uids)
                if not args.stale_statistics:
                    await refresh_statistics(storage)

                async def get() -> None:
                    await storage.get(COLLECTION, rng.choice(uids))

                async def page(size: int = size) -> None:
                    after = f"node-{rng.randrange(size - 5 * PAGE):07d}"
                    found = await storage.list(COLLECTION, selector=SELECTOR, limit=PAGE,
                                               after=after)
                    assert len(found) == PAGE, len(found)

                row = Row(name, size, rate, await mean_ms(get, args.gets),
                          await mean_ms(page, args.lists))
                if args.walk:
                    row.walk_s = await timed(lambda: walk(storage, args.walk, len(uids)))
                    row.full_s = await timed(lambda: full_list(storage, len(uids)))
                rows.append(row)
                walked = ("" if row.walk_s is None else f"  walk by {args.walk:,} "
                          f"{row.walk_s:7.2f} s  full list {row.full_s:7.2f} s")
                print(f"  {name:<10} {size:>8,}  {row.creates_per_s:>9,.0f} creates/s  "
                      f"get {row.get_ms:7.3f} ms  list {row.list_ms:8.2f} ms{walked}",
                      flush=True)
    return rows


def report(rows: list[Row]) -> None:
    walked = any(row.walk_s is not None for row in rows)
    print()
    print(f"| {'backend':<10} | {'N':>8} | {'create/s':>9} | {'get (ms)':>8} | "
          f"{'list 100 w/ selector (ms)':>25} |"
          + (f" {'walk (s)':>8} | {'full list (s)':>13} |" if walked else ""))
    print(f"|{'-' * 12}|{'-' * 10}|{'-' * 11}|{'-' * 10}|{'-' * 27}|"
          + (f"{'-' * 10}|{'-' * 15}|" if walked else ""))
    for row in rows:
        print(f"| {row.backend:<10} | {row.size:>8,} | {row.creates_per_s:>9,.0f} | "
              f"{row.get_ms:>8.3f} | {row.list_ms:>25.2f} |"
              + (f" {row.walk_s or 0:>8.2f} | {row.full_s or 0:>13.2f} |" if walked else ""))
    print()
    print("growth from the smallest to the largest N (cost at largest / cost at smallest):")
    for backend in dict.fromkeys(r.backend for r in rows):
        mine = [r for r in rows if r.backend == backend]
        if len(mine) < 2:
            continue
        first, last = mine[0], mine[-1]
        factor = last.size / first.size
        slower = first.creates_per_s / last.creates_per_s
        print(f"  {backend:<10} N x{factor:,.0f}: time per create x{slower:.2f}, "
              f"get x{last.get_ms / first.get_ms:.2f}, "
              f"list page x{last.list_ms / first.list_ms:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated, from: " + ", ".join(BACKENDS))
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="resource counts to measure at, comma-separated")
    parser.add_argument("--file-max", type=int, default=10_000,
                        help="largest N for the file backend")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent writers")
    parser.add_argument("--gets", type=int, default=300, help="gets timed at each N")
    parser.add_argument("--lists", type=int, default=30, help="pages timed at each N")
    parser.add_argument("--walk", type=int, default=0, metavar="PAGE",
                        help="also time a walk through all pages of PAGE, and a full list")
    parser.add_argument("--stale-statistics", action="store_true",
                        help="analyze the tables once, at one resource, never again")
    args = parser.parse_args(argv)
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",")})
    if sizes[0] < PAGE * 10:
        parser.error(f"the smallest size must be at least {PAGE * 10}, for full pages")
    rows: list[Row] = []
    for backend in args.backends.split(","):
        mine = [s for s in sizes if backend != "file" or s <= args.file_max]
        print(f"{backend}: {', '.join(f'{s:,}' for s in mine)} resources", flush=True)
        rows += asyncio.run(measure(backend, mine, args))
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
