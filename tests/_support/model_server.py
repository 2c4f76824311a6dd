"""The server side of a model run: a generated server process on one backend, killed with
SIGKILL and started again on the same port and storage, and the storage's own change log
read back afterwards (the ground truth the checker compares everything with).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from fabrica.storage import FileStorage, StoredChange, open_storage

from .e2e import free_port
from .sqldb import database
from .wait import eventually_sync

__all__ = ["BACKENDS", "ServerProcess", "backend_target", "read_change_log"]

BACKENDS = ("file", "sqlite", "postgresql", "mariadb")
#: Enough history that nothing is compacted during a run: the checker reads the whole log.
HISTORY = 10_000_000
_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):$", re.M)


@contextmanager
def backend_target(backend: str, tmp: Path) -> Iterator[str]:
    """An empty storage of `backend`: a data dir, or a database URL (dropped afterwards)."""
    if backend == "file":
        yield str(tmp / "data")
        return
    with database(backend, tmp) as url:
        yield url


def storage_args(target: str) -> list[str]:
    if "://" in target:
        return ["--database-url", target]
    return ["--data-dir", target]


class ServerProcess:
    """``python -m PACKAGE.server serve`` on one port; each start logs to a file of its own,
    so a killed process's log is kept."""

    def __init__(self, project: Path, package: str, target: str, *extra: str) -> None:
        self.project = project
        self.package = package
        self.args = [*storage_args(target), "--watch-history", str(HISTORY), *extra]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logs: list[Path] = []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> float:
        """Start and wait until ``/health`` answers; the seconds that took."""
        started = time.monotonic()
        log = self.project / f"model-{self.port}-{len(self.logs)}.log"
        self.logs.append(log)
        command = [sys.executable, "-m", f"{self.package}.server", "serve", "--host",
                   "127.0.0.1", "--port", str(self.port), "--no-access-log", *self.args]
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, cwd=self.project, stdout=out,
                                            stderr=subprocess.STDOUT)
        process = self.process

        def healthy() -> bool:
            if process.poll() is not None:  # fails at once: no use waiting
                raise RuntimeError(f"server exited {process.returncode}:\n"
                                   f"{log.read_text(errors='replace')[-4000:]}")
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        try:
            eventually_sync(healthy, timeout=timeout, interval=0.05,
                            retry_on=(httpx.TransportError,))
        except AssertionError as exc:
            raise RuntimeError(f"server not healthy in {timeout}s:\n"
                               f"{log.read_text(errors='replace')[-4000:]}") from exc
        return time.monotonic() - started

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM; SIGKILL if it has not ended within 15 seconds."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def tracebacks(self) -> list[str]:
        """Each traceback any of its processes logged: the line before it and its last."""
        found = []
        for log in self.logs:
            text = log.read_text(errors="replace")
            for match in _TRACEBACK.finditer(text):
                before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
                after = text[match.end():].split("\n")
                last = next((line for line in after if line and not line.startswith(" ")), "")
                found.append(f"{log.name}: {before.strip()} ... {last.strip()}")
        return found


def read_change_log(target: str, collection: str) -> list[StoredChange]:
    """The whole change log of `collection`, read from the storage itself (the server is
    stopped). On files, a revision still missing now belongs to a writer that died: with
    no server left it is taken for abandoned at once."""
    async def read() -> list[StoredChange]:
        if "://" in target:
            storage = open_storage(target, change_history=HISTORY)
        else:
            storage = FileStorage(target, change_history=HISTORY, change_wait=0.0)
        try:
            changes: list[StoredChange] = []
            after = await storage.horizon(collection)
            if after:
                raise AssertionError(f"the {collection} log was compacted up to {after}")
            while True:
                batch = await storage.changes(collection, after, 1000)
                if not batch:
                    return changes
                changes.extend(batch)
                after = batch[-1].revision
        finally:
            await storage.close()

    return asyncio.run(read())
