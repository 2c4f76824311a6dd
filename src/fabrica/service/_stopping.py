"""Stopping the service's parts in order within a time budget (SPEC section 6: ``serve`` stops
within 10 seconds of SIGTERM).

The server first ends its streams and gives the requests in flight `GRACEFUL_SHUTDOWN`
seconds (uvicorn's graceful shutdown); then the service stops its parts, controller to storage,
within `STOP_BUDGET` seconds in all. Each part gets what is left of the budget (at least
`_LEAST`, so the storage is closed even after a slow part before it); a part that takes
longer is given up and logged: a reconcile cut short is done again at the next start, an
event left in the outbox is relayed by the next relay, and nothing else is lost by leaving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

__all__ = ["GRACEFUL_SHUTDOWN", "STOP_BUDGET", "Step", "stop_in_order"]

log = logging.getLogger("fabrica.server")

#: Seconds uvicorn waits for the requests in flight once the streams are ended.
GRACEFUL_SHUTDOWN = 3.0
#: Seconds the service's own parts may take to stop, in all.
STOP_BUDGET = 5.0
_LEAST = 0.2

#: A named part's stop, given the seconds it may take.
Step = tuple[str, Callable[[float], Awaitable[object]]]


async def stop_in_order(steps: Sequence[Step], budget: float = STOP_BUDGET) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    for name, stop in steps:
        allowed = max(_LEAST, deadline - loop.time())
        try:
            async with asyncio.timeout(allowed):
                await stop(allowed)
        except TimeoutError:
            log.warning("stopping the %s took more than %.1f s: given up", name, allowed)
        except Exception:  # one part failing to stop must not keep the next from stopping
            log.exception("stopping the %s failed", name)
