"""Long-lived streamed responses (watches, ``/events``) that the server can end.

A server waits for its open responses before it stops, and these never end by themselves;
a client that reads nothing even holds its stream inside ``send``, waiting for room. So a
`StreamResponse` races three things: its chunks running out, the client leaving (its
``http.disconnect``), and `stop` (server shutdown, or a watch ended for memory). On `stop`
the stream has `grace` seconds to end by itself (a watch sends its last lines and ends the
body); then it is cancelled and the body ended if the connection takes that within half a
second (a client that reads nothing gets its connection closed instead). Either way the
response returns within `grace` and half a second of `stop`, which is what bounds a
server's stop (SPEC section 6: within 10 seconds of SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.types import Receive, Scope, Send

__all__ = ["StreamResponse"]

log = logging.getLogger("fabrica.server")

#: Seconds a stopped stream's connection gets to take the end of the body.
_END_TIMEOUT = 0.5
#: The last chunk of a stream that failed: its error, in the stream's own format.
OnError = Callable[[Exception], bytes]


class StreamResponse:
    """A streamed 200 of `chunks`, ended by the client, by its end, or by `stop`."""

    def __init__(self, chunks: AsyncIterator[bytes], headers: dict[str, str],
                 stop: Callable[[], Awaitable[Any]], *, grace: float = 0.5,
                 on_error: OnError | None = None,
                 on_end: Callable[[], Awaitable[None]] | None = None) -> None:
        self.chunks = chunks
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in headers.items()]
        self._stop = stop
        self._grace = grace
        self._on_error = on_error
        self._on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = asyncio.ensure_future(self._stream(send))
        listener = asyncio.ensure_future(_disconnected(receive))
        stop = asyncio.ensure_future(self._stop())
        tasks = (stream, listener, stop)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if stop in done and stream not in done and listener not in done:
                await self._end_stopped(stream, listener, send)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await _close(self.chunks)
            if self._on_end is not None:
                await self._on_end()

    async def _end_stopped(self, stream: asyncio.Future[None], listener: asyncio.Future[None],
                           send: Send) -> None:
        done, _ = await asyncio.wait((stream, listener), timeout=self._grace,
                                     return_when=asyncio.FIRST_COMPLETED)
        if done:
            return
        stream.cancel()
        await asyncio.gather(stream, return_exceptions=True)
        # The body's end, if the connection takes it now; a client that reads nothing
        # never makes room for it, and gets its connection closed by the server instead.
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(_END_TIMEOUT):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        try:
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:  # the client left while we were sending
            return
        except Exception as exc:  # the source failed mid-stream: say so, as the last chunk
            log.exception("a stream failed")
            if self._on_error is not None:
                await send({"type": "http.response.body", "body": self._on_error(exc),
                            "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            return


async def _close(chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
