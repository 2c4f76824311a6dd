"""NATS for tests: names of their own on the shared server, and private servers to kill.

The shared server is ``nats://127.0.0.1:4222`` (``FABRICA_TEST_NATS_URL`` for another).
Tests that use JetStream take a prefix and a stream name of their own (`names`) and delete
their stream afterwards (`drop_stream`), so parallel runs never meet. Fault tests start
`NatsServer` (JetStream on, its own store directory, a free port) and stop only that one.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import nats
import nats.js.errors

from tests._support.e2e import free_port
from tests._support.wait import eventually_sync

URL = os.environ.get("FABRICA_TEST_NATS_URL", "nats://127.0.0.1:4222")


def names() -> tuple[str, str]:
    """A unique (event prefix, stream name) pair."""
    token = secrets.token_hex(5)
    return f"t{token}.io.fabrica", f"T{token.upper()}"


async def drop_stream(stream: str, url: str = URL) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


def drop_stream_sync(stream: str, url: str = URL) -> None:
    asyncio.run(drop_stream(stream, url))


class NatsServer:
    """A private nats-server with JetStream on a free port; `stop` and `start` again keep
    its store directory, so streams survive as on a real restart."""

    def __init__(self, store: Path) -> None:
        self.binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.store, self.port = store, free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd",
                str(self.store)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        eventually_sync(self._listening, timeout=10)

    def _listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
            self.proc = None
