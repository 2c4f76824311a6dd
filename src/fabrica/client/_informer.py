"""`Informer`: a local, always-current copy of one kind, with handlers for its changes.

The pattern of client-go's informers (and kopf's watchers): list the kind, keeping the list's
``X-Resource-Version``; watch from that version; apply each event to a local cache keyed by
uid and call the add/update/delete handlers. When the connection breaks (a server restart, a
network fault), reconnect with exponential backoff and jitter and resume from the last version
seen, so nothing is missed or repeated. When the server no longer keeps changes that old
(``ERROR`` 410, `Expired`), or never reached the version resumed from (504,
`TooLargeResourceVersion`: a server restored from an older backup), list again and report
the difference between the old cache and the new list, so handlers still see where every
object ended up.

This module is the thread-based informer for synchronous code; `AsyncInformer` is its
asyncio twin. `follow` is the loop itself, which the command line's ``list --watch`` shares.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Generator
from typing import Any

import httpx

from ._cache import Backoff, Cache, CacheChange
from ._client import Client
from ._errors import Expired, FabricaError, TooLargeResourceVersion
from ._handlers import FollowState, InformerBase
from ._kinds import KindRef
from ._raw import RawClient
from ._typed import R
from ._watch import watch_events

__all__ = ["Informer", "follow"]

log = logging.getLogger("fabrica.client.informer")


def follow(
    raw: RawClient,
    kind: KindRef,
    cache: Cache[Any],
    *,
    label_selector: str | None = None,
    timeout_seconds: int | None = None,
    backoff: Backoff | None = None,
    stop: threading.Event | None = None,
    field_selector: str | None = None,
    on_open: Callable[[httpx.Response], None] | None = None,
    retry: Callable[[FabricaError], bool] = lambda error: True,
    until_end: bool = False,
) -> Generator[list[CacheChange[Any]]]:
    """List, then watch `kind` into `cache`, for ever: each batch of changes as it happens
    (the first one is the list). Stops when `stop` is set, or raises the first error that
    `retry` refuses; reconnects (after a backoff delay) on any other. A watch the server
    ends cleanly is resumed too, unless `until_end`."""
    stop = stop or threading.Event()
    state = FollowState(raw.kinds.info(kind).plural, cache, backoff or Backoff())
    while not stop.is_set():
        try:
            if state.relist:
                yield state.listed(*raw.list_with_version(kind, label_selector,
                                                          field_selector=field_selector))
            with raw.open_watch(kind, label_selector, resource_version=state.watch_from(),
                                allow_bookmarks=True, timeout_seconds=timeout_seconds,
                                field_selector=field_selector) as response:
                if on_open is not None:
                    on_open(response)
                for event in watch_events(response.iter_lines()):
                    if (change := state.apply(event)) is not None:
                        yield [change]
            if until_end:
                return
            if not stop.is_set() and (delay := state.ended()) is not None:
                stop.wait(delay)
        except Expired as exc:
            state.expired(exc)
        except TooLargeResourceVersion as exc:
            stop.wait(state.too_new(exc))
        except FabricaError as exc:
            if stop.is_set():
                return
            if not retry(exc):
                raise
            stop.wait(state.failed(exc))


class Informer(InformerBase[Client, R]):
    """Keeps a local copy of one kind (optionally narrowed by `label_selector`) current, in a
    background thread, and calls handlers on each change::

        informer = Informer(client, Device, "env=prod")

        @informer.on_update
        def moved(old: Device, new: Device) -> None: ...

        with informer:                      # start(); stop() on leaving
            informer.wait_for_sync(10)      # the first list is in
            informer.get("web-01"), informer.list("rack=r1")

    Handlers run one at a time in the informer's thread, in the order of the changes; one that
    raises is logged and the others still run. ``on_add(obj)``, ``on_update(old, new)``,
    ``on_delete(obj)`` (the last state known) are decorators, or pass them to the constructor.
    After a connection loss it resumes from the last version it saw, with exponential backoff
    (`backoff` doubling up to `max_backoff` seconds, jittered); on `Expired` it lists again and
    calls the handlers for the difference. `timeout_seconds` asks the server to end each watch
    after that long (the informer then resumes), which bounds how long a silently dead
    connection goes unnoticed; bookmarks are always asked for.
    """

    def _setup(self) -> None:
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: httpx.Response | None = None
        self._lock = threading.Lock()

    @property
    def has_synced(self) -> bool:
        """Whether the first list is in the cache (and its adds handled)."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Block until `has_synced` (True), or `timeout` seconds pass (False)."""
        return self._synced.wait(timeout)

    # ---- running ---------------------------------------------------------------------------

    def start(self) -> Informer[R]:
        """Start the background thread (once)."""
        if self._thread is None:
            name = f"fabrica-informer-{self.plural}"
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Hang up the watch and wait (up to `timeout` seconds) for the thread to end."""
        self._stop.set()
        with self._lock:
            if self._response is not None:
                _hang_up(self._response)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Informer[R]:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        changes = follow(self.client.raw, self.kind, self._cache,
                         label_selector=self.label_selector,
                         field_selector=self.field_selector,
                         timeout_seconds=self.timeout_seconds, backoff=self._backoff,
                         stop=self._stop, on_open=self._opened)
        try:
            for batch in changes:
                for change in batch:
                    self._dispatch(change)
                self._synced.set()
        except Exception:  # follow retries every server error: an object the class cannot
            log.exception("informer of %s stopped", self.plural)  # read, or a bug

    def _opened(self, response: httpx.Response) -> None:
        with self._lock:
            self._response = response
            if self._stop.is_set():
                _hang_up(response)

    def _dispatch(self, change: CacheChange[R]) -> None:
        for handler, args in self.handlers.calls(change):
            try:
                handler(*args)
            except Exception:
                log.exception("%s handler of %s failed", change.type.lower(),
                              self.plural)


def _hang_up(response: httpx.Response) -> None:
    """Wake the thread blocked reading `response`: shut its socket down (closing it from
    another thread would not interrupt the read)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
