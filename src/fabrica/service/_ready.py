"""``GET /ready``: may this process take traffic (or work) right now? (SPEC section 6)

Each check answers ``"ok"`` or says what is wrong: ``storage`` (a one-row read answers within
`timeout` seconds), ``events`` (the bus is open and, for NATS, connected; Kafka answers a
metadata request within half of `timeout`) and ``role`` (the process has finished
starting, is not stopping, and runs what its role asks: the API, the controller, or both).
All ok: 200 ``{"status": "ready", "checks": {...}}``; otherwise 503 with ``"status": "not
ready"`` and the same checks, the failing ones saying why. ``/health`` stays liveness: it
answers 200 as long as the process serves HTTP at all.

A bus outage (NATS or Kafka) and the roles: a process that serves the API (``api`` or
``all``) and records its writes' events in the outbox (SQL storage) stays ready, its
``events`` check saying ``degraded: ...``: its writes still succeed and their events wait
in the outbox, so a load balancer must not drop every API process for a bus outage. Its
reconcilers (``all``) and ``/events`` wait for the bus meanwhile (a new ``/events`` answers
503, an open one resumes). A ``controller`` process cannot work without the bus: 503. So is
a process whose events are published from memory after each write (file storage): during
the outage those events are lost, so it is not ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..events import EventBus
from ..resource import Resource
from ..storage import Storage

__all__ = ["DEGRADED", "Readiness", "bus_address"]

Check = Callable[[], Awaitable[str]]
OK = "ok"
#: How a passing check that works with less than it should begins (``degraded: why``).
DEGRADED = "degraded"


def bus_address(bus: object) -> str:
    """``NATS at nats://...`` or ``Kafka at host:port``: where a shared bus is."""
    if (bootstrap := getattr(bus, "bootstrap", None)) is not None:
        return f"Kafka at {bootstrap}"
    return f"NATS at {getattr(bus, 'url', '?')}"


class Readiness:
    """The checks behind ``/ready``; `serving` and `stopping` are set by the `Service` as it
    starts and stops."""

    def __init__(
        self,
        storage: Storage,
        kinds: Sequence[type[Resource[Any, Any]]],
        bus: EventBus | None,
        role: str,
        *,
        outbox: bool = False,
        timeout: float = 2.0,
    ) -> None:
        self.storage, self.kinds, self.bus, self.role = storage, kinds, bus, role
        self.outbox = outbox  # the writes' events are recorded with them (SQL storage)
        self.timeout = timeout
        self.serving = False
        self.stopping = False
        self.extra: dict[str, Check] = {}  # more checks (the controller's, the outbox's...)

    async def checks(self) -> dict[str, str]:
        checks: dict[str, Check] = {"storage": self._storage, "role": self._role}
        if self.bus is not None:
            checks["events"] = self._events
        checks.update(self.extra)
        results = await asyncio.gather(*(self._run(check) for check in checks.values()))
        return dict(zip(checks, results, strict=True))

    async def report(self) -> tuple[int, dict[str, Any]]:
        """The ``/ready`` answer: its status code (200 or 503) and its JSON body."""
        checks = await self.checks()
        ready = all(result == OK or result.startswith(DEGRADED) for result in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return 200 if ready else 503, body

    async def _run(self, check: Check) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                return await check()
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except Exception as exc:  # a check that fails says why, it never fails the request
            return f"{type(exc).__name__}: {exc}"

    async def _storage(self) -> str:
        if self.kinds:
            await self.storage.list(self.kinds[0].resource_info.plural, limit=1)
        return OK

    async def _events(self) -> str:
        bus = self.bus
        if getattr(bus, "closed", False):
            return "the event bus is closed"
        problem = await self._bus_problem()
        if problem is None:
            return OK
        if self.outbox and self.role != "controller":
            return f"{DEGRADED}: {problem}; writes go on, their events wait in the outbox"
        return problem

    async def _bus_problem(self) -> str | None:
        """Why the bus cannot carry events now, or None."""
        bus = self.bus
        if getattr(bus, "connected", True) is False:
            return f"not connected to {bus_address(bus)}"
        # A Kafka client's connection says little (a frozen broker keeps its socket open):
        # a bus that can be asked is asked, within part of this check's time.
        ping = getattr(bus, "ping", None)
        if ping is not None:
            try:
                await ping(timeout=self.timeout / 2)
            except Exception as exc:
                return str(exc)
        return None

    async def _role(self) -> str:
        if self.stopping:
            return "stopping"
        if not self.serving:
            return "starting"
        return OK
