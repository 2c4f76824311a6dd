"""The file backend's change log: ``PLURAL/.changes/REVISION.json``, one file per change.

Revisions come from the collection's counter (``PLURAL/.revision``), one number per write,
so the log of a collection is the consecutive run of numbers from its horizon up to the
counter. A writer allocates its number, writes its change to a temp file beside its
document's and makes both durable (its own fsyncs, or the group's sync 1: `_io.GroupSync`),
puts the document in place, renames the change into place, and only then makes the
directory durable (the group's sync 2), after which the write is acknowledged: journaling
filesystems (ext4, XFS) commit metadata in order, so the document's link or rename is never
durable without the change's rename before it, nor the change's without the document's.
On a filesystem without that ordering an OS crash may lose the newest change files: holes,
skipped as below. Writers of different resources run in parallel,
so change files appear out of order: a reader walks revisions one by one from `after` and
stops at the first missing one.

A missing revision at or below the counter is a writer in flight, which `changes` and
`latest` never pass (that is what makes the log gap-free), or a writer that died between
taking its number and writing its change. The two are told apart without waiting: a
writer holds a lock on its revision (`_writers`: an open file description lock on
byte REVISION of ``PLURAL/.locks/writers``) from before the counter's lock is let go until
its change or skip marker is in place, and the kernel drops it when its process dies. A
reader that finds a hole asks whether that lock is held: held, it waits for the writer;
free, the writer is gone and its hole is settled at once. After a kill -9 with writes in
flight, the restarted process (or any other) passes every such hole at the first look.
Where the kernel cannot tell (no such locks), a hole still missing `wait` seconds after it
was first seen is taken for a dead writer's instead, as before.

Settling a dead writer's hole keeps the log equal to the documents: a writer makes its
change durable in a temp file (``.changes/.tmp-REVISION-*``) before it touches its document
(in a group of creates, every member's before any member's), so
the reader finds what the write was and whether it took effect (the document is at that
revision, or gone for a delete): then that change goes into the log, else a *skip marker*
(``{"type":"SKIP"}``); both are linked in without replacing anything, and every reader in
every process passes them from then on. Only a later write of the same resource could hide
whether the dead write took effect, so every update and delete first settles the revision
of the document it replaces. A write that fails after taking its number writes the skip
marker itself, so a lost race for a name never makes watchers wait.

`latest` is the end of the readable prefix, cached per collection and advanced by probing
the next file: one ``stat`` when nothing changed, no thread hop. The storage's `latest`
waits until that prefix reaches the counter as it was when it was called: a write that
completed before a read may have a number above a writer still in flight (numbers are
taken before the slow part), and the read must show it; writers in flight are live (dead
ones are settled at once), so the wait is that of a write's fsync.

A batch of writes (`create_many`, hundreds or thousands of documents) prepares its changes
in one file instead, ``.changes/.tmp-FIRST-LAST-batch-*``: a header line
``{"batch":[REVISION, ...]}`` and then each revision's change, one JSON line each, in the
header's order. Each change is published by a hard link ``REVISION.json`` to that file, so
the log still has one entry per revision (and every rule above holds as it is), but a
document costs one new inode, not two: creating inodes is the dearest part of a write on
ext4 (without a journal, each new one skips past every inode freed in the last minutes). A
reader that meets a batch file parses it once and takes the following revisions linked
to the same file from that parse; a change file read on its own is either shape. A
prepared batch file outlives its links' creation only after a crash, for `_settle`.

The horizon (``PLURAL/.horizon``) is the oldest `after` still answered. A data dir from
before the change log gets the largest revision it holds as its horizon, on first use
(under the collection's index lock). Compaction writes the new horizon first and then
deletes the older files, so a reader that reads files and then the horizon notices any
file it missed.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from ...resource import is_uid
from .._base import ChangeType, Document, Gone, StoredChange
from ._io import atomic_write, flock, fsync_dir, read_bytes, write_temp
from ._writers import WriterLocks

__all__ = ["ChangeWrite", "FileChangeLog", "REVISION_WIDTH", "encode", "is_prepared_change",
           "prepared_revisions", "read_counter"]

log = logging.getLogger("fabrica.storage")

REVISION_WIDTH = 20
_SKIP = "SKIP"
_SKIP_BYTES = b'{"type":"SKIP"}'
_BATCH_HEADER = b'{"batch":['
_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED"})
_GONE = "was not written and its writer is gone (a process that died mid-write)"


def read_counter(directory: Path) -> int:
    """The collection's last allocated revision (0 when none), read under a shared lock so
    an in-place rewrite is never seen half done."""
    return _read_counter_at(str(directory / ".revision"))


def _read_counter_at(path: str) -> int:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        stored = os.pread(fd, REVISION_WIDTH, 0).decode(errors="replace")
    finally:
        os.close(fd)
    return int(stored) if stored.isdigit() else 0


def _change_name(revision: int) -> str:
    return f"{revision:0{REVISION_WIDTH}d}.json"


class FileChangeLog:
    """The change logs of one data dir; `wait` bounds how long a hole may block readers."""

    def __init__(self, wait: float, history: int) -> None:
        self.wait = wait
        self.history = history
        self.writers = WriterLocks()
        self.gone_writers = 0  # holes skipped at once: their writer held no lock
        self.timed_out = 0  # holes skipped after `wait` (where no lock can tell)
        self._prefix: dict[Path, int] = {}  # directory -> every revision <= it is readable
        self._paths: dict[Path, tuple[str, str]] = {}  # directory -> ".changes/", ".revision"
        self._holes: dict[tuple[Path, int], float] = {}  # first seen missing (monotonic)
        self._last_batch: tuple[Path, dict[int, bytes]] | None = None  # (`_prepared_change`)
        self._mutex = threading.Lock()

    # -- set up --------------------------------------------------------------------------

    def initialise(self, directory: Path, documents: Callable[[], list[Document]]) -> None:
        """First use of a collection in this process, under its index lock: give a data
        dir without a log its horizon, and lift a counter a crash rolled back above every
        change file (the counter is not fsynced)."""
        changes = directory / ".changes"
        changes.mkdir(exist_ok=True)
        top = max((int(n[:-5]) for n in os.listdir(changes) if _is_change_name(n)), default=0)
        if not (directory / ".horizon").exists():
            found = [int(v) for d in documents()
                     if (v := str(d["metadata"].get("resourceVersion", ""))).isdigit()]
            horizon = max([read_counter(directory), top, *found])
            atomic_write(directory / ".horizon", str(horizon).encode())
            top = max(top, horizon)
        if top > read_counter(directory):
            _raise_counter(directory, top)

    # -- writing -------------------------------------------------------------------------

    def allocate(self, directory: Path, current: str) -> int:
        """The next revision of the collection (above `current`, the written document's
        own version, should a crash have rolled the counter back), its writer lock taken
        before the counter's lock is let go: whoever reads the counter finds it held."""
        fd = os.open(directory / ".revision", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            stored = os.pread(fd, REVISION_WIDTH, 0).decode(errors="replace")
            counter = int(stored) if stored.isdigit() else 0
            revision = max(counter, int(current) if current.isdigit() else 0) + 1
            os.pwrite(fd, f"{revision:0{REVISION_WIDTH}d}".encode(), 0)
            self.writers.hold(directory, revision)
        finally:
            os.close(fd)
        return revision

    def allocate_many(self, directory: Path, count: int) -> range:
        """`count` consecutive revisions for new documents, as `allocate` takes one (each
        writer lock taken before the counter's lock is let go), for one lock round trip
        instead of one a document."""
        fd = os.open(directory / ".revision", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            stored = os.pread(fd, REVISION_WIDTH, 0).decode(errors="replace")
            first = (int(stored) if stored.isdigit() else 0) + 1
            revisions = range(first, first + count)
            os.pwrite(fd, f"{first + count - 1:0{REVISION_WIDTH}d}".encode(), 0)
            held = 0
            try:
                for revision in revisions:
                    self.writers.hold(directory, revision)
                    held += 1
            except BaseException:
                for revision in revisions[:held]:  # (the rest: holes, skipped by readers)
                    self.writers.release(directory, revision)
                raise
        finally:
            os.close(fd)
        return revisions

    @contextmanager
    def writing(self, directory: Path, current: str, kind: ChangeType, document: Document,
                sync: bool = True) -> Iterator[ChangeWrite]:
        """Around one write: a revision and its change, prepared (fsynced unless `sync` is
        False: the caller's group sync does it before the document moves); the write puts
        its file in place and calls `ChangeWrite.publish` before its directory sync. A
        write that fails leaves a skip marker instead, so readers never wait for it."""
        write = ChangeWrite(self, directory, current, kind, document, sync)
        try:
            yield write
        except BaseException:
            write.abandon()
            raise
        write.publish()
        self.writers.release(directory, write.revision)
        self.published(directory, write.revision)

    def prepare(self, directory: Path, revision: int, kind: ChangeType, document: Document,
                encoded: bytes | None = None, sync: bool = True) -> Path:
        """The change written to a temp file (fsynced, unless the caller's group sync
        will before the document moves), for `publish` once the document is in place;
        `encoded`: the document's JSON, when the caller has it already."""
        if encoded is None:
            encoded = encode(document)
        data = b'{"type":"%s","document":%s}' % (kind.encode(), encoded)
        return write_temp(f"{directory}{os.sep}.changes", str(revision), data, sync)

    def prepare_batch(self, directory: Path, writes: builtins.list[ChangeWrite],
                      sync: bool = True) -> Path:
        """The changes of `writes` (staged: `ChangeWrite.stage`) in one prepared batch file
        (fsynced unless the caller's group sync will), each write's `publish` a hard link
        to it; the caller removes its temp name once every write is published or
        abandoned (`drop_batch`)."""
        header = b'{"batch":[%s]}' % b",".join(b"%d" % w.revision for w in writes)
        lines = [header, *(b'{"type":"%s","document":%s}' % (w.kind.encode(), w.encoded)
                           for w in writes)]
        revisions = [w.revision for w in writes]
        path = write_temp(f"{directory}{os.sep}.changes",
                          f"{min(revisions)}-{max(revisions)}-batch", b"\n".join(lines), sync)
        for write in writes:
            write.batched(path)
        return path

    @staticmethod
    def drop_batch(prepared: Path) -> None:
        """A prepared batch's temp name, once its writes are all published or abandoned
        (its links keep the file)."""
        prepared.unlink(missing_ok=True)

    def publish_link(self, directory: Path, revision: int, prepared: Path) -> None:
        """A batched change into place: a hard link to its batch file (over a skip marker
        too, as `publish`)."""
        path = f"{directory}{os.sep}.changes{os.sep}{_change_name(revision)}"
        try:
            os.link(prepared, path)
        except FileExistsError:  # a reader took this writer for dead (see `publish`)
            spare = f"{directory}{os.sep}.changes{os.sep}.tmp-link-{secrets.token_hex(4)}"
            os.link(prepared, spare)
            os.replace(spare, path)

    def publish(self, directory: Path, revision: int, prepared: Path) -> None:
        """Rename the prepared change into place (over a skip marker too: a late writer is
        still read); the caller's directory fsync that follows makes it durable."""
        path = directory / ".changes" / _change_name(revision)
        try:
            os.replace(prepared, path)
        except FileNotFoundError:  # a reader took this writer, slower than `wait`, for
            if not path.exists():  # dead, saw its write in place and logged it for it
                raise

    def finish(self, write: ChangeWrite) -> None:
        """A write's change is in place: let its revision's lock go, compact if due."""
        write.publish()
        self.writers.release(write.directory, write.revision)
        self.published(write.directory, write.revision)

    def published(self, directory: Path, revision: int) -> None:
        """After a write: compact every tenth of the history, amortised."""
        if self.history and revision % _compaction_step(self.history) == 0:
            self.compact(directory, self.history)

    def record(self, directory: Path, revision: int, kind: ChangeType, document: Document
               ) -> None:
        """Write a change in one go (a writer's change, when its document is in place)."""
        self.publish(directory, revision, self.prepare(directory, revision, kind, document))
        fsync_dir(directory / ".changes")
        self.published(directory, revision)

    def skip(self, directory: Path, revision: int) -> None:
        """Mark `revision` as no change (its write failed after taking the number)."""
        path = directory / ".changes" / _change_name(revision)
        tmp = write_temp(path.parent, f"skip-{revision}", _SKIP_BYTES)
        try:
            os.link(tmp, path)  # never over a real change
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)

    # -- reading -------------------------------------------------------------------------

    def horizon(self, directory: Path) -> int:
        try:
            return int((directory / ".horizon").read_bytes() or b"0")
        except FileNotFoundError:
            return 0

    def latest(self, directory: Path) -> int:
        """The end of the readable prefix, advanced by probing the next revisions."""
        return self.prefix_and_counter(directory)[0]

    def prefix_and_counter(self, directory: Path) -> tuple[int, int]:
        """(`latest`, the counter as read while probing): revisions between the two are
        writers in flight."""
        with self._mutex:
            prefix = self._prefix.get(directory)
        if prefix is None:
            prefix = self.horizon(directory)
        # str paths, built once: it runs before every cached read, and pathlib's `/` costs
        # more than the stat itself
        paths = self._paths.get(directory)
        if paths is None:
            paths = self._paths[directory] = (f"{directory / '.changes'}{os.sep}",
                                              str(directory / ".revision"))
        changes, revision_file = paths
        counter: int | None = None
        while True:
            if os.path.exists(f"{changes}{prefix + 1:0{REVISION_WIDTH}d}.json"):
                prefix += 1
                continue
            if counter is None:
                counter = _read_counter_at(revision_file)
            if prefix + 1 > counter:
                break
            horizon = self.horizon(directory)
            if horizon > prefix:  # compacted past us: nothing below it is readable anyway
                prefix = horizon
                continue
            if not self._abandoned(directory, prefix + 1):
                break
        with self._mutex:
            prefix = max(prefix, self._prefix.get(directory, 0))
            self._prefix[directory] = prefix
        assert counter is not None  # (the loop ends only once it has read the counter)
        return prefix, counter

    def changes(self, directory: Path, collection: str, after: int, limit: int
                ) -> builtins.list[StoredChange]:
        """Changes after `after` up to the first revision not yet readable."""
        horizon = self.horizon(directory)
        if after < horizon:
            raise Gone(collection, after, horizon)
        found: list[StoredChange] = []
        revision = after
        changes = directory / ".changes"
        counter: int | None = None
        reader = _ChangeReader()
        while len(found) < limit:
            revision += 1
            path = changes / _change_name(revision)
            try:
                change = reader.read(path, revision)
            except FileNotFoundError:
                if counter is None or revision > counter:
                    counter = read_counter(directory)
                if revision > counter or not self._abandoned(directory, revision):
                    break
                try:  # its change, had its writer just finished; else the skip marker
                    change = reader.read(path, revision)
                except FileNotFoundError:  # compacted meanwhile: the horizon says so below
                    continue
            if change is not None:
                found.append(change)
        horizon = self.horizon(directory)  # compacted while we read: we may have missed some
        if after < horizon:
            raise Gone(collection, after, horizon)
        return found

    def _abandoned(self, directory: Path, revision: int) -> bool:
        """Whether the missing `revision` will never be written: its writer holds no lock
        (it died, or finished just now), or, where locks cannot tell, it has been missing
        for longer than `wait`. Then it gets a skip marker (never over a written change)
        and the caller reads it again."""
        alive = self.writers.alive(directory, revision)
        if alive or alive is None and not self._waited_out(directory, revision):
            return False
        if os.path.exists(directory / ".changes" / _change_name(revision)):
            return True  # its writer finished between the caller's read and now
        if alive is None:
            self.timed_out += 1
            self._settle(directory, revision, f"never appeared within {self.wait:g} s: its "
                                              f"writer must have died")
        else:
            self.gone_writers += 1
            self._settle(directory, revision, _GONE)
        return True

    def settle_before_write(self, directory: Path, revision: int) -> None:
        """Before a write replaces a document at `revision` (under its uid lock): should
        that revision's change be missing and its writer gone, log it now, while the
        document still shows whether that write took effect (see `_settle`)."""
        with self._mutex:
            known = self._prefix.get(directory)
        if known is None:
            known = self.horizon(directory)
        if revision <= known or os.path.exists(directory / ".changes" /
                                                _change_name(revision)):
            return
        if self.writers.alive(directory, revision) is False:  # (a live one logs it itself)
            self.gone_writers += 1
            self._settle(directory, revision, f"{_GONE}, found by a later write")

    def _settle(self, directory: Path, revision: int, why: str) -> None:
        """A dead writer's `revision`: its prepared change (the fsynced temp file it wrote
        first) goes into the log when its write took effect, else a skip marker; neither
        over a change already there. Took effect: the document is at that revision, or
        gone for a delete. A later write of the same resource would hide that, so every
        write settles the revision of the document it replaces first
        (`settle_before_write`): judged here, the document is the dead writer's last."""
        changes = directory / ".changes"
        prepared = [changes / n for n in os.listdir(changes)
                    if revision in prepared_revisions(n)]
        effect = next((path for path in prepared
                       if _took_effect(directory, self._prepared_change(path, revision),
                                       revision)), None)
        if effect is None:
            self.skip(directory, revision)
            log.warning("change %s of %s %s; its write never took effect: watchers skip it",
                        revision, directory.name, why)
        else:
            try:
                os.link(effect, changes / _change_name(revision))
            except FileExistsError:
                pass
            log.warning("change %s of %s %s; its write took effect: its change is logged",
                        revision, directory.name, why)
        for path in prepared:
            if not is_batch_name(path.name):  # (a batch's may still serve its others)
                path.unlink(missing_ok=True)

    def _prepared_change(self, prepared: Path, revision: int) -> bytes | None:
        """The change at `revision` in a prepared change or batch file (None: unreadable).
        The last batch read is kept: after a crash, each of its holes asks for it."""
        try:
            if not is_batch_name(prepared.name):
                return read_bytes(prepared)
            with self._mutex:
                cached = self._last_batch
            if cached is None or cached[0] != prepared:
                cached = (prepared, _batch_lines(read_bytes(prepared)) or {})
                with self._mutex:
                    self._last_batch = cached
            return cached[1].get(revision)
        except OSError:
            return None

    def _waited_out(self, directory: Path, revision: int) -> bool:
        """Whether `revision` has been missing for `wait` seconds (remembered from the
        first time it was seen missing)."""
        key = (directory, revision)
        now = time.monotonic()
        with self._mutex:
            first = self._holes.setdefault(key, now)
            if now - first < self.wait:
                return False
            self._holes.pop(key, None)
        return True

    # -- compaction ----------------------------------------------------------------------

    def compact(self, directory: Path, keep: int) -> None:
        """Keep at most the newest `keep` changes: the horizon moves first, files follow."""
        with flock(directory / ".locks" / "compact"):
            target = read_counter(directory) - max(keep, 0)
            if target <= self.horizon(directory):
                return
            atomic_write(directory / ".horizon", str(target).encode())
            changes = directory / ".changes"
            for name in os.listdir(changes):
                if _is_change_name(name) and int(name[:-5]) <= target:
                    (changes / name).unlink(missing_ok=True)


class ChangeWrite:
    """One write's revision, from its allocation until its change is in the log (or a
    skip marker in its place), its writer lock held all along: `stored` is the document as
    written at that revision, its change prepared (fsynced) beside the log."""

    def __init__(self, changes: FileChangeLog, directory: Path, current: str, kind: ChangeType,
                 document: Document, sync: bool = True, prepare: bool = True,
                 revision: int | None = None) -> None:
        """`prepare`: False takes the revision only; `prepare` writes the change later
        (a batch numbers its writes in order, then writes them on several threads).
        `revision`: one taken already (`FileChangeLog.allocate_many`), its lock held."""
        self._log, self.directory, self.kind, self._document = changes, directory, kind, document
        self._sync = sync
        self.revision = changes.allocate(directory, current) if revision is None else revision
        self._prepared: Path | None = None
        self._shared = False  # `_prepared` is a batch's file (`FileChangeLog.prepare_batch`)
        self._unprepared = not prepare  # numbered, change not yet written
        self.encoded = b""  # `stored` as JSON: the change's document and the document file's
        self.stored: Document = self._prepare() if prepare else {}

    def prepare(self) -> None:
        """The change of a write made with ``prepare=False``, written."""
        self._unprepared = False
        self.stored = self._prepare()

    def stage(self) -> None:
        """`stored` and `encoded` of a write made with ``prepare=False``, its change to be
        written with others in one batch file (`FileChangeLog.prepare_batch`)."""
        self.stored = self._stored()
        self.encoded = encode(self.stored)

    def batched(self, prepared: Path) -> None:
        """Its change is in the prepared batch file `prepared`."""
        self._prepared, self._shared, self._unprepared = prepared, True, False

    def _stored(self) -> Document:
        meta = {**self._document["metadata"], "resourceVersion": str(self.revision)}
        return {**self._document, "metadata": meta}

    def _prepare(self) -> Document:
        stored = self._stored()
        try:
            self.encoded = encode(stored)
            self._prepared = self._log.prepare(self.directory, self.revision, self.kind, stored,
                                               self.encoded, self._sync)
        except BaseException:
            self._log.skip(self.directory, self.revision)
            self._log.writers.release(self.directory, self.revision)
            raise
        return stored

    def publish(self) -> None:
        """Its change into place (once): call when the document is."""
        if self._prepared is not None:
            if self._shared:
                self._log.publish_link(self.directory, self.revision, self._prepared)
            else:
                self._log.publish(self.directory, self.revision, self._prepared)
            self._prepared = None

    def renumber(self) -> None:
        """Give the revision up (a skip marker) and take the next one: for a write that
        learns, under its resource's lock, that a change numbered after its own must come
        before it in the log."""
        self.abandon()
        self.revision = self._log.allocate(self.directory, str(self.revision))
        self.stored = self._prepare()

    def abandon(self) -> None:
        """The write failed (or renumbers): no change at its revision."""
        if self._prepared is not None or self._unprepared:
            if self._prepared is not None and not self._shared:
                self._prepared.unlink(missing_ok=True)
            self._prepared, self._shared, self._unprepared = None, False, False
            self._log.skip(self.directory, self.revision)
        self._log.writers.release(self.directory, self.revision)


def encode(document: Document) -> bytes:
    """A document as stored: compact JSON, UTF-8."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _compaction_step(history: int) -> int:
    """Compact every this many revisions: about a tenth of the history, amortised."""
    return max(1, min(history // 10, 1000))


def _took_effect(directory: Path, change: bytes | None, revision: int) -> bool:
    """Whether the write whose prepared change is `change` took effect (see `_settle`)."""
    try:
        stored = json.loads(change or b"")
        uid = stored["document"]["metadata"]["uid"]
    except (ValueError, KeyError, TypeError):
        return False  # torn: an OS crash before its fsync, so its document never moved
    if not is_uid(uid):
        return False
    try:
        current = json.loads(read_bytes(directory / f"{uid}.json"))["metadata"]
    except FileNotFoundError:
        current = None
    if stored.get("type") == "DELETED":
        return current is None
    return current is not None and current.get("resourceVersion") == str(revision)


def is_prepared_change(name: str) -> bool:
    """A writer's prepared change (``.tmp-REVISION-RANDOM``) or a batch's
    (``.tmp-FIRST-LAST-batch-RANDOM``): kept for `_settle`."""
    return bool(prepared_revisions(name))


def is_batch_name(name: str) -> bool:
    parts = name.split("-")
    return len(parts) == 5 and parts[3] == "batch"


def prepared_revisions(name: str) -> range:
    """The revisions a prepared change's temp file may hold (empty: not one)."""
    if not name.startswith(".tmp-"):
        return range(0)
    parts = name.split("-")
    if is_batch_name(name) and parts[1].isdigit() and parts[2].isdigit():
        return range(int(parts[1]), int(parts[2]) + 1)
    if len(parts) >= 3 and parts[1].isdigit():
        return range(int(parts[1]), int(parts[1]) + 1)
    return range(0)


def _is_change_name(name: str) -> bool:
    return len(name) == REVISION_WIDTH + 5 and name.endswith(".json") and name[:-5].isdigit()


class _ChangeReader:
    """Reads change files in order, each batch file once: the revisions after the one
    that led to a batch are taken from its parse while their entries are links to that
    same file (a skip marker in its place is a file of its own)."""

    def __init__(self) -> None:
        self._batch: tuple[int, int, dict[int, bytes]] | None = None  # inode, size, lines

    def read(self, path: Path, revision: int) -> StoredChange | None:
        """The change at `revision` (None: a skip marker or unreadable); raises
        FileNotFoundError when there is no such file."""
        batch = self._batch
        if batch is not None and revision in batch[2]:
            found = os.stat(path)
            if (found.st_ino, found.st_size) == batch[:2]:
                return _decode_change(revision, batch[2][revision])
        fd = os.open(path, os.O_RDONLY)
        try:
            found = os.fstat(fd)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if not data.startswith(_BATCH_HEADER):
            return _decode_change(revision, data)
        lines = _batch_lines(data)
        if lines is None or revision not in lines:
            log.warning("change %s is not in the batch file it links to; watchers skip it",
                        revision)
            return None
        self._batch = (found.st_ino, found.st_size, lines)
        return _decode_change(revision, lines[revision])


def _batch_lines(data: bytes) -> dict[int, bytes] | None:
    """A batch file's change lines by revision (None: torn or not a batch)."""
    lines = data.split(b"\n")
    try:
        revisions = json.loads(lines[0])["batch"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(revisions, list) or len(revisions) != len(lines) - 1:
        return None
    return dict(zip(revisions, lines[1:], strict=True))


def _decode_change(revision: int, data: bytes) -> StoredChange | None:
    try:
        stored = json.loads(data)
    except ValueError:  # torn by a crash (an OS crash before the rename reached the disk)
        log.warning("change %s is unreadable; watchers skip it", revision)
        return None
    kind = stored.get("type") if isinstance(stored, dict) else None
    if kind not in _TYPES:
        return None  # a skip marker
    return StoredChange(revision, cast(ChangeType, kind), cast(dict[str, Any],
                                                               stored["document"]))


def _raise_counter(directory: Path, at_least: int) -> None:
    fd = os.open(directory / ".revision", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        stored = os.pread(fd, REVISION_WIDTH, 0).decode(errors="replace")
        if not stored.isdigit() or int(stored) < at_least:
            os.pwrite(fd, f"{at_least:0{REVISION_WIDTH}d}".encode(), 0)
    finally:
        os.close(fd)
