"""Sending a `Call`: retries with exponential backoff, and typed errors for failures.

Only requests that are safe to repeat are resent after a broken connection: GET, PUT and
DELETE (idempotent by HTTP's definition; PUT and DELETE also carry any ``If-Match`` the
caller gave, so a repeat cannot clobber someone else's write). POST and PATCH are resent
only when the connection was never made, because then the server cannot have seen them;
anything later (a read timeout, a dropped connection) might have applied, so the error goes
to the caller, who knows whether repeating is right.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx

from ._calls import Call
from ._errors import ConnectionFailed, error_from_response

__all__ = ["Retry", "open_stream", "open_stream_async", "send", "send_async", "send_unchecked",
           "send_unchecked_async"]

_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True)
class Retry:
    """How often and how patiently to resend; delays are ``backoff * 2**n``, capped."""

    retries: int = 3
    backoff: float = 0.2
    max_backoff: float = 5.0

    def allows(self, call: Call, exc: httpx.TransportError, attempt: int) -> bool:
        if attempt >= self.retries or isinstance(exc, httpx.UnsupportedProtocol):
            return False
        return call.idempotent or isinstance(exc, _NEVER_SENT)

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2**attempt))


def send(http: httpx.Client, call: Call, retry: Retry) -> httpx.Response:
    """Send `call`, resending per `retry`; raise the typed error for a failed response."""
    return _checked(_send(http, call, retry))


async def send_async(http: httpx.AsyncClient, call: Call, retry: Retry) -> httpx.Response:
    """The async twin of `send`."""
    return _checked(await _send_async(http, call, retry))


@contextlib.contextmanager
def open_stream(http: httpx.Client, call: Call, retry: Retry) -> Iterator[httpx.Response]:
    """Send `call` and hold its response open for reading as it arrives (``GET /events``).

    Connecting is retried like `send`; a connection that breaks while reading raises
    `ConnectionFailed`, and leaving the block closes the response.
    """
    response = _send(http, call, retry, stream=True)
    try:
        if response.is_error:
            response.read()
            raise error_from_response(response)
        yield response
    except httpx.TransportError as exc:
        raise _connection_failed(http, exc) from exc
    finally:
        response.close()


@contextlib.asynccontextmanager
async def open_stream_async(
    http: httpx.AsyncClient, call: Call, retry: Retry
) -> AsyncIterator[httpx.Response]:
    """The async twin of `open_stream`."""
    response = await _send_async(http, call, retry, stream=True)
    try:
        if response.is_error:
            await response.aread()
            raise error_from_response(response)
        yield response
    except httpx.TransportError as exc:
        raise _connection_failed(http, exc) from exc
    finally:
        await response.aclose()


def send_unchecked(http: httpx.Client, call: Call, retry: Retry) -> httpx.Response:
    """`send` without turning an error status into an exception (``/ready``'s 503 has a body
    worth reading)."""
    return _send(http, call, retry)


async def send_unchecked_async(http: httpx.AsyncClient, call: Call, retry: Retry
                               ) -> httpx.Response:
    """The async twin of `send_unchecked`."""
    return await _send_async(http, call, retry)


def _send(http: httpx.Client, call: Call, retry: Retry, stream: bool = False) -> httpx.Response:
    attempt = 0
    while True:
        try:
            return http.send(call.build(http), stream=stream)
        except httpx.TransportError as exc:
            if not retry.allows(call, exc, attempt):
                raise _connection_failed(http, exc) from exc
        time.sleep(retry.delay(attempt))
        attempt += 1


async def _send_async(
    http: httpx.AsyncClient, call: Call, retry: Retry, stream: bool = False
) -> httpx.Response:
    attempt = 0
    while True:
        try:
            return await http.send(call.build(http), stream=stream)
        except httpx.TransportError as exc:
            if not retry.allows(call, exc, attempt):
                raise _connection_failed(http, exc) from exc
        await asyncio.sleep(retry.delay(attempt))
        attempt += 1


def _checked(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise error_from_response(response)
    return response


def _connection_failed(
    http: httpx.Client | httpx.AsyncClient, exc: httpx.TransportError
) -> ConnectionFailed:
    reason = str(exc) or type(exc).__name__
    return ConnectionFailed(str(http.base_url).rstrip("/"), reason)
