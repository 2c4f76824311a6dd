"""`Shards`: which keys this controller process reconciles, when several share the work.

Keys (resource uids) fall into `count` shards by a stable hash. Each shard is a lease
(`fabrica.storage.Leases`: a PostgreSQL advisory lock or a MariaDB/MySQL user lock held by
this process's lease connection), so the database, not us, decides who holds it, and one
process at most holds it. A controller reconciles a key only while it holds the key's shard.

Every `interval` seconds each controller counts the controllers alive (the processes holding
a lease of the group; every controller holds its ``member`` lease) and aims at its share,
``ceil(count / members)``: it takes free shards while below, and gives surplus shards back
while above. A shard is given back only once no reconcile of its keys is running here (it
takes no new ones meanwhile), so a key is never reconciled by two processes at once. A
shard taken is resynced: every existing key in it is queued, so whatever changed while
nobody held it is reconciled. When a process dies the database drops its locks with its
connection; the survivors see fewer members at their next tick and take its shards.

Where the database cannot count members (MariaDB/MySQL) a controller takes every free
shard: the first one does the work, the others stand by and take over when it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Gauge

from ..storage import Leases

__all__ = ["Shards"]

log = logging.getLogger("fabrica.reconcile")

GROUP = "shard"


class Shards:
    def __init__(
        self,
        leases: Leases,
        *,
        instance: str,
        count: int = 32,
        interval: float = 1.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("at least one shard")
        self.leases, self.instance, self.count, self.interval = leases, instance, count, interval
        self.members = 1
        self.problem: str | None = None  # why the last balancing failed, for /ready
        self._active: set[int] = set()  # held, and taking keys
        self._releasing: set[int] = set()  # held, giving back once idle
        self._running: Counter[int] = Counter()  # reconciles in flight, by shard
        self._on_acquired: Callable[[set[int]], Awaitable[None]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        leases.on_lost = self._lost
        if registry is not None:
            Gauge("fabrica_controller_shards_held", "Shards this controller holds",
                  registry=registry).set_function(lambda: len(self._active))
            Gauge("fabrica_controller_members", "Controllers sharing the work",
                  registry=registry).set_function(lambda: self.members)
            Gauge("fabrica_controller_keys_running", "Reconciles in flight here",
                  registry=registry).set_function(lambda: sum(self._running.values()))

    def shard_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self.count

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._active)

    def owns(self, key: str) -> bool:
        return self.shard_of(key) in self._active

    def begin(self, key: str) -> bool:
        """Before reconciling `key`: False if its shard is not (or no longer) ours."""
        shard = self.shard_of(key)
        if shard not in self._active:
            return False
        self._running[shard] += 1
        return True

    def end(self, key: str) -> None:
        shard = self.shard_of(key)
        self._running[shard] -= 1
        if self._running[shard] <= 0:
            del self._running[shard]
            if shard in self._releasing:
                self._changed.set()

    async def start(self, on_acquired: Callable[[set[int]], Awaitable[None]]) -> None:
        """Join (the member lease), take a first share, then keep balancing."""
        self._on_acquired = on_acquired
        try:
            await self._tick()
        except Exception as exc:  # the loop retries; /ready says why meanwhile
            self.problem = f"cannot reach the database leases: {type(exc).__name__}"
        self._task = asyncio.create_task(self._loop(), name="fabrica.shards")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for shard in sorted(self._active | self._releasing):
            await self.leases.release(self._name(shard))
        self._active.clear()
        self._releasing.clear()
        await self.leases.release(self._member())

    async def wait_for(self, condition: Callable[[Shards], bool], timeout: float = 30.0
                       ) -> None:
        async with asyncio.timeout(timeout):
            while not condition(self):
                await asyncio.sleep(0.05)

    # -- balancing -----------------------------------------------------------------------

    async def _loop(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._changed.wait()
            self._changed.clear()
            try:
                await self._tick()
                failures = 0
                self.problem = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.problem = f"cannot reach the database leases: {type(exc).__name__}"
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "controller %s cannot reach its leases: %r", self.instance, exc)

    async def _tick(self) -> None:
        await self.leases.acquire(self._member())
        members = await self.leases.members(GROUP)
        self.members = members or 1
        target = self.count if members is None else math.ceil(self.count / max(1, members))
        await self._give_back_idle()
        surplus = len(self._active) - target
        if surplus > 0:
            for shard in sorted(self._active, reverse=True)[:surplus]:
                self._active.discard(shard)
                self._releasing.add(shard)  # no new keys; given back once idle
            await self._give_back_idle()
        elif surplus < 0:
            await self._take(-surplus)

    async def _take(self, wanted: int) -> None:
        mine = self._active | self._releasing
        candidates = [s for s in range(self.count) if s not in mine]
        random.shuffle(candidates)
        taken: set[int] = set()
        for shard in candidates:
            if len(taken) >= wanted:
                break
            if await self.leases.acquire(self._name(shard)):
                taken.add(shard)
        if taken:
            self._active |= taken
            log.info("controller %s took shards %s (%d held, %d members)", self.instance,
                     _ranges(taken), len(self._active), self.members)
            if self._on_acquired is not None:
                await self._on_acquired(taken)

    async def _give_back_idle(self) -> None:
        idle = {s for s in self._releasing if not self._running.get(s)}
        for shard in sorted(idle):
            await self.leases.release(self._name(shard))
            self._releasing.discard(shard)
        if idle:
            log.info("controller %s gave back shards %s (%d held, %d members)", self.instance,
                     _ranges(idle), len(self._active), self.members)

    def _lost(self, names: set[str]) -> None:
        """The lease connection failed: every shard is gone, stop taking keys at once."""
        if self._active or self._releasing:
            log.error("controller %s lost its shards with its database connection",
                      self.instance)
        self._active.clear()
        self._releasing.clear()

    def _name(self, shard: int) -> str:
        return f"{GROUP}:{shard}"

    def _member(self) -> str:
        return f"{GROUP}:member:{self.instance}"


def _ranges(shards: set[int]) -> str:
    return ",".join(str(s) for s in sorted(shards))
