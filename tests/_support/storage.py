"""Storage test helpers: the documents the storage suites write, a real `FileStorage`
that records which calls it was asked for (reads per write), and writers killed mid-write
(a real process, SIGKILL'd while its writes wait at name locks the test holds)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from fabrica.storage import FileStorage
from fabrica.storage.file._changes import read_counter
from fabrica.storage.file._io import atomic_write, flock
from tests._support.wait import eventually_sync


def doc(name: str, uid: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A Device document as the store hands it to storage (no version yet)."""
    return {"apiVersion": "v1", "kind": "Device", "schemaVersion": "v1",
            "metadata": {"name": name, "uid": uid, "labels": labels or {}, "annotations": {},
                         "createdAt": "2026-01-02T03:04:05.123456Z",
                         "updatedAt": "2026-01-02T03:04:05.123456Z",
                         "resourceVersion": "", "generation": 1},
            "spec": spec, "status": {}}


def short_doc(name: str, uid: str, **spec: Any) -> dict[str, Any]:
    """The least a document needs for the file backend."""
    return {"apiVersion": "v1", "kind": "Device", "metadata": {"name": name, "uid": uid,
            "resourceVersion": ""}, "spec": spec, "status": {}}


def uid(n: int) -> str:
    return f"dev-{n:08x}"


class CountingStorage(FileStorage):
    """The real file backend, counting the calls the store makes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    async def get(self, collection: str, uid: str) -> Any:
        self.calls.append("get")
        return await super().get(collection, uid)

    async def get_by_name(self, collection: str, name: str) -> Any:
        self.calls.append("get_by_name")
        return await super().get_by_name(collection, name)

    async def update(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("update")
        return await super().update(*args, **kwargs)


def _create_in_flight(data_dir: str, collection: str, count: int) -> None:
    """Another process's `count` creates at once (they stop at the name locks held by the
    test, each with its revision taken and its change not yet written): one group of
    concurrent creates, as the storage's create thread writes them (`_create_each_sync`;
    asyncio.gather could hand that thread the first ones alone, stuck at the first lock)."""
    storage = FileStorage(data_dir)
    storage._create_each_sync([(collection, short_doc(
        f"in-flight-{n}", f"dev-{0xf0000000 + n:08x}"), None, None) for n in range(count)])


@contextmanager
def name_locks_held(directory: Path) -> Iterator[None]:
    """Every name lock of a file collection (`directory`), held: creates wait at them."""
    (directory / ".locks").mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for stripe in range(64):
            stack.enter_context(flock(directory / ".locks" / f"n{stripe:02d}"))
        yield


def wait_for_counter(directory: Path, at_least: int, timeout: float = 60) -> None:
    def reached() -> bool:
        counter = read_counter(directory)
        assert counter >= at_least, f"counter at {counter}, want {at_least}"
        return True
    eventually_sync(reached, timeout=timeout)


def kill_writers_in_flight(data_dir: Path, collection: str, count: int) -> list[int]:
    """`count` creates of another process killed (SIGKILL) after taking their revisions and
    before writing their changes: the holes a kill -9 under load leaves. Their revisions."""
    directory = data_dir / collection
    start = read_counter(directory)
    kill_in_flight(directory, _create_in_flight, (str(data_dir), collection, count),
                   lambda: read_counter(directory) >= start + count)
    return list(range(start + 1, start + count + 1))


def kill_delete_in_flight(data_dir: Path, collection: str, uid: str) -> None:
    """A delete of another process killed after removing its document, before its change
    (it waits at the name lock to remove the name's link)."""
    directory = data_dir / collection
    kill_in_flight(directory, _delete_in_flight, (str(data_dir), collection, uid),
                   lambda: not (directory / f"{uid}.json").exists())


def kill_in_flight(directory: Path, target: Any, args: tuple[Any, ...],
                   until: Any) -> None:
    """Run `target(*args)` in another process while every name lock of the collection is
    held, and SIGKILL it once `until()` holds."""
    with name_locks_held(directory):
        process = multiprocessing.get_context("spawn").Process(target=target, args=args)
        process.start()
        try:
            def in_flight() -> bool:
                if until():
                    return True
                if not process.is_alive():  # fail at once: waiting longer cannot help
                    raise RuntimeError(f"the writer exited ({process.exitcode}) never in flight")
                return False
            eventually_sync(in_flight, timeout=60)
        finally:
            os.kill(process.pid, signal.SIGKILL)  # type: ignore[arg-type]
            process.join(30)


def _delete_in_flight(data_dir: str, collection: str, uid: str) -> None:
    import asyncio

    asyncio.run(FileStorage(data_dir).delete(collection, uid))


def die_after_document(data_dir: str, collection: str, uid: str, spec: dict[str, Any]
                       ) -> None:
    """In a process of its own: an update of `uid` that dies (``os._exit``) with its
    document in place and its change not yet in the log, the steps of
    ``FileStorage._update_sync`` up to there."""
    storage = FileStorage(data_dir)
    directory = Path(data_dir) / collection
    current = storage._get_sync(collection, uid)
    with storage._changes.writing(directory, current["metadata"]["resourceVersion"],
                                  "MODIFIED", {**current, "spec": spec}) as write:
        atomic_write(directory / f"{uid}.json", json.dumps(write.stored).encode())
        os._exit(0)


def run_and_die(target: Any, *args: Any) -> None:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    process.join(60)
    assert process.exitcode == 0


def die_linking_batch(data_dir: str, collection: str, count: int, linked: int) -> None:
    """In a process of its own: a `create_many` of `count` documents (one batch file of
    changes) that dies (``os._exit``) with every document in place and only `linked` of
    their changes linked into the log."""
    from fabrica.storage.file._changes import FileChangeLog

    done = 0
    publish = FileChangeLog.publish_link

    def dying(self: Any, *args: Any) -> None:
        nonlocal done
        if done == linked:
            os._exit(0)
        done += 1
        publish(self, *args)

    FileChangeLog.publish_link = dying  # type: ignore[method-assign]
    FileStorage(data_dir)._create_many_sync(collection, [
        (short_doc(f"b-{n}", uid(0x100 + n)), None, None) for n in range(count)])


def die_linking_batch_before_documents(data_dir: str, collection: str, count: int) -> None:
    """In a process of its own: a `create_many` that dies once its changes are prepared
    (one batch file) and before any document moved."""
    storage = FileStorage(data_dir)

    def dying(*args: Any, **kwargs: Any) -> None:
        os._exit(0)

    storage._place_create = dying  # type: ignore[method-assign]
    storage._create_many_sync(collection, [
        (short_doc(f"b-{n}", uid(0x100 + n)), None, None) for n in range(count)])
