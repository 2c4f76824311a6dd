"""Named leases that several server processes on one database take turns holding.

A lease is the database's own lock, held by one dedicated connection of this process:
PostgreSQL session advisory locks (``pg_try_advisory_lock``), MariaDB/MySQL user locks
(``GET_LOCK``). Nothing of ours decides who holds what: the database grants each lock to
one session, and releases all of a session's locks when the session ends, so a process that
dies (its socket closed by the kernel) loses its leases at once, and the next process that
asks gets them. `LocalLeases` is the single-process stand-in (files, SQLite): every lease
is granted. `SQLLeases` (in `sql._leases`) is the database's.

The connection is checked every `check_interval` seconds. If it fails, every lease is lost
at once: `held` is emptied and `on_lost` is called before anything else happens, and the
next `acquire` opens a new connection. Failure modes, for the README: a process whose
connection to the database broke while the process lives on keeps working until its next
check notices (at most `check_interval` seconds), while the database may already have
granted its locks to another process once it noticed the session was gone.

`members(group)` counts the processes that hold a lease of `group` (PostgreSQL reads
``pg_locks``; elsewhere it is None: unknown).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol

__all__ = ["Leases", "LocalLeases", "lease_key"]

def lease_key(name: str) -> int:
    """A non-negative 31-bit number for `name` (PostgreSQL advisory locks take two int4,
    and ``pg_locks`` shows them as unsigned oids)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


class Leases(Protocol):
    """Named leases held by this process; see the module docstring."""

    on_lost: Callable[[set[str]], None] | None

    @property
    def held(self) -> frozenset[str]: ...

    async def acquire(self, name: str) -> bool:
        """Take `name` if nobody holds it (True), without waiting; True if already ours."""

    async def release(self, name: str) -> None: ...

    async def members(self, group: str) -> int | None: ...

    async def close(self) -> None: ...


class LocalLeases:
    """Every lease granted: one process is the only one there is."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self.on_lost: Callable[[set[str]], None] | None = None

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    async def acquire(self, name: str) -> bool:
        self._held.add(name)
        return True

    async def release(self, name: str) -> None:
        self._held.discard(name)

    async def members(self, group: str) -> int | None:
        return 1

    async def close(self) -> None:
        self._held.clear()
