"""Durable file primitives shared by the file backend's documents and its change log.

Both keep each record in a file of its own and must survive a crash at any instant: a file
is written in full and fsynced under a temp name (``.tmp-NAME-RANDOM``, which a later start
removes if its writer died), then renamed into place, then its directory fsynced so the
rename itself is durable. Plain os-level calls: they cost a third of buffered ``open()``.

Group commit (`GroupSync`): concurrent writers do not fsync each file and directory of
their own. Each writes its files unsynced and asks the group for a sync that *begins after
it asked*; one thread (the first to ask while none runs) makes it, everyone who asked
meanwhile shares the next one. On Linux that sync is one ``syncfs`` of the data dir's
filesystem: every file's data, every rename and every directory entry written before it
began is durable when it returns (errors of writeback included, Linux 5.8+). Elsewhere the
group falls back to writers fsyncing their own files and the group fsyncing the
directories it was given, once per sync for everyone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["GroupSync", "atomic_write", "flock", "fsync_dir", "read_bytes", "read_with_inode",
           "write_temp"]


def read_bytes(path: str | Path) -> bytes:
    """A whole small file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_with_inode(path: str | Path) -> tuple[bytes, int]:
    """A whole small file and its inode number (which file a link led to)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        inode = os.fstat(fd).st_ino
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks), inode
    finally:
        os.close(fd)


def write_temp(directory: Path | str, name: str, data: bytes, sync: bool = True) -> Path:
    """`data` written (and fsynced, unless a `GroupSync` will) to a new temp file in
    `directory`, for renaming."""
    tmp = Path(f"{directory}{os.sep}.tmp-{name}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        if os.write(fd, data) != len(data):  # (a short write of a small file: rare)
            view = memoryview(data)[os.lseek(fd, 0, os.SEEK_CUR):]
            while view:
                view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def atomic_write(path: Path, data: bytes,
                 before_sync: Callable[[], None] | None = None) -> None:
    """Temp file, fsync, rename, directory fsync; `before_sync` runs just before the last."""
    tmp = write_temp(path.parent, path.name, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if before_sync is not None:
        before_sync()
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def flock(path: Path, wait: bool = True) -> Iterator[int]:
    """An exclusive lock on `path` for a ``with`` block (closing the file releases it);
    yields the file's descriptor, for what the lock's holder keeps in it. Without `wait`,
    a lock held elsewhere raises BlockingIOError at once."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield fd
    finally:
        os.close(fd)


def _load_syncfs() -> Any:
    """libc's ``syncfs`` (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        func = libc.syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes, func.restype = [ctypes.c_int], ctypes.c_int
    return func


_SYNCFS = _load_syncfs()


class GroupSync:
    """Group commit of the durable writes under `root` (see the module docstring).

    `covers_files`: whether one sync makes file data durable too (``syncfs``); when False,
    writers must fsync their files themselves (`write_temp`'s default) and the group syncs
    only the directories it is given.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._syncfs = _SYNCFS
        self._cond = threading.Condition()
        self._started = 0  # syncs begun so far
        self._done = 0  # syncs ended so far (they end in order: one runs at a time)
        self._running = False
        self._dirs: set[str] = set()  # directories to fsync in the next sync (fallback)
        self._failed: dict[int, BaseException] = {}  # sync number -> its error
        self.syncs = 0  # syncs made, for tests and benches: fewer than writers when grouped

    @property
    def covers_files(self) -> bool:
        return self._syncfs is not None

    def sync(self, dirs: tuple[Path | str, ...] = ()) -> None:
        """Return once a sync begun after this call has ended: whatever the caller wrote
        before it (file data under `covers_files`, renames, entries of `dirs`) is durable.
        Raises the OSError of that sync, should it fail."""
        with self._cond:
            self._dirs.update(str(d) for d in dirs)
            target = self._started + 1  # the one running began before we asked
            while self._done < target:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                self._started += 1
                number, pending, self._dirs = self._started, self._dirs, set()
                self._cond.release()
                error: BaseException | None = None
                try:
                    self._sync(pending)
                except BaseException as exc:  # noqa: BLE001 (handed to everyone waiting)
                    error = exc
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._done = number
                    self.syncs += 1
                    if error is not None:
                        self._failed[number] = error
                        for old in [n for n in self._failed if n < number - 1000]:
                            del self._failed[old]
                    self._cond.notify_all()
            failed = self._failed.get(target)
        if failed is not None:
            raise OSError(getattr(failed, "errno", None), f"group sync failed: {failed}")

    def _sync(self, dirs: set[str]) -> None:
        if self._syncfs is None:
            for directory in sorted(dirs):
                fsync_dir(Path(directory))
            return
        fd = os.open(self._root, os.O_RDONLY)
        try:
            if self._syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            os.close(fd)
