"""`SQLLeases`: the `Leases` of PostgreSQL and MariaDB/MySQL (see `_leases`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .._leases import lease_key

__all__ = ["SQLLeases"]

log = logging.getLogger("fabrica.storage")

_TIMEOUT = 5.0  # a lease statement that takes longer means the connection is gone


class SQLLeases:
    """Leases on PostgreSQL advisory locks or MariaDB/MySQL user locks (`engine`'s).

    `namespace` keeps services sharing one database apart (their leases of the same name
    are different locks).
    """

    def __init__(self, engine: AsyncEngine, namespace: str, *, check_interval: float = 2.0
                 ) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("postgresql", "mysql", "mariadb"):
            raise ValueError(f"no database leases on {self._dialect}: use LocalLeases")
        self.namespace = namespace
        self.check_interval = check_interval
        self.on_lost: Callable[[set[str]], None] | None = None
        self._conn: AsyncConnection | None = None
        self._held: set[str] = set()
        self._lock = asyncio.Lock()  # one statement at a time on the one connection
        self._checker: asyncio.Task[None] | None = None

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    async def acquire(self, name: str) -> bool:
        if name in self._held:
            return True
        got = await self._execute(self._try_lock_sql(name))
        if got:
            self._held.add(name)
        return bool(got)

    async def release(self, name: str) -> None:
        if name not in self._held:
            return
        self._held.discard(name)
        with contextlib.suppress(Exception):  # a lost connection released it anyway
            await self._execute(self._unlock_sql(name))

    async def members(self, group: str) -> int | None:
        if self._dialect != "postgresql":
            return None
        sql = text("SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory' "
                   "AND granted AND classid::bigint = :ns")
        value = await self._execute((sql, {"ns": lease_key(f"{self.namespace}/{group}")}))
        return int(value or 0)

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            await asyncio.gather(self._checker, return_exceptions=True)
            self._checker = None
        self._held.clear()
        async with self._lock:
            await self._disconnect()

    # -- internals -----------------------------------------------------------------------

    def _key(self, name: str) -> tuple[int, int]:
        group, _, _ = name.partition(":")
        return lease_key(f"{self.namespace}/{group}"), lease_key(name)

    def _try_lock_sql(self, name: str) -> tuple[Any, dict[str, Any]]:
        if self._dialect == "postgresql":
            ns, key = self._key(name)
            return text("SELECT pg_try_advisory_lock(:ns, :key)"), {"ns": ns, "key": key}
        return text("SELECT GET_LOCK(:name, 0)"), {"name": self._mysql_name(name)}

    def _unlock_sql(self, name: str) -> tuple[Any, dict[str, Any]]:
        if self._dialect == "postgresql":
            ns, key = self._key(name)
            return text("SELECT pg_advisory_unlock(:ns, :key)"), {"ns": ns, "key": key}
        return text("SELECT RELEASE_LOCK(:name)"), {"name": self._mysql_name(name)}

    def _mysql_name(self, name: str) -> str:
        full = f"{self.namespace}/{name}"
        return full if len(full) <= 64 else f"{full[:55]}#{zlib.crc32(full.encode()):08x}"

    async def _execute(self, statement: tuple[Any, dict[str, Any]]) -> Any:
        async with self._lock:
            try:
                async with asyncio.timeout(_TIMEOUT):
                    conn = await self._connection()
                    return (await conn.execute(*statement)).scalar()
            except BaseException:  # failed, timed out or cancelled mid-statement
                await self._lose("the database connection failed")
                raise

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            conn = await self._engine.connect()
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            if self._checker is None or self._checker.done():
                self._checker = asyncio.create_task(self._check(), name="fabrica.leases")
        return self._conn

    async def _check(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            async with self._lock:
                if self._conn is None:
                    continue
                try:
                    async with asyncio.timeout(_TIMEOUT):
                        await self._conn.execute(text("SELECT 1"))
                except Exception as exc:
                    await self._lose(f"the database connection failed: {exc!r}")

    async def _lose(self, why: str) -> None:
        """Every lease is gone with the connection: say so before anything else runs."""
        lost, self._held = self._held, set()
        await self._disconnect()
        if lost:
            log.error("leases %s lost: %s", ", ".join(sorted(lost)), why)
            if self.on_lost is not None:
                self.on_lost(lost)

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_TIMEOUT):
                    await conn.invalidate()
                    await conn.close()
