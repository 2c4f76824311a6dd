"""File storage: one JSON document per resource, ``DATA_DIR/PLURAL/UID.json``.

Durability: every document is written to a temporary file in its directory, made durable,
moved into place by an atomic rename (or hard link, for a create) and the directory made
durable, so a crash leaves the old or the new document, never a torn one. Writers share
those syncs (group commit, `_io.GroupSync`): a write's temp files (its document and its
prepared change) are written unsynced, then one sync that began after they were written
makes them durable (sync 1) before anything moves; after the moves, another shared sync
(sync 2) makes the renames and the directories durable, and only then does the write
return, so only then is it acknowledged. Creates go further: one create thread takes every
create waiting and writes them as one group, pipelined (`_drain_creates`), so a sync costs
one ``syncfs`` for all of them; `create_many` is one such group of its own.

Names: ``PLURAL/@NAME`` is a hard link to the document's file, ``UID.json``. It lives in the
same directory as the documents (one directory fsync covers both), is the document itself
(``cat data/racks/@rack-01``), and is created with ``link()``, which fails when the name is
taken. It costs no inode of its own: creating inodes is the dearest part of a write (see
`_changes`), and a symbolic link was one more per document. A create links the name to its
document's temp file before the document is linked into place, and a delete removes it after
the document, so a crash can only leave a name whose ``UID.json`` is gone, which readers
ignore and the next creator of that name replaces. An update re-points the name at the new
file after renaming it into place; a reader tells a name that lags behind (a crash between
the two) by comparing its inode with ``UID.json``'s and then reads ``UID.json``. Names made
by earlier releases are symbolic links to ``UID.json``, and read the same way. Documents
copied in by hand get their names on first use of the collection. A page of a list
(``limit``, ``after``) takes its names, in order, from the links and reads only the documents
it returns, so walking a collection by pages reads it once.

Field selectors (``?fieldSelector=``): ``metadata.name=X`` reads the one ``@X`` link; other
fields are matched by reading the collection, with no index on disk. That is a choice:
this backend is the small-scale one, and a kind of up to ``--watch-cache-size`` resources
is answered from the watch cache's own per-field index, never from here; only a kind too
large for the cache would be scanned, and such a kind belongs in a SQL database, which
keeps a field index in the write's transaction.

Concurrency, within a process and across processes sharing the data dir: a write takes an
exclusive ``flock`` on one of 64 lock files picked by hashing the uid (updates, deletes) or
the name (creates), so writers of different resources run in parallel, fsyncs included,
and the kernel batches their journal commits. A delete, the only writer needing both, takes
the uid lock first and then the name lock; nobody takes them the other way round. Readers
take no lock: renames are atomic.

``resourceVersion`` comes from the collection's revision counter, ``PLURAL/.revision``, a
20-digit number rewritten in place under its own short lock (no fsync: should a crash roll
it back, a write still takes a number above the document's own version, so no resource
ever sees a version twice). So versions are small, grow across the collection, and a
resource deleted and re-created under the same name starts above its predecessor.

Every write also records its change, ``PLURAL/.changes/REVISION.json``, after the document
and under the same locks, made durable by the same directory fsync; a delete takes a
revision too. How watchers read that log in order, across processes, and how a writer
that died mid-write is told from one at work, is in `_changes`.

The log must never give a name to two resources at once. A create takes its revision
before its name's lock (its slow part, two fsyncs, runs unlocked), so a delete of the same
name may be numbered after it and still let the name go first. A delete therefore notes
its revision in the name lock's file (the newest delete of that stripe of names), and a
create that finds, under the name lock, a noted revision above its own, or a link to a
document already gone (a delete at work, or one that died), gives its number up (a skip
marker) and takes a new one: it is logged after that delete.

Spec snapshots of versioned kinds live in ``PLURAL/.versions/UID/VERSION.json``, written
under the same lock and before the document they belong to.

Ids never reach the filesystem unchecked: uids must look like ``prefix-hex`` and names like
DNS-1123 subdomains, so no id can address a path outside the data dir.
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import errno
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from ...resource import UID_PATTERN, Selector, document_fields, is_dns1123_subdomain, is_uid
from .._base import (
    DEFAULT_CHANGE_HISTORY,
    AlreadyExists,
    Conflict,
    Document,
    Invalid,
    NotFound,
    StoredChange,
    UniqueKeys,
)
from .._bulk import BatchMode, BulkItem, SnapshotWriter
from .._checks import check_collection, check_new, check_update
from .._leases import Leases, LocalLeases
from .._outbox import Outbox
from .._unique import document_key
from . import _bulk as bulk
from ._changes import (
    REVISION_WIDTH,
    ChangeWrite,
    FileChangeLog,
    is_prepared_change,
    prepared_revisions,
    read_counter,
)
from ._io import (
    GroupSync,
    atomic_write,
    flock,
    fsync_dir,
    read_bytes,
    read_with_inode,
    write_temp,
)
from ._unique import build, claim, constraints_on_disk, held_by, release

__all__ = ["FileStorage"]

log = logging.getLogger("fabrica.storage")

T = TypeVar("T")
_DOC_FILE = re.compile(UID_PATTERN.removesuffix("$") + r"\.json\Z")
_VERSION_ID = re.compile(r"^v[0-9]{1,12}\Z")
_STRIPES = 64
_PARALLEL_FROM = 64  # a create_many this big writes its files on the batch threads
_PARALLEL_GROUP = 16  # a group of concurrent creates this big does the same
_BATCH_THREADS = 2
_BUSY_NAME_PAUSE = 0.002  # the create thread's pause when only put-off creates are left
_STALE_TEMP_SECONDS = 300
_INDEX_MARKER = ".index-v2"
_CHANGE_POLL_SECONDS = 0.005
# The first look again for a writer in flight: it is a few system calls from done, most
# of the time (`_prefix_reaches`).
_CHANGE_FIRST_PAUSE = 0.0002
# How long a collection's directory must have stood unchanged for a listing of its names to
# be kept: longer than the coarsest timestamps (FAT's 2 s; ext4's follow a clock tick).
_SETTLED_NS = 3_000_000_000


class FileStorage:
    """Documents as files under `data_dir`; safe across threads and processes."""

    name = "file"

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        io_threads: int = 32,
        change_history: int = DEFAULT_CHANGE_HISTORY,
        change_wait: float = 3.0,
    ) -> None:
        """`change_history`: changes kept per collection (compacted beyond); `change_wait`:
        how long one `changes` call waits for writers in flight before answering what it
        has, and, where the kernel cannot say whether a writer lives (no open file
        description locks), how long a missing change is waited for before its writer is
        taken for dead (see `_changes`)."""
        self.data_dir = Path(data_dir).resolve()
        self._changes = FileChangeLog(change_wait, change_history)
        self._latest_dirs: dict[str, Path] = {}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._group = GroupSync(self.data_dir)  # creates share their syncs (see `_io`)
        self._ready: set[str] = set()
        # Per collection: its directory's mtime and its sorted names (see `_sorted_names`).
        self._names: dict[str, tuple[int, builtins.list[str]]] = {}
        # Writes spend their time in fsync, which releases the GIL: many threads let the
        # kernel batch concurrent writers into one journal commit. Listing is mostly JSON
        # parsing, which holds the GIL: more than a couple of threads only fight over it.
        self._executor = ThreadPoolExecutor(io_threads, thread_name_prefix="fabrica-file")
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="fabrica-file-read")
        # Creates go to one thread of their own, which takes every create waiting and
        # writes them together (`_create_each_sync`): one pair of syncs for all, and no
        # dozens of threads handing the GIL about for their many small system calls.
        self._creator = ThreadPoolExecutor(1, thread_name_prefix="fabrica-file-create")
        self._queue: builtins.list[_Queued] = []
        self._queue_lock = threading.Lock()
        self._draining = False
        self._batch_pool: ThreadPoolExecutor | None = None  # a big create_many's helpers

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def _read(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, func, *args)

    def leases(self, namespace: str) -> Leases:
        return LocalLeases()  # files have no locks other processes could see held

    # -- async API -----------------------------------------------------------------------

    async def create(
        self, collection: str, doc: Document, snapshot: Document | None = None,
        *, unique: UniqueKeys | None = None,
    ) -> Document:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Document] = loop.create_future()
        with self._queue_lock:
            self._queue.append((collection, doc, snapshot, unique, future, loop))
            idle, self._draining = not self._draining, True
        if idle:
            self._creator.submit(self._drain_creates)
        stored = await future
        await self._in_log_order(collection, stored)
        return stored

    def _drain_creates(self) -> None:
        """The create thread: every create queued meanwhile, written as one group, and
        pipelined: each sync is the second of the group placed before it (its renames
        durable, then it is answered) and the first of the group prepared after it (its
        temp files durable, then it is placed). One sync per group, two per create.

        A create whose name lock another process holds does not hold up the others: it
        is put off (prepared and synced already) and placed with a later group."""
        waiting: _Group | None = None  # placed, waiting for its second sync
        carried: builtins.list[tuple[Any, _Create]] = []  # put off: name lock was held
        while True:
            with self._queue_lock:
                batch, self._queue = self._queue, []
                if not batch and waiting is None and not carried:
                    self._draining = False
                    return
            group = _Group(batch)
            try:
                self._prepare_each(group)
                fresh = bool(group.creates)
                group.adopt(carried)
                carried = []
                if waiting is not None or (fresh and self._group.covers_files):
                    try:
                        self._group.sync(tuple(waiting.dirs) if waiting else ())
                    except OSError as exc:
                        for create in group.creates.values():
                            create.abandon()
                        group.fail_all(exc)
                        if waiting is not None:
                            waiting.fail_placed(exc)
                            waiting.answer()
                            waiting = None
                        group.answer()
                        continue
                if waiting is not None:
                    waiting.succeed_placed()
                    waiting.answer()
                    waiting = None
                self._place_each(group, wait=False)
            except BaseException as exc:  # noqa: BLE001 (each waiter gets it)
                for index in group.deferred:
                    group.creates[index].abandon()
                group.deferred.clear()
                for pending in (waiting, group):
                    if pending is not None:
                        pending.fail_all(exc)
                        pending.answer()
                raise
            carried = [(group.batch[index], group.creates[index]) for index in group.deferred]
            if group.placed:
                waiting = group
            else:
                group.answer()
                if carried and not self._queue:
                    time.sleep(_BUSY_NAME_PAUSE)  # another process holds their locks

    async def get(self, collection: str, uid: str) -> Document:
        # A single small read is faster inline than a thread hop.
        return self._get_sync(collection, uid)

    async def get_by_name(self, collection: str, name: str) -> Document:
        return self._get_by_name_sync(collection, name)

    async def list(
        self,
        collection: str,
        *,
        selector: Selector | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Document]:
        return await self._read(self._list_sync, collection, selector, limit, after)

    async def update(
        self,
        collection: str,
        doc: Document,
        expected_version: str,
        snapshot: Document | None = None,
        *,
        unique: UniqueKeys | None = None,
    ) -> Document:
        stored = await self._run(self._update_sync, collection, doc, expected_version,
                                 snapshot, unique)
        await self._in_log_order(collection, stored)
        return stored

    async def check_unique(self, collection: str, uid: str, unique: UniqueKeys) -> None:
        check_collection(collection)
        await self._read(self._check_unique_sync, collection, uid, dict(unique))

    def _check_unique_sync(self, collection: str, uid: str, unique: UniqueKeys) -> None:
        directory = self._collection_dir(collection)
        for constraint, key in sorted(unique.items()):
            if key is None:
                continue
            holder = held_by(directory, constraint, key,
                             lambda held: self._stored(collection, held))
            if holder is not None and holder != uid:
                raise AlreadyExists(collection, constraint, key, holder)

    async def prepare_unique(self, collection: str, constraints: Sequence[str]) -> None:
        await self._run(self._prepare_unique_sync, collection, tuple(constraints))

    async def prepare_fields(self, collection: str, paths: Sequence[str]) -> None:
        """Nothing to build: this backend keeps no field index (see the module docstring)."""
        check_collection(collection)

    async def delete(
        self, collection: str, uid: str, expected_version: str | None = None
    ) -> Document:
        removed = await self._run(self._delete_sync, collection, uid, expected_version)
        await self._in_log_order(collection, removed)
        return removed

    async def list_versions(self, collection: str, uid: str) -> builtins.list[Document]:
        return await self._read(self._list_versions_sync, collection, uid)

    async def get_version(self, collection: str, uid: str, version_id: str) -> Document:
        return self._get_version_sync(collection, uid, version_id)

    async def delete_version(self, collection: str, uid: str, version_id: str) -> None:
        await self._run(self._delete_version_sync, collection, uid, version_id)

    # -- the change log (see _changes) -----------------------------------------------

    async def _in_log_order(self, collection: str, stored: Document) -> None:
        """Return once the log holds every revision up to `stored`'s (the write just
        made): only then is a write answered. Revisions are taken before the slow part of
        a write, so a lower-numbered writer (a create waiting for its group's sync) may
        still be placing its document; answered before it, a client could miss it in a
        read sent after this answer (a by-name 404 for a create the log puts earlier).
        A live writer stuck past the change wait (a frozen process sharing the data dir)
        is logged and no longer waited for."""
        revision = int(stored["metadata"]["resourceVersion"])
        directory = self._log_dir(collection)
        if not await self._prefix_reaches(directory, revision, self._changes.wait):
            log.warning("%s revision %s answered while an earlier writer of the "
                        "collection is still at work after %g s (revision %s)",
                        collection, revision, self._changes.wait,
                        self._changes.latest(directory) + 1)

    async def _prefix_reaches(self, directory: Path, revision: int,
                              patience: float | None = None) -> bool:
        """Wait until every revision up to `revision` is readable (writers in flight done,
        dead writers' holes settled on the way); False if `patience` seconds pass first.
        Probed inline: one stat when nothing changed, cheaper than a thread hop."""
        loop = asyncio.get_running_loop()
        deadline = None if patience is None else loop.time() + patience
        pause = _CHANGE_FIRST_PAUSE
        while self._changes.latest(directory) < revision:
            if deadline is not None and loop.time() > deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, _CHANGE_POLL_SECONDS)
        return True

    def _log_dir(self, collection: str) -> Path:
        """The collection's directory for the log's inline probes, looked up once: they
        run before every cached read and after every write."""
        directory = self._latest_dirs.get(collection)
        if directory is None:
            directory = self._latest_dirs[collection] = self._ready_dir(collection)
        return directory

    async def latest(self, collection: str) -> int:
        directory = self._log_dir(collection)
        prefix, target = self._changes.prefix_and_counter(directory)
        if prefix < target:  # writers in flight took numbers below a completed write's
            await self._prefix_reaches(directory, target)
            prefix = self._changes.latest(directory)
        return prefix

    async def changes(
        self, collection: str, after: int, limit: int = 1000
    ) -> builtins.list[StoredChange]:
        directory = self._ready_dir(collection)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._changes.wait + 0.5
        while True:
            # Whether anyone is in flight is decided before reading: `latest` may give up on
            # a dead writer's hole (and mark it skipped) just now, and the read must then go
            # past it rather than answer "nothing" with the next change readable.
            # Skip markers (failed writes) are readable: past them, nobody is in flight.
            settled = read_counter(directory) <= max(after, self._changes.latest(directory))
            found = await self._read(self._changes.changes, directory, collection, after,
                                     limit)
            # Nothing readable yet but a writer has taken the next number: it is in
            # flight, wait for it (bounded: a dead writer's hole is skipped after `wait`).
            if found or settled or limit <= 0 or loop.time() > deadline:
                return found
            await asyncio.sleep(_CHANGE_POLL_SECONDS)

    async def horizon(self, collection: str) -> int:
        return self._changes.horizon(self._ready_dir(collection))

    async def compact(self, collection: str, keep: int) -> None:
        await self._run(self._changes.compact, self._ready_dir(collection), keep)

    async def close(self) -> None:
        self._creator.shutdown(wait=True)
        if self._batch_pool is not None:
            self._batch_pool.shutdown(wait=True)
        self._executor.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self._changes.writers.close()  # (after the writers: closing drops their locks)

    # -- export and import (see _bulk) ---------------------------------------------------

    async def export_snapshot(self, collections: Sequence[str], writer: SnapshotWriter
                              ) -> None:
        """Every document of `collections`, to `writer`, each collection as of one
        revision (a cut through the change log, see `_bulk`)."""
        await bulk.export_snapshot(self, collections, writer)

    async def write_batch(self, collection: str, items: Sequence[BulkItem], *,
                          mode: BatchMode, remove: Sequence[str] = (),
                          outbox: Outbox | None = None) -> builtins.list[Document]:
        """`items` written and `remove` deleted, many at once, each whole or not at all
        (files have no outbox: `outbox` is ignored, as by `create`)."""
        written = await bulk.write_batch(self, collection, items, mode, remove)
        if written:
            await self._in_log_order(collection, max(
                written, key=lambda doc: int(doc["metadata"]["resourceVersion"])))
        elif remove:
            await self.latest(collection)  # (the removals' revisions, whatever they were)
        return written

    async def get_many(self, collection: str, uids: Sequence[str]
                       ) -> builtins.dict[str, Document]:
        found = {}
        for uid in uids:
            try:
                found[uid] = self._get_sync(collection, uid)
            except NotFound:
                continue
        return found

    # -- writes --------------------------------------------------------------------------

    def _create_sync(
        self, collection: str, doc: Document, snapshot: Document | None = None,
        unique: UniqueKeys | None = None,
    ) -> Document:
        """One create, in the phases of `_create_many_sync`: its two syncs are shared
        with whichever writers wait for one at the same time (group commit)."""
        return self._create_many_sync(collection, [(doc, snapshot, unique)])[0]

    def _create_many_sync(
        self, collection: str,
        items: Sequence[tuple[Document, Document | None, UniqueKeys | None]],
    ) -> builtins.list[Document]:
        """Creates in three phases, each over every item before the next begins:

        1. prepare: a revision each, its change and its document written to temp files
           (unsynced when the group sync covers file data);
        2. sync 1 (shared): both temp files of every item are durable before any of them
           moves, as a per-file fsync made them before;
        3. place: under each name's lock, the name link, the document linked into place,
           its change renamed into the log; then sync 2 (shared): those entries are
           durable. Only then does this return, so only then is a create acknowledged.

        Crash safety is that of a single write (see `_changes`), the order being: temp
        files (document, prepared change) -> sync 1 -> name link -> document linked ->
        change renamed into the log -> sync 2 -> acknowledged. A process killed at any
        point leaves each member either
        - absent: killed before its document's link; its revision is a hole whose writer
          lock the kernel dropped, and the first reader (or the next start) finds its
          prepared change, sees the document never took effect and writes a skip marker;
          its stale name link is replaced by the next creator of that name and its temp
          file removed by a later start;
        - in place without its change (killed between link and rename): the same reader
          finds the document at that revision and links the prepared change into the log;
        - in place and logged, acknowledged or not (a lost answer, as with any database).
        A change can never be in the log without its document: it moves after it, and
        journaling filesystems commit the two in that order. After an OS crash, sync 1
        guarantees that no document or change is in place without its data and its
        prepared change, and sync 2 that every acknowledged create survives. A batch
        refused midway (a name or uid taken) removes what it placed."""
        check_collection(collection)
        for doc, _, _ in items:
            check_new(doc)
        self._ensure_collection(collection)
        directory = self._collection_dir(collection)
        pending: builtins.list[_Create] = []
        placed: builtins.list[_Create] = []
        batch: Path | None = None  # the big batch's prepared changes
        try:
            if len(items) < _PARALLEL_FROM:
                for doc, _, _ in items:
                    pending.append(self._prepare_create(directory, doc))
            else:
                batch = self._prepare_in_parallel(directory, [doc for doc, _, _ in items],
                                                  pending)
            if self._group.covers_files:
                self._group.sync()  # sync 1: every temp file before any rename
            def place(entry: tuple[_Create, tuple[Document, Document | None,
                                                  UniqueKeys | None]],
                      held: int | None = None) -> None:
                create, (_, snapshot, unique) = entry
                self._place_create(collection, create, snapshot, unique, held=held)
                placed.append(create)

            def place_group(group: builtins.list[tuple[_Create, tuple[
                    Document, Document | None, UniqueKeys | None]]]) -> None:
                # A thread's share holds its stripes' name locks throughout: one lock
                # round trip a stripe, not one a document (open, flock, close).
                with self._stripe_locks(collection, "n",
                                        {_stripe(create.name) for create, _ in group}) as fds:
                    for entry in group:
                        place(entry, fds[_stripe(entry[0].name)])

            work = list(zip(pending, items, strict=True))
            if len(work) >= _PARALLEL_FROM:
                # Each thread its own stripes (two names of a stripe never placed at once)
                groups: builtins.list[builtins.list[Any]] = [[] for _ in range(_BATCH_THREADS)]
                for entry in work:
                    groups[_stripe(entry[0].name) % _BATCH_THREADS].append(entry)
                self._in_parallel([g for g in groups if g], place_group)
            else:
                for entry in work:
                    place(entry)
        except BaseException:
            done = {id(create) for create in placed}
            for create in pending:
                if id(create) not in done:
                    create.abandon()
            for create in placed:  # a batch refused midway: none of it stays
                self._finish_create(create)
            if placed:
                self._group.sync((directory, directory / ".changes"))
                for create in placed:
                    _remove(self, collection, create.uid)
            if batch is not None:
                self._changes.drop_batch(batch)
            raise
        for create in placed:
            self._finish_create(create)
        if batch is not None:  # every change is linked: the prepared name can go
            self._changes.drop_batch(batch)
        # sync 2: the links and renames above (journaling filesystems commit the log's
        # rename with the document's; the fallback fsyncs both directories)
        self._group.sync((directory, directory / ".changes"))
        return [create.write.stored for create in pending]

    def _prepare_in_parallel(self, directory: Path, docs: Sequence[Document],
                             pending: builtins.list[_Create]) -> Path:
        """Phase 1 of a big batch: revisions taken in order here, the documents' temp
        files written on several threads (a file's creation waits on the filesystem, and
        several such waits overlap), their changes in one batch file, whose path this
        returns. `pending` gets every create, prepared or not, so the caller can abandon
        them all."""
        sync = not self._group.covers_files
        revisions = self._changes.allocate_many(directory, len(docs))
        for doc, revision in zip(docs, revisions, strict=True):
            meta = doc["metadata"]
            write = ChangeWrite(self._changes, directory, "0", "ADDED", doc, sync,
                                prepare=False, revision=revision)
            pending.append(_Create(write, None, meta["uid"], meta["name"], directory))

        def prepare(create: _Create) -> None:
            create.write.stage()
            create.tmp = write_temp(directory, f"{create.uid}.json", create.write.encoded,
                                    sync)

        self._in_parallel(pending, prepare)
        # Their changes in one batch file, each published as a link to it: a new inode
        # per document is the dear part of the write (see `_changes`).
        return self._changes.prepare_batch(directory, [create.write for create in pending],
                                           sync)

    def _in_parallel(self, work: Sequence[T], func: Callable[[T], object]) -> None:
        """`func` of every item of `work`, in contiguous chunks on the batch threads;
        raises the first failure once every chunk has ended."""
        if not work:
            return
        if self._batch_pool is None:
            self._batch_pool = ThreadPoolExecutor(_BATCH_THREADS,
                                                  thread_name_prefix="fabrica-file-batch")
        size = -(-len(work) // _BATCH_THREADS)

        def chunk(part: Sequence[T]) -> None:
            for item in part:
                func(item)

        futures = [self._batch_pool.submit(chunk, work[at:at + size])
                   for at in range(0, len(work), size)]
        errors = [f.exception() for f in futures]
        failed = next((e for e in errors if e is not None), None)
        if failed is not None:
            raise failed

    def _create_each_sync(
        self, items: Sequence[tuple[str, Document, Document | None, UniqueKeys | None]],
    ) -> builtins.list[Document | BaseException]:
        """Independent creates (of any collections) in the phases of `_create_many_sync`,
        their syncs shared; each succeeds or fails on its own: a result or an error each.
        (The create thread runs the same phases, pipelined: `_drain_creates`.)"""
        group = _Group([(*item, None, None) for item in items])
        self._prepare_each(group)
        try:
            if group.creates and self._group.covers_files:
                self._group.sync()  # sync 1
            self._place_each(group)
            if group.placed:
                self._group.sync(tuple(group.dirs))  # sync 2: only now are they answered
        except OSError as exc:
            for index, create in group.creates.items():
                if index not in group.placed:
                    create.abandon()
            group.fail_all(exc)
            return group.results
        group.succeed_placed()
        return group.results

    def _prepare_each(self, group: _Group) -> None:
        """Phase 1 of each create of `group`: revision, change and document temp files;
        a big group writes its files on the batch threads (revisions still in order)."""
        valid: builtins.list[tuple[int, Path, Document]] = []
        for index, (collection, doc, _, _, _, _) in enumerate(group.batch):
            try:
                check_collection(collection)
                check_new(doc)
                self._ensure_collection(collection)
                valid.append((index, self._collection_dir(collection), doc))
            except Exception as exc:  # noqa: BLE001 (this create's answer)
                group.results[index] = exc
        if len(valid) < _PARALLEL_GROUP:
            for index, directory, doc in valid:
                try:
                    group.creates[index] = self._prepare_create(directory, doc)
                except Exception as exc:  # noqa: BLE001 (this create's answer)
                    group.results[index] = exc
            return
        sync = not self._group.covers_files
        numbered: builtins.list[tuple[int, _Create]] = []
        for index, directory, doc in valid:
            meta = doc["metadata"]
            try:
                write = ChangeWrite(self._changes, directory, "0", "ADDED", doc, sync,
                                    prepare=False)
            except Exception as exc:  # noqa: BLE001 (this create's answer)
                group.results[index] = exc
                continue
            numbered.append((index, _Create(write, None, meta["uid"], meta["name"],
                                            directory)))
        failed: dict[int, Exception] = {}

        def prepare(entry: tuple[int, _Create]) -> None:
            index, create = entry
            try:
                create.write.prepare()
                create.tmp = write_temp(create.directory, f"{create.uid}.json",
                                        create.write.encoded, sync)
            except Exception as exc:  # noqa: BLE001 (this create's answer)
                create.abandon()
                failed[index] = exc

        self._in_parallel(numbered, prepare)
        for index, create in numbered:
            if index in failed:
                group.results[index] = failed[index]
            else:
                group.creates[index] = create

    def _place_each(self, group: _Group, wait: bool = True) -> None:
        """Phase 3 of each prepared create of `group`, its change published; a failure
        is that create's answer alone. A big group places on the batch threads. Without
        `wait`, a create whose name lock is held elsewhere goes to `group.deferred`."""
        def place(entry: tuple[int, _Create]) -> None:
            index, create = entry
            collection, _, snapshot, unique, _, _ = group.batch[index]
            try:
                self._place_create(collection, create, snapshot, unique, wait)
            except _NameBusy:
                group.deferred.append(index)
                return
            except Exception as exc:  # noqa: BLE001 (this create's answer)
                create.abandon()
                group.results[index] = exc
                return
            self._finish_create(create)
            group.placed.append(index)
            group.dirs.update((create.directory, create.directory / ".changes"))

        work = list(group.creates.items())
        if len(work) >= _PARALLEL_GROUP:
            self._in_parallel(work, place)
        else:
            for entry in work:
                place(entry)

    def _prepare_create(self, directory: Path, doc: Document) -> _Create:
        meta = doc["metadata"]
        uid, name = meta["uid"], meta["name"]
        sync = not self._group.covers_files
        write = ChangeWrite(self._changes, directory, "0", "ADDED", doc, sync)
        try:
            tmp = write_temp(directory, f"{uid}.json", write.encoded, sync)
        except BaseException:
            write.abandon()
            raise
        return _Create(write, tmp, uid, name, directory)

    def _place_create(self, collection: str, create: _Create, snapshot: Document | None,
                      unique: UniqueKeys | None, wait: bool = True, held: int | None = None
                      ) -> None:
        """Phase 3 of one create (see `_create_many_sync`); its change is published by
        `_finish_create`. On failure its name link goes again and its revision is left to
        the caller's `abandon`. Without `wait`, `_NameBusy` when its name's lock is held
        elsewhere (nothing done: it can be placed later). `held`: the name's stripe lock,
        held by the caller (its descriptor), so not taken again here."""
        write, uid, name = create.write, create.uid, create.name
        directory = create.directory
        assert create.tmp is not None  # (prepared: `_prepare_create`, `_prepare_in_parallel`)
        link = directory / f"@{name}"
        named = False
        try:
            with nullcontext(held) if held is not None else \
                    self._lock(collection, "n", name, wait) as lock:
                fresh = self._claim_name(collection, link, uid, name, create.tmp)
                named = True
                if not fresh or _released(lock) > write.revision:
                    # The name was let go by a delete numbered after this create took
                    # its number (or one still at work, or one that died): number the
                    # create again, so the log never gives the name out twice at once.
                    create.tmp.unlink(missing_ok=True)
                    sync = not self._group.covers_files
                    write.renumber()
                    create.tmp = write_temp(directory, f"{uid}.json", write.encoded, sync)
                    _point_name(link, create.tmp, uid)
                    if not sync:
                        self._group.sync()  # sync 1 again, for the new temp files
                # The document's keys are held from before it appears until it is
                # there: nobody takes them for a crash's leftovers meanwhile.
                with self._holding_keys(collection, uid, unique or {}) as claimed:
                    if snapshot is not None:
                        self._write_snapshot(collection, uid, snapshot)
                    try:
                        os.link(create.tmp, directory / f"{uid}.json")  # never replaces
                    except FileExistsError:
                        raise AlreadyExists(collection, "uid", uid) from None
                    claimed.clear()  # (the document is there: they stay held)
        except BlockingIOError:
            if wait or named:  # (not the name lock's: nothing else here waits without)
                create.tmp.unlink(missing_ok=True)
                raise
            raise _NameBusy(name) from None
        except AlreadyExists:
            if named:  # the name was this create's: it goes with it
                with nullcontext() if held is not None else self._lock(collection, "n", name):
                    _unlink_if_points_to(link, uid)
            create.tmp.unlink(missing_ok=True)
            raise
        except BaseException:
            create.tmp.unlink(missing_ok=True)
            raise
        create.tmp.unlink(missing_ok=True)

    def _finish_create(self, create: _Create) -> None:
        self._changes.finish(create.write)

    def _update_sync(
        self,
        collection: str,
        doc: Document,
        expected_version: str,
        snapshot: Document | None = None,
        unique: UniqueKeys | None = None,
    ) -> Document:
        uid = doc["metadata"]["uid"]
        path = self._doc_path(collection, uid, must_exist=True)
        check_update(doc)
        with self._lock(collection, "u", uid):
            current = self._current_for_update(collection, path, doc, expected_version)
            actual = current["metadata"]["resourceVersion"]
            new_keys, old_keys = _changed_keys(unique or {}, current)
            directory = path.parent
            grouped = self._group.covers_files
            with self._holding_keys(collection, uid, new_keys, old_keys) as claimed, \
                    self._changes.writing(directory, actual, "MODIFIED", doc,
                                          sync=not grouped) as write:
                if snapshot is not None:
                    self._write_snapshot(collection, uid, snapshot)
                # As a create (`_create_many_sync`): both temp files durable before the
                # rename (a shared sync), the rename and the change durable before return.
                tmp = write_temp(directory, path.name, write.encoded, not grouped)
                try:
                    if grouped:
                        self._group.sync()
                    replaced = os.stat(path).st_ino
                    os.replace(tmp, path)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
                write.publish()
                self._repoint_name(doc["metadata"]["name"], path, uid, replaced)
                self._group.sync((directory, directory / ".changes"))
                claimed.clear()  # written: the new keys stay held, the old ones go
                for constraint, old in old_keys.items():
                    if old is not None:
                        release(directory, constraint, old, uid)
        return write.stored

    def _current_for_update(self, collection: str, path: Path, doc: Document,
                            expected_version: str) -> Document:
        """The stored state `doc` replaces (its uid's lock held): a `Conflict` unless it
        is at `expected_version`, `Invalid` if `doc` renames it; a hole before it settled."""
        uid = doc["metadata"]["uid"]
        current = self._read_or_404(collection, path, uid)
        actual = current["metadata"]["resourceVersion"]
        if actual != expected_version:
            raise Conflict(collection, uid, expected_version, actual)
        if doc["metadata"]["name"] != current["metadata"]["name"]:
            raise Invalid("metadata.name is immutable")
        self._settle_before_write(path.parent, actual)
        return current

    def _update_many_sync(self, collection: str, docs: Sequence[Document]
                          ) -> builtins.list[Document | BaseException]:
        """Updates of distinct resources (no unique keys) in the phases of
        `_create_many_sync`: every uid's lock taken at once (each stripe once, in order),
        then every document read, checked, numbered and its temp file written, their
        changes in one batch file (see `_changes`); one shared sync; every rename, name
        and change link; one shared sync. Each write is what `_update_sync` makes it, its
        crash safety too: only the syncs and the change file are shared (714 status writes
        one at a time were some 45 rounds of two syncs). Each succeeds or fails on its own
        (files have no transaction): a result or an error each."""
        results: builtins.list[Document | BaseException] = list(docs)  # (all replaced)
        uids = [doc["metadata"]["uid"] for doc in docs]
        directory = self._collection_dir(collection)
        writes: dict[int, tuple[ChangeWrite, Path, Path]] = {}  # index -> write, tmp, path

        def start(index: int) -> None:
            doc = docs[index]
            try:
                path = self._doc_path(collection, doc["metadata"]["uid"], must_exist=True)
                check_update(doc)
                current = self._current_for_update(collection, path, doc,
                                                   doc["metadata"]["resourceVersion"])
            except Exception as exc:  # noqa: BLE001 (this update's answer)
                results[index] = exc
                return
            try:
                write = ChangeWrite(self._changes, directory,
                                    current["metadata"]["resourceVersion"], "MODIFIED", doc,
                                    False, prepare=False)
            except Exception as exc:  # noqa: BLE001
                results[index] = exc
                return
            try:
                write.stage()
                tmp = write_temp(directory, path.name, write.encoded, False)
            except Exception as exc:  # noqa: BLE001
                write.abandon()
                results[index] = exc
                return
            writes[index] = (write, tmp, path)

        def place(index: int) -> None:
            write, tmp, path = writes[index]
            try:
                replaced = os.stat(path).st_ino
                os.replace(tmp, path)
            except Exception as exc:  # noqa: BLE001 (not written: no change)
                tmp.unlink(missing_ok=True)
                write.abandon()
                del writes[index]
                results[index] = exc
                return
            write.publish()
            self._repoint_name(write.stored["metadata"]["name"], path,
                               write.stored["metadata"]["uid"], replaced)

        # Each phase on the batch threads when big (a file's creation waits on the
        # filesystem, and such waits overlap), as `_create_many_sync`.
        def each(func: Callable[[int], None], indexes: Sequence[int]) -> None:
            if len(indexes) >= _PARALLEL_FROM:
                self._in_parallel(indexes, func)
            else:
                for index in indexes:
                    func(index)

        batch: Path | None = None
        with self._locks(collection, "u", [u for u in uids if is_uid(u)]):
            try:
                each(start, range(len(docs)))
                ordered = sorted(writes)
                if ordered:
                    batch = self._changes.prepare_batch(
                        directory, [writes[i][0] for i in ordered], not self._group.covers_files)
                self._group.sync()  # sync 1: every temp file before any rename
                each(place, ordered)
                if batch is not None:  # every change is linked: its name can go
                    self._changes.drop_batch(batch)
                    batch = None
                self._group.sync((directory, directory / ".changes"))  # sync 2: the renames
            except BaseException:  # a sync failed, or the batch file: the call fails
                for index in sorted(writes):
                    write, tmp, _ = writes.pop(index)
                    tmp.unlink(missing_ok=True)
                    write.abandon()  # (a skip marker unless its change is in the log)
                if batch is not None:
                    self._changes.drop_batch(batch)
                raise
            finally:
                for index in sorted(writes):
                    write = writes[index][0]
                    results[index] = write.stored
                    self._changes.writers.release(directory, write.revision)
                    self._changes.published(directory, write.revision)
        return results

    def _delete_sync(
        self, collection: str, uid: str, expected_version: str | None = None
    ) -> Document:
        path = self._doc_path(collection, uid, must_exist=True)
        with self._lock(collection, "u", uid):
            current = self._read_or_404(collection, path, uid)
            actual = current["metadata"]["resourceVersion"]
            if expected_version is not None and actual != expected_version:
                raise Conflict(collection, uid, expected_version, actual)
            self._settle_before_write(path.parent, actual)
            # a delete takes a version too
            directory = path.parent
            grouped = self._group.covers_files
            with self._changes.writing(directory, actual, "DELETED", current,
                                       sync=not grouped) as write:
                if grouped:
                    self._group.sync()  # its prepared change durable before the unlink
                path.unlink()
                name = current["metadata"]["name"]
                with self._lock(collection, "n", name) as lock:
                    _note_release(lock, write.revision)
                    _unlink_if_points_to(self._name_link(collection, name), uid)
                write.publish()
                self._group.sync((directory, directory / ".changes"))
            self._release_keys(collection, current)
            shutil.rmtree(self._versions_dir(collection, uid), ignore_errors=True)
        return write.stored

    def _delete_version_sync(self, collection: str, uid: str, version_id: str) -> None:
        path = self._version_path(collection, uid, version_id)
        with self._lock(collection, "u", uid):
            try:
                path.unlink()
            except FileNotFoundError:
                raise NotFound(collection, f"{uid}/versions/{version_id}") from None
            fsync_dir(path.parent)

    # -- reads ---------------------------------------------------------------------------

    def _get_sync(self, collection: str, uid: str) -> Document:
        path = self._doc_path(collection, uid, must_exist=True)
        return self._read_or_404(collection, path, uid)

    def _get_by_name_sync(self, collection: str, name: str) -> Document:
        self._ensure_collection(collection)
        found = self._lookup_name(collection, name)
        if found is None:
            raise NotFound(collection, name)
        return found

    def _list_sync(
        self,
        collection: str,
        selector: Selector | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> builtins.list[Document]:
        name = _selected_name(selector)
        if name is not None:  # one link, whatever else the selector asks
            if not self._collection_dir(collection).is_dir():
                return []
            self._ensure_collection(collection)  # documents copied in by hand get links
            doc = self._lookup_name(collection, name)
            return [doc] if doc is not None and _selected(doc, selector) and (
                after is None or name > after) and limit != 0 else []
        if limit is not None or after is not None:
            return self._page_sync(collection, selector, limit, after)
        docs = [doc for doc in self._read_all(collection) if _selected(doc, selector)]
        docs.sort(key=lambda d: d["metadata"]["name"])
        return docs

    def _page_sync(
        self, collection: str, selector: Selector | None, limit: int | None, after: str | None
    ) -> builtins.list[Document]:
        """A page reads only its own documents (and those the selector refuses): its names
        come, in order, from the ``@NAME`` links, which cost a directory listing and no
        read, so a walk through every page reads the collection once, not once a page."""
        directory = self._collection_dir(collection)
        if not directory.is_dir():
            return []
        self._ensure_collection(collection)  # documents copied in by hand get their links
        names = self._sorted_names(collection, directory)
        start = 0 if after is None else bisect.bisect_right(names, after)
        links = f"{directory}{os.sep}@"  # (a str: a Path per name costs more than its read)
        page: builtins.list[Document] = []
        for name in islice(names, start, None):
            if limit is not None and len(page) >= limit:
                break
            doc = _read_named(links + name, name)  # None: a link a crash left behind
            if doc is not None and _selected(doc, selector):
                page.append(doc)
        return page

    def _sorted_names(self, collection: str, directory: Path) -> builtins.list[str]:
        """The names of the collection's links, sorted. Listing a big directory costs a good
        part of a page, so one listing serves a whole walk while the directory's mtime stays
        what it was: every write adds, renames or removes an entry of it. The listing is
        kept only if the directory had stood unchanged for `_SETTLED_NS` before it began, so
        that a later write cannot leave the same mtime behind, however coarse the clock."""
        began = time.time_ns()
        mtime = os.stat(directory).st_mtime_ns
        cached = self._names.get(collection)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        names = sorted(entry[1:] for entry in os.listdir(directory) if entry.startswith("@"))
        if began - mtime > _SETTLED_NS:
            self._names[collection] = (mtime, names)
        return names

    def _list_versions_sync(self, collection: str, uid: str) -> builtins.list[Document]:
        self._get_sync(collection, uid)
        directory = self._versions_dir(collection, uid)
        if not directory.is_dir():
            return []
        ids = [n[:-5] for n in os.listdir(directory)
               if n.endswith(".json") and _VERSION_ID.match(n[:-5])]
        ids.sort(key=lambda v: int(v[1:]))
        return [self._get_version_sync(collection, uid, v) for v in ids]

    def _get_version_sync(self, collection: str, uid: str, version_id: str) -> Document:
        path = self._version_path(collection, uid, version_id)
        try:
            return _decode(path.read_bytes())
        except FileNotFoundError:
            raise NotFound(collection, f"{uid}/versions/{version_id}") from None

    # -- helpers -------------------------------------------------------------------------

    def _read_all(self, collection: str) -> builtins.list[Document]:
        directory = self._collection_dir(collection)
        if not directory.is_dir():
            return []
        docs = []
        for entry in os.scandir(directory):
            if _DOC_FILE.match(entry.name):
                try:
                    docs.append(_decode(read_bytes(entry.path)))
                except FileNotFoundError:
                    continue  # deleted between scandir and open
        return docs

    def _claim_name(self, collection: str, link: Path, uid: str, name: str, source: Path
                    ) -> bool:
        """Point ``@name`` at `source`, the file that becomes `uid`'s document; the
        caller holds the name's lock. False when it replaced a link to a document gone (a
        delete at work, or one that died)."""
        try:
            _link_name(source, link, uid)
            return True
        except FileExistsError:
            pass
        if self._lookup_name(collection, name) is not None:
            raise AlreadyExists(collection, "name", name)
        _point_name(link, source, uid)  # a link left by a crash: replace it atomically
        return False

    @staticmethod
    def _repoint_name(name: str, path: Path, uid: str, replaced: int) -> None:
        """After an update replaced `uid`'s document (inode `replaced`) by `path`, its
        uid's lock held: ``@name`` at the new file. No name lock: while the document lives,
        its name is its own (a create of that name finds it live and is refused), and the
        link is replaced atomically. A name that is not this document's is left alone."""
        link = path.parent / f"@{name}"
        try:
            try:
                found = os.lstat(link)
            except FileNotFoundError:
                found = None
            if found is not None and found.st_ino != replaced and _holder(link) != uid:
                return
            _point_name(link, path, uid)
        except OSError as exc:  # the write stands: readers cope with a name lagging behind
            log.warning("name %s of %s not moved to its new document: %s", name, uid, exc)

    def _lookup_name(self, collection: str, name: str) -> Document | None:
        """The live document called `name`, ignoring stale links."""
        if not is_dns1123_subdomain(name):
            return None
        return _read_named(str(self._name_link(collection, name)), name)

    def _collection_dir(self, collection: str) -> Path:
        check_collection(collection)
        return self.data_dir / collection

    def _doc_path(self, collection: str, uid: str, must_exist: bool = False) -> Path:
        if not is_uid(uid):
            if must_exist:
                raise NotFound(collection, uid)
            raise Invalid(f"invalid uid {uid!r}")
        return self._collection_dir(collection) / f"{uid}.json"

    def _name_link(self, collection: str, name: str) -> Path:
        if not is_dns1123_subdomain(name):
            raise Invalid(f"invalid name {name!r}")
        return self._collection_dir(collection) / f"@{name}"

    def _versions_dir(self, collection: str, uid: str) -> Path:
        if not is_uid(uid):
            raise NotFound(collection, uid)
        return self._collection_dir(collection) / ".versions" / uid

    def _version_path(self, collection: str, uid: str, version_id: str) -> Path:
        if not _VERSION_ID.match(version_id):
            raise NotFound(collection, f"{uid}/versions/{version_id}")
        return self._versions_dir(collection, uid) / f"{version_id}.json"

    def _write_snapshot(self, collection: str, uid: str, snapshot: Document) -> None:
        path = self._version_path(collection, uid, snapshot["versionId"])
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, _encode(snapshot))

    @contextmanager
    def _holding_keys(self, collection: str, uid: str, keys: UniqueKeys,
                      releasing: UniqueKeys | None = None) -> Iterator[dict[str, str]]:
        """Claim `keys` for `uid` under their locks (and those of `releasing`, which the
        caller lets go inside the block); yields the claims this call made, which are
        given back if the block fails before clearing them."""
        held = {c: k for c, k in keys.items() if k is not None}
        locked = [*(f"{c}\0{k}" for c, k in held.items()),
                  *(f"{c}\0{k}" for c, k in (releasing or {}).items() if k is not None)]
        if not locked:
            yield {}
            return
        directory = self._collection_dir(collection)
        with self._locks(collection, "k", locked):
            claimed: dict[str, str] = {}
            try:
                for constraint, key in sorted(held.items()):
                    if claim(directory, collection, constraint, key, uid,
                             lambda holder: self._stored(collection, holder)):
                        claimed[constraint] = key
                yield claimed
            finally:
                for constraint, key in claimed.items():
                    release(directory, constraint, key, uid)

    def _release_keys(self, collection: str, removed: Document) -> None:
        """Let every key of a deleted document go (stale already: this is tidying)."""
        directory = self._collection_dir(collection)
        uid = removed["metadata"]["uid"]
        keys = {c: document_key(removed, c) for c in constraints_on_disk(directory)}
        held = {c: k for c, k in keys.items() if k is not None}
        if held:
            with self._locks(collection, "k", [f"{c}\0{k}" for c, k in held.items()]):
                for constraint, key in held.items():
                    release(directory, constraint, key, uid)

    def _stored(self, collection: str, uid: str) -> Document | None:
        """The stored document `uid` of `collection`, or None when there is none."""
        try:
            return self._get_sync(collection, uid)
        except NotFound:
            return None

    def _prepare_unique_sync(self, collection: str, constraints: tuple[str, ...]) -> None:
        self._ensure_collection(collection)
        directory = self._collection_dir(collection)
        with flock(directory / ".locks" / "index"):
            build(directory, collection, constraints, lambda: self._read_all(collection))

    @contextmanager
    def _locks(self, collection: str, space: str, keys: Iterable[str]) -> Iterator[None]:
        """The locks of every stripe of `keys`, in stripe order (a stripe once: flock
        locks per open file, so a second lock of one stripe would wait for the first)."""
        self._ensure_collection(collection)
        stripes = sorted({_stripe(key) for key in keys})
        locks = self._collection_dir(collection) / ".locks"
        with ExitStack() as stack:
            for stripe in stripes:
                stack.enter_context(flock(locks / f"{space}{stripe:02d}"))
            yield

    def _read_or_404(self, collection: str, path: Path, uid: str) -> Document:
        try:
            return _decode(read_bytes(path))
        except FileNotFoundError:
            raise NotFound(collection, uid) from None

    def _settle_before_write(self, directory: Path, actual: str) -> None:
        if actual.isdigit():
            self._changes.settle_before_write(directory, int(actual))

    def _ready_dir(self, collection: str) -> Path:
        self._ensure_collection(collection)
        return self._collection_dir(collection)

    @contextmanager
    def _stripe_locks(self, collection: str, space: str, stripes: Iterable[int]
                      ) -> Iterator[dict[int, int]]:
        """The locks of `stripes`, taken in order (as `_locks`), yielding each one's fd."""
        locks = self._collection_dir(collection) / ".locks"
        with ExitStack() as stack:
            yield {stripe: stack.enter_context(flock(locks / f"{space}{stripe:02d}"))
                   for stripe in sorted(stripes)}

    @contextmanager
    def _lock(self, collection: str, space: str, key: str, wait: bool = True
              ) -> Iterator[int]:
        """The lock of `key`'s stripe (uids: "u", names: "n"), yielding its file's fd;
        without `wait`, BlockingIOError when it is held elsewhere."""
        self._ensure_collection(collection)
        stripe = _stripe(key)
        with flock(self._collection_dir(collection) / ".locks" / f"{space}{stripe:02d}",
                   wait) as fd:
            yield fd

    def _ensure_collection(self, collection: str) -> None:
        if collection in self._ready:
            return
        directory = self._collection_dir(collection)
        (directory / ".locks").mkdir(parents=True, exist_ok=True)
        with flock(directory / ".locks" / "index"):
            if not (directory / _INDEX_MARKER).exists():
                self._link_unindexed(directory)
                atomic_write(directory / _INDEX_MARKER, b"")
            self._changes.initialise(directory, lambda: self._read_all(collection))
            _remove_stale_temp_files(directory)
            horizon = self._changes.horizon(directory)
            _remove_stale_temp_files(  # a dead writer's change waits for its hole's reader
                directory / ".changes", lambda name: is_prepared_change(name)
                and prepared_revisions(name)[-1] > horizon)
        self._ready.add(collection)

    def _link_unindexed(self, directory: Path) -> None:
        """Documents copied in by hand: give each a name link."""
        for entry in os.scandir(directory):
            if _DOC_FILE.match(entry.name):
                meta = _decode(Path(entry.path).read_bytes())["metadata"]
                link = directory / f"@{meta['name']}"
                if is_dns1123_subdomain(meta["name"]) and not os.path.lexists(link):
                    _link_name(Path(entry.path), link, meta["uid"])
        fsync_dir(directory)


_Queued = tuple[str, Document, "Document | None", "UniqueKeys | None",
                "asyncio.Future[Document]", asyncio.AbstractEventLoop]


class _Group:
    """Creates written together (see `FileStorage._drain_creates`): what each became."""

    def __init__(self, batch: Sequence[_Queued | tuple[Any, ...]]) -> None:
        self.batch = list(batch)
        self.results: builtins.list[Any] = [RuntimeError("not written")] * len(batch)
        self.creates: dict[int, _Create] = {}  # prepared
        self.placed: builtins.list[int] = []  # in place, their changes published
        self.deferred: builtins.list[int] = []  # put off to a later group (`adopt`)
        self.dirs: set[Path] = set()  # to sync for the placed ones

    def adopt(self, carried: Sequence[tuple[Any, _Create]]) -> None:
        """Creates put off by an earlier group, prepared and synced: placed with these."""
        for entry, create in carried:
            self.creates[len(self.batch)] = create
            self.batch.append(entry)
            self.results.append(RuntimeError("not written"))

    def succeed_placed(self) -> None:
        for index in self.placed:
            self.results[index] = self.creates[index].write.stored

    def fail_placed(self, exc: BaseException) -> None:
        for index in self.placed:
            self.results[index] = exc

    def fail_all(self, exc: BaseException) -> None:
        self.results = [exc] * len(self.batch)

    def answer(self) -> None:
        """Each create's result or error, to its waiter's loop."""
        answers: dict[asyncio.AbstractEventLoop,
                      builtins.list[tuple[asyncio.Future[Document], Any]]] = {}
        deferred = set(self.deferred)  # answered by the group that adopts them
        for index, (entry, result) in enumerate(zip(self.batch, self.results, strict=True)):
            if entry[5] is not None and index not in deferred:
                answers.setdefault(entry[5], []).append((entry[4], result))
        for loop, done in answers.items():
            try:
                loop.call_soon_threadsafe(_answer, done)
            except RuntimeError:
                pass  # its loop is closed: nobody waits for these any more


def _answer(done: builtins.list[tuple[asyncio.Future[Document], Any]]) -> None:
    """On the waiters' loop: each queued create's result or error."""
    for future, result in done:
        if future.done():
            continue  # its caller gave up waiting (cancelled); the create stands
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class _NameBusy(Exception):
    """A create's name lock is held elsewhere (a create put off, not failed)."""


class _Create:
    """One create between its phases (see `FileStorage._create_many_sync`)."""

    __slots__ = ("directory", "name", "tmp", "uid", "write")

    def __init__(self, write: ChangeWrite, tmp: Path | None, uid: str, name: str,
                 directory: Path) -> None:
        self.write, self.tmp, self.uid, self.name, self.directory = (write, tmp, uid, name,
                                                                      directory)

    def abandon(self) -> None:
        """Never placed: its temp file goes, its revision gets a skip marker."""
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
        self.write.abandon()


def _remove(storage: FileStorage, collection: str, uid: str) -> None:
    try:
        storage._delete_sync(collection, uid)
    except NotFound:
        pass  # gone meanwhile: what a removal wants


def _changed_keys(unique: UniqueKeys, current: Document) -> tuple[UniqueKeys, UniqueKeys]:
    """Of an update's keys, those that change: (the new ones, the current ones)."""
    new: dict[str, str | None] = {}
    old: dict[str, str | None] = {}
    for constraint, key in unique.items():
        held = document_key(current, constraint)
        if held != key:
            new[constraint], old[constraint] = key, held
    return new, old


def _stripe(key: str) -> int:
    """The lock stripe of a uid, name or unique key."""
    return zlib.crc32(key.encode()) % _STRIPES


def _released(lock: int) -> int:
    """The newest revision of a delete that let a name of this name lock's stripe go."""
    stored = os.pread(lock, REVISION_WIDTH, 0).decode(errors="replace")
    return int(stored) if stored.isdigit() else 0


def _note_release(lock: int, revision: int) -> None:
    """Under the name lock: a delete numbered `revision` lets a name of the stripe go (no
    fsync: after an OS crash no create that read it is still at work)."""
    if revision > _released(lock):
        os.pwrite(lock, f"{revision:0{REVISION_WIDTH}d}".encode(), 0)


def _read_named(link: str, name: str) -> Document | None:
    """The live document called `name`, read through its name `link`: the link's file if
    it is still the document's ``UID.json`` (same inode; a symbolic link of an earlier
    release leads there by itself), else ``UID.json`` (the link lags behind an update);
    None when that document is gone (a link a crash or a delete at work left)."""
    try:
        data, linked = read_with_inode(link)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise
    doc = _decode(data)
    uid = doc["metadata"].get("uid")
    if doc["metadata"]["name"] != name or not isinstance(uid, str) or not is_uid(uid):
        return None
    path = f"{os.path.dirname(link)}{os.sep}{uid}.json"
    try:
        if os.stat(path).st_ino == linked:
            return doc
        doc = _decode(read_bytes(path))
    except FileNotFoundError:
        return None
    return doc if doc["metadata"]["name"] == name else None


def _link_name(source: Path, link: Path | str, uid: str) -> None:
    """A name `link` to `source` (uid's document or its temp file): a hard link, or a
    symbolic link to ``UID.json`` on a filesystem without hard links. FileExistsError
    when the name is there already."""
    try:
        os.link(source, link)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        os.symlink(f"{uid}.json", link)


def _point_name(link: Path, source: Path, uid: str) -> None:
    """`link` replaced, atomically, by a name link to `source`."""
    spare = link.parent / f".tmp-link-{secrets.token_hex(4)}"
    _link_name(source, spare, uid)
    os.replace(spare, link)


def _holder(link: Path) -> str | None:
    """The uid a name link names (None: no link, or not a document)."""
    try:
        if os.path.islink(link):
            return os.readlink(link).removesuffix(".json")
        uid = _decode(read_bytes(link))["metadata"].get("uid")
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return uid if isinstance(uid, str) else None


def _selected(doc: Document, selector: Selector | None) -> bool:
    return not selector or selector.matches(doc["metadata"].get("labels", {}),
                                            document_fields(doc))


def _selected_name(selector: Selector | None) -> str | None:
    for requirement in selector.fields if selector else ():
        if requirement.path == "metadata.name" and requirement.operator == "=":
            return requirement.value
    return None


def _encode(doc: Document) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _decode(data: bytes) -> Document:
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("stored document is not a JSON object")
    return doc


def _unlink_if_points_to(link: Path, uid: str) -> None:
    if _holder(link) == uid:
        link.unlink(missing_ok=True)


def _remove_stale_temp_files(directory: Path, keep: Callable[[str], bool] = lambda _: False
                             ) -> None:
    """Temp files a crashed writer left behind; young ones may belong to a live writer."""
    cutoff = time.time() - _STALE_TEMP_SECONDS
    for entry in os.scandir(directory):
        if not entry.name.startswith(".tmp-") or keep(entry.name):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                Path(entry.path).unlink(missing_ok=True)
        except FileNotFoundError:
            continue  # its writer finished with it meanwhile
