"""Kill a writer with SIGKILL mid-way, then look at what it left (SPEC section 11): on SQL
whole batches only (each with its change-log entries and labels, no row still pending its
version), on files whole documents and a change log that holds exactly them."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SQLCounts", "file_documents_checked", "kill_when", "sql_counts"]


def kill_when(command: list[str], cwd: Path, started: Callable[[], bool],
              timeout: float = 120.0) -> None:
    """Run `command`, SIGKILL it once `started()` says it has written something."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not started():
            assert process.poll() is None, "the writer ended before it could be killed"
            assert time.monotonic() < deadline, f"nothing written after {timeout:.0f}s"
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


@dataclass(frozen=True)
class SQLCounts:
    rows: int  # resources stored
    logged: int  # their ADDED change-log entries
    labels: int  # label rows
    pending: int  # rows still waiting for their version (a write cut short)


_COUNTS = {
    "rows": "SELECT count(*) FROM fabrica_resources",
    "logged": "SELECT count(*) FROM fabrica_changes WHERE type = 'ADDED'",
    "labels": "SELECT count(*) FROM fabrica_labels",
    "pending": "SELECT count(*) FROM fabrica_resources WHERE resource_version < 0",
}


def sql_counts(url: str) -> SQLCounts:
    """What the database at `url` holds (read as a new process would, after the kill)."""
    from sqlalchemy import Engine, text

    from fabrica.storage import SQLStorage

    async def go() -> SQLCounts:
        storage = SQLStorage(url)
        try:
            engine = storage.engine
            if isinstance(engine, Engine):  # SQLite: the synchronous engine
                with engine.connect() as conn:
                    found = {k: conn.execute(text(q)).scalar_one() for k, q in _COUNTS.items()}
            else:
                async with engine.connect() as conn:
                    found = {k: (await conn.execute(text(q))).scalar_one()
                             for k, q in _COUNTS.items()}
        finally:
            await storage.close()
        return SQLCounts(**{k: int(v) for k, v in found.items()})

    return asyncio.run(go())


_FILE_CHECK = """
import asyncio, json, pathlib, sys
from fabrica.storage import FileStorage
data, collection, pattern = sys.argv[1:]
async def main():
    storage = FileStorage(data)
    docs = {d["metadata"]["uid"]: d for d in await storage.list(collection)}
    for path in (pathlib.Path(data) / collection).glob(pattern):
        json.loads(path.read_bytes())  # whole, or this fails
    added, after = {}, await storage.horizon(collection)
    while page := await storage.changes(collection, after):
        added.update((c.document["metadata"]["uid"], c.revision) for c in page)
        after = page[-1].revision
    assert added == {u: int(d["metadata"]["resourceVersion"]) for u, d in docs.items()}
    print(len(docs))
    await storage.close()
asyncio.run(main())
"""


def file_documents_checked(data: Path, collection: str, pattern: str) -> int:
    """How many documents of `collection` the data dir holds, checked in a new process:
    every file named by `pattern` parses whole, and the change log adds exactly the stored
    documents at their versions (an AssertionError otherwise)."""
    survived = subprocess.run([sys.executable, "-c", _FILE_CHECK, str(data), collection,
                               pattern], capture_output=True, text=True, timeout=120)
    assert survived.returncode == 0, survived.stderr
    return int(survived.stdout)
