"""Per-key retry delays for the work queue: the `RateLimiter` seam and `ExponentialBackoff`.

A failed reconcile is retried, but not at once and not forever at the same pace. The
delay grows with the number of consecutive failures *of that key*, so one resource that keeps
failing (a bad spec, a missing dependency) backs off on its own without slowing down anyone
else, and a success (`forget`) starts it again from the shortest delay. This is client-go's
`ItemExponentialFailureRateLimiter`: `base * 2**failures`, capped.

Two differences from client-go, and why:

* Jitter. When many keys fail for one shared reason (the storage backend restarts), they fail
  together and, with a pure doubling, retry together in lockstep, hitting the recovering
  backend all at once. A random +/- `jitter` fraction spreads each wave out. The random
  source is injectable so tests are deterministic.
* No overall token bucket. client-go's default controller limiter is the maximum of the
  per-key backoff and a global 10 qps bucket, which protects a shared API server from many
  clients. Our reconcilers run inside the server that owns the data, and the worker count
  already bounds concurrency, so the per-key backoff is the part that matters. Any object with
  the `RateLimiter` methods can be passed to `WorkQueue` to add one.

The limiter keeps a counter per failing key until it is forgotten; the controller forgets a
key after every successful (or terminally failed) reconcile, so the table only holds keys that
are currently retrying.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable
from typing import Protocol, TypeVar

__all__ = ["ExponentialBackoff", "RateLimiter"]

K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class RateLimiter(Protocol[K_contra]):
    """How long a key waits before its next retry; the seam `WorkQueue` takes.

    `when` records one more failure of `key` and returns the delay in seconds before it is
    retried; `forget` clears the key's history after it succeeds; `failures` is the count of
    failures recorded since the last `forget`.
    """

    def when(self, key: K_contra) -> float: ...

    def forget(self, key: K_contra) -> None: ...

    def failures(self, key: K_contra) -> int: ...


class ExponentialBackoff:
    """Per-key exponential backoff with jitter: `base * 2**failures`, at most `cap` seconds.

    Parameters:
        base: delay in seconds after the first failure (default 5 ms, as in client-go, so a
            conflict on a busy object is retried almost at once).
        cap: the longest delay in seconds (default 5 minutes); a jittered delay never
            exceeds it.
        jitter: fraction of random spread, 0 <= jitter < 1: each delay is multiplied by a
            uniform factor in `[1 - jitter, 1 + jitter]` (default 0.1). 0 disables it.
        rng: the random source for the jitter; pass a seeded `random.Random` in tests.
    """

    def __init__(
        self,
        base: float = 0.005,
        cap: float = 300.0,
        jitter: float = 0.1,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0:
            raise ValueError(f"base must be > 0, got {base!r}")
        if cap < base:
            raise ValueError(f"cap must be >= base, got cap={cap!r} base={base!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self._rng = rng if rng is not None else random.Random()
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        """Record a failure of `key` and return its retry delay in seconds."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return self._delay(failures)

    def forget(self, key: Hashable) -> None:
        """Clear `key`'s failures: its next delay is `base` again."""
        self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        """The number of failures recorded for `key` since it was last forgotten."""
        return self._failures.get(key, 0)

    def _delay(self, failures: int) -> float:
        try:
            delay = self.base * 2.0**failures
        except OverflowError:  # thousands of failures: far past the cap anyway
            delay = math.inf
        if self.jitter:
            delay *= 1.0 + self._rng.uniform(-self.jitter, self.jitter)
        return min(delay, self.cap)

    def __repr__(self) -> str:
        return f"ExponentialBackoff(base={self.base!r}, cap={self.cap!r}, jitter={self.jitter!r})"
