"""`StreamResponse`: a stream ends when the server stops it, also one whose client reads
nothing (its ``send`` never returns): a stopping server must not wait for such a client.
Driven over ASGI by hand, the client's side being the ``send`` and ``receive`` the
server would give."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fabrica.server.http._streaming import StreamResponse
from tests._support.wait import eventually

SCOPE = {"type": "http", "method": "GET", "path": "/x", "headers": []}


class Client:
    """The ASGI side of a client that reads `reads` body messages, then nothing."""

    def __init__(self, reads: int) -> None:
        self.reads = reads
        self.messages: list[dict[str, Any]] = []
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and self.reads <= 0:
            await asyncio.Event().wait()  # the connection is full: never returns
        self.reads -= message["type"] == "http.response.body"
        self.messages.append(message)


async def endless(closed: list[bool]) -> AsyncIterator[bytes]:
    try:
        while True:
            yield b"x" * 1024
            await asyncio.sleep(0)
    finally:
        closed.append(True)


async def test_a_stream_whose_client_reads_nothing_is_cut_when_stopped():
    stop = asyncio.Event()
    closed: list[bool] = []
    client = Client(reads=3)
    response = StreamResponse(endless(closed), {}, stop.wait, grace=0.2)
    serving = asyncio.create_task(response(SCOPE, client.receive, client.send))
    await eventually(lambda: len(client.messages) >= 4)  # the head, three chunks: stuck
    assert not serving.done()
    stop.set()
    async with asyncio.timeout(5):
        await serving
    assert closed == [True]  # the source was closed too
    assert client.messages[-1]["more_body"] is True  # no end: the client takes nothing


async def test_a_stream_that_ends_when_stopped_ends_its_body():
    stop = asyncio.Event()
    client = Client(reads=100)

    async def until_stopped() -> AsyncIterator[bytes]:
        yield b"first"
        await stop.wait()

    response = StreamResponse(until_stopped(), {}, stop.wait, grace=1.0)
    serving = asyncio.create_task(response(SCOPE, client.receive, client.send))
    await eventually(lambda: len(client.messages) >= 2)
    stop.set()
    async with asyncio.timeout(5):
        await serving
    assert [m.get("body") for m in client.messages[1:]] == [b"first", b""]
    assert client.messages[-1]["more_body"] is False


async def test_a_client_that_leaves_ends_the_stream():
    closed: list[bool] = []
    client = Client(reads=100)
    response = StreamResponse(endless(closed), {}, asyncio.Event().wait)
    serving = asyncio.create_task(response(SCOPE, client.receive, client.send))
    await eventually(lambda: len(client.messages) >= 3)
    client.gone.set()
    async with asyncio.timeout(5):
        await serving
    assert closed == [True]
