"""``serve --workers N``: N server processes sharing one listening socket.

The parent binds the socket, forks the workers and supervises them: each builds its own
application (storage connections, event bus, thread pools: nothing crosses the fork) and
serves the inherited socket with uvicorn; the kernel spreads connections among them. A
worker that dies is started again, unless it died within `_MIN_UPTIME` seconds of starting
(then something is wrong with the set-up: everything stops, the parent exits 1). SIGTERM or
SIGINT to the parent stops every worker gracefully.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from ...service import GRACEFUL_SHUTDOWN

__all__ = ["StreamEndingServer", "run_app", "serve_workers"]

log = logging.getLogger("fabrica.server")

_MIN_UPTIME = 5.0


def serve_workers(
    build: Callable[[int], Any], *, host: str, port: int, workers: int, **uvicorn_options: Any
) -> None:
    """Serve the app `build(index)` returns in `workers` processes on `host`:`port`."""
    sock = _listen(host, port)
    children: dict[int, tuple[int, float]] = {}  # pid → (worker index, start time)
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                run_app(build(index), sockets=[sock], **uvicorn_options)
            except BaseException:
                log.exception("worker %d failed", index)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = (index, time.monotonic())

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            _signal(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(workers):
        spawn(index)
    log.info("%d workers serving on http://%s:%d", workers, host, port)
    failed = False
    while children:
        pid, status = os.wait()
        if pid not in children:
            continue
        index, started = children.pop(pid)
        if stopping:
            continue
        code = os.waitstatus_to_exitcode(status)
        if time.monotonic() - started < _MIN_UPTIME:
            log.error("worker %d exited (%d) right after starting; stopping", index, code)
            failed = True
            stop(signal.SIGTERM, None)
            continue
        log.warning("worker %d (pid %d) exited (%d); starting it again", index, pid, code)
        spawn(index)
    sock.close()
    if failed:
        sys.exit(1)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def run_app(app: Any, *, sockets: list[socket.socket] | None = None, **uvicorn_options: Any
            ) -> None:
    """Serve `app` with uvicorn until SIGTERM or SIGINT (as ``uvicorn.run``); on either,
    open streams end at once and other requests get `GRACEFUL_SHUTDOWN` seconds. The
    process's cyclic garbage collector is tuned for a long-lived server first (`_tune_gc`)."""
    _tune_gc()
    uvicorn_options.setdefault("timeout_graceful_shutdown", GRACEFUL_SHUTDOWN)
    StreamEndingServer(uvicorn.Config(app, **uvicorn_options)).run(sockets=sockets)


def _tune_gc() -> None:
    """Before serving: what start-up built (modules, models, their
    schemas) frozen out of the cyclic collector's scans, and its youngest generation
    collected every 10,000 allocations rather than 700. A server keeps tens of thousands of
    long-lived objects (caches, loaded resources) that every full collection walks: with
    the defaults the collector took 0.73 s of a rack's 9.5 s to Ready, 0.18 s with these
    (examples/rack-reconciliation through bench/rack_provision.py, under load)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


class StreamEndingServer(uvicorn.Server):
    """uvicorn's server, ending the app's open watches and ``/events`` streams as it starts
    to stop (`Service.drain`): it waits for every open response before it stops, and those
    never end by themselves."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        service = getattr(getattr(self.config.app, "state", None), "service", None)
        if service is not None:
            service.drain()
        await super().shutdown(sockets)
