"""Export and import of 100,000 Devices on SQLite and PostgreSQL (SPEC section 11, issue 22).

For each backend, on a fresh database of its own (a SQLite file; a PostgreSQL schema on the
local server, dropped at the end): the Devices of examples/device are imported from an
export file (`read_export` checks every line, `import_resources` writes batches of 1,000
through `write_batch`: one transaction each, with labels, revisions and change-log
entries), then exported (`export_resources`, one snapshot transaction) back to a file.

The floor, in the same run and on the same database: the same rows (uid, name, document)
inserted by one plain ``executemany`` into a scratch table in one transaction, no checks,
no labels, no change log. The import ratio is import time / floor time.

    .venv/bin/python bench/backup.py                       # 100,000, SQLite and PostgreSQL
    .venv/bin/python bench/backup.py --count 10000 --backend sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Column, MetaData, String, Table, Text, create_engine, text

from fabrica.storage import SQLStorage
from fabrica.store import export_resources, import_resources, read_export

REPO = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get("FABRICA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def device_kind() -> Any:
    path = REPO / "examples/device/device.py"
    spec = importlib.util.spec_from_file_location("bench_device", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_device"] = module  # (pydantic resolves annotations through it)
    spec.loader.exec_module(module)
    return module.Device


def write_export(path: Path, count: int) -> None:
    header = {"fabricaExport": 1, "project": "bench", "kinds": {
        "Device": {"plural": "devices", "count": count, "resourceVersion": "1"}},
        "exportedAt": "2026-01-01T00:00:00Z"}
    with open(path, "w") as out:
        out.write(json.dumps(header) + "\n")
        for n in range(count):
            out.write(json.dumps({
                "apiVersion": "v1", "kind": "Device", "schemaVersion": "v1",
                "metadata": {"uid": f"dev-{n:08x}", "name": f"device-{n:06d}",
                             "labels": {"rack": f"r{n % 42}", "role": "compute"},
                             "annotations": {}, "createdAt": "2026-01-01T00:00:00Z",
                             "updatedAt": "2026-01-01T00:00:00Z", "generation": 1},
                "spec": {"type": "server", "ipAddress": f"10.{n >> 16}.{n >> 8 & 255}.{n & 255}",
                         "port": 443, "tags": {"site": "a"}},
                "status": {"health": "unknown", "errorCount": 0}}) + "\n")


def floor(url: str, path: Path) -> float:
    """One executemany of the file's rows into a scratch table, in one transaction."""
    rows = []
    with open(path) as lines:
        next(lines)
        for line in lines:
            doc = json.loads(line)
            rows.append({"uid": doc["metadata"]["uid"], "name": doc["metadata"]["name"],
                         "document": line})
    meta = MetaData()
    table = Table("bench_floor", meta, Column("uid", String(100), primary_key=True),
                  Column("name", String(253), unique=True), Column("document", Text))
    if url.startswith("sqlite"):  # the stdlib driver, synchronous, as the storage uses it
        engine = create_engine(url)
        meta.create_all(engine)
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
        took = time.perf_counter() - started
        engine.dispose()
        return took
    return asyncio.run(_floor_async(url, meta, table, rows))


async def _floor_async(url: str, meta: MetaData, table: Table, rows: list[dict[str, str]]
                       ) -> float:
    storage = SQLStorage(url)  # its async engine, as the import uses
    engine = storage.engine
    async with engine.begin() as conn:  # type: ignore[union-attr]
        await conn.run_sync(meta.create_all)
    started = time.perf_counter()
    async with engine.begin() as conn:  # type: ignore[union-attr]
        await conn.execute(table.insert(), rows)
    took = time.perf_counter() - started
    await storage.close()
    return took


async def import_and_export(url: str, source: Path, target: Path, kind: Any
                            ) -> tuple[float, float, float]:
    storage = SQLStorage(url)
    await storage.migrate()
    started = time.perf_counter()
    with open(source) as lines:
        plan = read_export(lines, [kind], "bench")
    checked = time.perf_counter() - started
    counts = await import_resources(storage, plan, "create")
    imported = time.perf_counter() - started
    assert counts == {"Device": plan.count()}, counts
    started = time.perf_counter()
    with open(target, "w") as out:
        exported = await export_resources(storage, [kind], "bench", out)
    took = time.perf_counter() - started
    assert exported == {"Device": plan.count()}
    await storage.close()
    return checked, imported, took


def run_backend(name: str, count: int, work: Path, kind: Any) -> None:
    source = work / "devices.ndjson"
    if not source.exists():
        write_export(source, count)
    schema = f"fabrica_bench_{secrets.token_hex(4)}"
    if name == "sqlite":
        url = f"sqlite:///{work}/bench-{schema}.db"
    else:
        asyncio.run(_sql(POSTGRES, f"CREATE SCHEMA {schema}"))
        url = f"{POSTGRES}?options={quote(f'-csearch_path={schema}')}"
    try:
        checked, imported, exported = asyncio.run(
            import_and_export(url, source, work / f"out-{name}.ndjson", kind))
        base = floor(url, source)
    finally:
        if name != "sqlite":
            asyncio.run(_sql(POSTGRES, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    print(f"{name:10s} {count:>7,} Devices: import {imported:6.2f} s (of it checks "
          f"{checked:5.2f} s; {count / imported:,.0f}/s), export {exported:6.2f} s "
          f"({count / exported:,.0f}/s); executemany floor {base:5.2f} s, import ratio "
          f"{imported / base:4.1f}x")


async def _sql(url: str, statement: str) -> None:
    storage = SQLStorage(url)
    async with storage.engine.connect() as conn:  # type: ignore[union-attr]
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(statement))
    await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--backend", choices=["all", "sqlite", "postgresql"], default="all")
    args = parser.parse_args()
    kind = device_kind()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="fabrica-bench-backup-") as work:
        for name in (["sqlite", "postgresql"] if args.backend == "all" else [args.backend]):
            run_backend(name, args.count, Path(work), kind)


if __name__ == "__main__":
    main()
