"""A list by an Indexed field at 1,000 and at 100,000 resources (SPEC section 10: served from
an index, not a scan; the aim is within 2x).

For each size N it stores N BMCs (in batches, `write_batch`, with the field index kept as
every write keeps it), each rack value held by 10 of them whatever N, and measures the mean
time of:

- ``sql rack``: ``storage.list(fieldSelector spec.rackUID=rX)`` (10 results), the query a
  list of a kind too large for the watch cache runs (EXISTS on ``fabrica_field_index``);
- ``sql mac``: the same by ``spec.mac`` (one result);
- ``cache rack``: ``WatchCache.list`` of the same selector once the kind is cached (the
  per-field index in memory, and the wire JSON of the 10 results), as
  ``GET /bmcs?fieldSelector=spec.rackUID=rX`` answers it;
- ``cache warm``: the same among the first 100 racks only (what ``cache rack`` does at
  1,000), so that at 100,000 too the results were read before and their JSON is cached.

Each measure picks a random value per call. The growth line divides the time at the largest
N by the time at the smallest. Backends: sqlite (a file in a temporary directory) and, with
``--backends sqlite,postgresql``, the machine's PostgreSQL (127.0.0.1:5432, database
``test``, a schema of its own) or ``mariadb`` (127.0.0.1:3306, a database of its own),
dropped after, analyzed after loading as autovacuum and InnoDB would.

    .venv/bin/python bench/field_selector.py                     # sqlite, 1k and 100k
    .venv/bin/python bench/field_selector.py --backends sqlite,postgresql,mariadb
    .venv/bin/python bench/field_selector.py --sizes 1000,10000 --repeat 100
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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import Field

from fabrica import Indexed, Model, Resource
from fabrica.resource import Selector, parse_field_selector
from fabrica.storage import BulkItem, SQLStorage
from fabrica.store import ResourceStore, WatchCache

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB = "mysql://root@127.0.0.1:3306/test"
PER_RACK = 10
BATCH = 1000


class BenchBMCSpec(Model):
    mac: Annotated[str, Indexed()] = ""
    rack_uid: Annotated[str, Indexed()] = Field("", alias="rackUID")
    slot: int = 0


class BenchBMCStatus(Model):
    phase: str = ""


class BenchBMC(Resource[BenchBMCSpec, BenchBMCStatus], prefix="bmc", plural="bmcs"):
    pass


COLLECTION = BenchBMC.resource_info.plural
SELECTABLE = BenchBMC.resource_info.rules.selectable


def bmc(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "BenchBMC", "schemaVersion": "v1",
        "metadata": {"name": f"bmc-{i:07d}", "uid": f"bmc-{i:08x}{secrets.token_hex(2)}",
                     "labels": {}, "annotations": {}, "createdAt": "2026-01-01T00:00:00Z",
                     "updatedAt": "2026-01-01T00:00:00Z", "resourceVersion": "",
                     "generation": 1},
        "spec": {"mac": f"02:00:{i:08x}", "rackUID": f"rack-{i // PER_RACK}", "slot": i},
        "status": {"phase": "Ready" if i % 2 else ""},
    }


def selector(text: str) -> Selector:
    return Selector(fields=parse_field_selector(text, SELECTABLE))


@asynccontextmanager
async def open_backend(name: str, workdir: Path) -> AsyncIterator[SQLStorage]:
    if name == "sqlite":
        storage = SQLStorage(f"sqlite:///{workdir}/bench-{secrets.token_hex(3)}.db")
        await storage.migrate()
        try:
            yield storage
        finally:
            await storage.close()
        return
    place = f"fabrica_bench_{secrets.token_hex(4)}"
    if name == "postgresql":
        admin = SQLStorage(POSTGRES)
        url = f"{POSTGRES}?options={quote(f'-csearch_path={place}')}"
        create, drop = f"CREATE SCHEMA {place}", f"DROP SCHEMA {place} CASCADE"
    elif name == "mariadb":
        admin = SQLStorage(MARIADB)
        url = f"{MARIADB.rsplit('/', 1)[0]}/{place}"
        create, drop = f"CREATE DATABASE {place} CHARACTER SET utf8mb4", f"DROP DATABASE {place}"
    else:
        raise SystemExit(f"unknown backend {name!r}: sqlite, postgresql or mariadb")
    await _execute(admin, create)
    storage = SQLStorage(url)
    try:
        await storage.migrate()
        yield storage
    finally:
        await storage.close()
        await _execute(admin, drop)
        await admin.close()


async def _execute(storage: SQLStorage, statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncEngine

    assert isinstance(storage.engine, AsyncEngine)
    async with storage.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        result = await conn.execute(text(statement))
        if result.returns_rows:  # MariaDB's ANALYZE TABLE answers with a status table
            result.all()


async def load(storage: SQLStorage, size: int) -> float:
    """Store `size` BMCs; the seconds it took."""
    began = time.perf_counter()
    for start in range(0, size, BATCH):
        items = [BulkItem(bmc(i)) for i in range(start, min(size, start + BATCH))]
        await storage.write_batch(COLLECTION, items, mode="create")
    if storage.name == "postgresql":  # what autovacuum does within a minute
        await _execute(storage, "ANALYZE fabrica_resources, fabrica_field_index")
    elif storage.name != "sqlite":  # InnoDB's persistent statistics, likewise
        await _execute(storage, "ANALYZE TABLE fabrica_resources, fabrica_field_index")
    return time.perf_counter() - began


async def mean_ms(operation: Callable[[], Awaitable[Any]], repeat: int) -> float:
    await operation()  # warm: plans, caches, pooled connections
    timings = []
    for _ in range(repeat):
        began = time.perf_counter()
        await operation()
        timings.append(time.perf_counter() - began)
    return statistics.fmean(timings) * 1000


async def measure(storage: SQLStorage, size: int, repeat: int) -> dict[str, float]:
    racks = size // PER_RACK

    async def by_rack() -> None:
        found = await storage.list(COLLECTION, selector=selector(
            f"spec.rackUID=rack-{random.randrange(racks)}"))
        assert len(found) == PER_RACK, len(found)

    async def by_mac() -> None:
        found = await storage.list(COLLECTION, selector=selector(
            f"spec.mac=02:00:{random.randrange(size):08x}"))
        assert len(found) == 1

    figures = {"sql rack": await mean_ms(by_rack, repeat),
               "sql mac": await mean_ms(by_mac, repeat)}
    store = ResourceStore(storage, [BenchBMC])
    cache = WatchCache(storage, [BenchBMC], encode=store.wire, render=store.render,
                       max_objects=max(size, 1000))
    try:
        feed = cache.feed(BenchBMC)
        while feed.cache is None:  # the first read starts filling it
            await cache.list(BenchBMC, selector=selector("metadata.name=bmc-0000000"))
            await asyncio.sleep(0.05)

        async def cached(among: int) -> None:
            _, found = await cache.list(BenchBMC, selector=selector(
                f"spec.rackUID=rack-{random.randrange(among)}"))
            assert len(found) == PER_RACK
            for item in found:
                item.wire(BenchBMC.resource_info.version)

        figures["cache rack"] = await mean_ms(lambda: cached(racks), repeat)
        # The first 100 racks only, read over and over at every N: the same work but for
        # the size of the index (above, at 100,000 most reads also encode resources
        # never read before, which the cache then keeps).
        figures["cache warm"] = await mean_ms(lambda: cached(min(racks, 100)), repeat)
    finally:
        await cache.close()
    return figures


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"fieldSelector lists, mean of {args.repeat} (ms); {PER_RACK} BMCs per rack")
    with tempfile.TemporaryDirectory() as workdir:
        for backend in args.backends.split(","):
            results: dict[int, dict[str, float]] = {}
            for size in sizes:
                async with open_backend(backend, Path(workdir)) as storage:
                    await storage.prepare_fields(COLLECTION, SELECTABLE)
                    loaded = await load(storage, size)
                    results[size] = await measure(storage, size, args.repeat)
                print(f"{backend:<10} N={size:>7}  (loaded in {loaded:5.1f} s)  " + "  ".join(
                    f"{name} {value:7.3f}" for name, value in results[size].items()))
            first, last = results[sizes[0]], results[sizes[-1]]
            print(f"{backend:<10} growth {sizes[0]} -> {sizes[-1]}: " + "  ".join(
                f"{name} {last[name] / first[name]:.2f}x" for name in first))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
