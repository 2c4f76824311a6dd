"""Which revisions of a file collection have a live writer, asked of the kernel.

A writer takes its revision from the collection's counter and, before it lets go of the
counter's lock, takes an exclusive lock on byte REVISION of ``PLURAL/.locks/writers``; it
keeps it until its change (or its skip marker) is in the log. These are open file
description locks (Linux ``F_OFD_SETLK``): the kernel drops them when their process dies,
however it dies (kill -9 included), and unlike classic POSIX record locks they are not
lost when the process closes another descriptor of the file, and they conflict between two
descriptions in one process too. One lock costs two ``fcntl`` calls and leaves no file.

So a reader that finds revision r missing while the counter says r was taken asks the
kernel whether byte r is locked (``F_OFD_GETLK``: no waiting, nothing taken). Locked: its
writer is at work, wait for it. Free: the writer is gone (it finished meanwhile, or died)
and the hole can be dealt with at once, not after a timeout; a process restarted after a
crash finds its own dead writers' holes free in the same way.

Where the kernel has no such locks (not Linux, or a filesystem that refuses them),
`alive` answers None and readers fall back to the timed wait of `_changes`. All
processes sharing a data dir must run a version that takes these locks: an older writer
holds none and would be taken for dead.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import sys
import threading
import weakref
from pathlib import Path

__all__ = ["WriterLocks"]

log = logging.getLogger("fabrica.storage")

# struct flock of 64-bit Linux: short l_type, short l_whence, off_t l_start, off_t l_len,
# pid_t l_pid (0 for open file description locks), padded to 32 bytes.
_FLOCK = struct.Struct("hhqqi4x")
_SUPPORTED = (sys.platform == "linux" and hasattr(fcntl, "F_OFD_SETLK")
              and struct.calcsize("P") == 8 and _FLOCK.size == 32)
_UNSUPPORTED_ERRORS = frozenset({errno.EINVAL, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS})


class WriterLocks:
    """The writer locks of the collections of one data dir, as one process sees them.

    Per collection it opens the lock file twice: one description holds this process's
    writers' locks, the other only asks (a description never conflicts with itself).
    """

    def __init__(self) -> None:
        self._fds: dict[Path, tuple[int, int] | None] = {}  # None: no such locks here
        self._mutex = threading.Lock()
        self._pid = os.getpid()
        weakref.finalize(self, _close_all, self._fds)  # a storage dropped without close()

    def hold(self, directory: Path, revision: int) -> None:
        """Lock byte `revision` for this process's writer of it (never waits: no one else
        has that revision)."""
        fds = self._open(directory)
        if fds is not None and not self._lock(directory, fds[0], fcntl.F_WRLCK, revision):
            raise OSError(errno.EAGAIN, f"revision {revision} of {directory.name} is locked")

    def release(self, directory: Path, revision: int) -> None:
        fds = self._open(directory)
        if fds is not None:
            self._lock(directory, fds[0], fcntl.F_UNLCK, revision)

    def alive(self, directory: Path, revision: int) -> bool | None:
        """Whether a live writer holds `revision`; None when the kernel cannot tell."""
        fds = self._open(directory)
        if fds is None:
            return None
        try:
            answer = fcntl.fcntl(fds[1], fcntl.F_OFD_GETLK,
                                 _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, revision, 1, 0))
        except OSError as exc:
            self._unsupported(directory, exc)
            return None
        return bool(_FLOCK.unpack(answer)[0] != fcntl.F_UNLCK)

    def close(self) -> None:
        with self._mutex:
            _close_all(self._fds)

    # -- helpers -------------------------------------------------------------------------

    def _lock(self, directory: Path, fd: int, kind: int, revision: int) -> bool:
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(kind, os.SEEK_SET, revision, 1, 0))
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            self._unsupported(directory, exc)
        return True

    def _open(self, directory: Path) -> tuple[int, int] | None:
        if self._pid != os.getpid():  # a forked child: its parent's descriptions are not its
            self._forget_inherited()
        try:
            return self._fds[directory]
        except KeyError:
            pass
        with self._mutex:
            if directory not in self._fds:
                self._fds[directory] = _open_pair(directory / ".locks" / "writers")
            return self._fds[directory]

    def _unsupported(self, directory: Path, exc: OSError) -> None:
        if exc.errno not in _UNSUPPORTED_ERRORS:
            raise exc
        log.warning("%s: the filesystem refuses open file description locks (%s); readers "
                    "wait for a missing change instead of asking whether its writer lives",
                    directory, exc)
        with self._mutex:
            pair, self._fds[directory] = self._fds.get(directory), None
            for fd in pair or ():
                os.close(fd)

    def _forget_inherited(self) -> None:
        with self._mutex:
            if self._pid != os.getpid():
                _close_all(self._fds)  # our copies: the parent's locks stay with the parent
                self._pid = os.getpid()


def _close_all(fds: dict[Path, tuple[int, int] | None]) -> None:
    for pair in fds.values():
        for fd in pair or ():
            os.close(fd)
    fds.clear()


def _open_pair(path: Path) -> tuple[int, int] | None:
    if not _SUPPORTED:
        return None
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
    return os.open(path, flags, 0o644), os.open(path, flags, 0o644)
