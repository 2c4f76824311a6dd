"""`WatchMemory`: one bound on the bytes the watchers of a server hold for their clients.

A watcher holds little of its own: the objects a watch starts with are the cache's, shared
(a watcher keeps a pointer per object and renders a chunk at a time, 64 KiB at most), and
the changes it has queued are shared with the feed and every other watcher. What is its
own: the chunks it has handed to a client that has not read them yet (the last two: the
one being written and the one the connection still buffers), and, when its kind is not
cached, the objects it starts with, kept as compact JSON until sent.

Those bytes are charged here, whatever the kind. Past `limit` in all, the watcher holding
the most is ended with ERROR 410, as one that falls too far behind is (its client lists and
watches again); one whose client reads nothing has its connection cut. So unread watches
cost a bounded amount however many a client opens: each costs at most its chunks, and all
of them together at most `limit` (``serve --watch-memory``).
"""

from __future__ import annotations

import logging
from typing import Protocol

__all__ = ["DEFAULT_WATCH_MEMORY", "WatchMemory"]

log = logging.getLogger("fabrica.store")

#: Bytes all watchers of a server may hold for their clients, by default.
DEFAULT_WATCH_MEMORY = 256 * 1024 * 1024


class _Holder(Protocol):
    def expire(self, message: str, *, cut: bool = False) -> None: ...


class WatchMemory:
    """What each watcher holds, in bytes, and the bound on their sum."""

    def __init__(self, limit: int = DEFAULT_WATCH_MEMORY) -> None:
        if limit < 1:
            raise ValueError("the watch memory bound must be at least one byte")
        self.limit = limit
        self.used = 0
        self.ended = 0  # watchers ended for memory
        self._held: dict[_Holder, int] = {}

    def hold(self, watcher: _Holder, size: int) -> None:
        """`watcher` holds `size` bytes now (0: nothing; it is forgotten)."""
        self.used += size - self._held.pop(watcher, 0)
        if size:
            self._held[watcher] = size
        while self.used > self.limit and self._held:
            largest = max(self._held, key=self._held.__getitem__)
            log.warning("watchers hold %d bytes, over the bound of %d: ending the watch "
                        "holding %d", self.used, self.limit, self._held[largest])
            self.ended += 1
            self.used -= self._held.pop(largest)
            largest.expire("the server holds too much unsent watch data; list and watch "
                           "again", cut=True)
