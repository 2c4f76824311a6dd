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
import time
from dataclasses import dataclass

import httpx

from ._calls import Call
from ._errors import ConnectionFailed, error_from_response

__all__ = ["Retry", "send", "send_async"]

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
    attempt = 0
    while True:
        try:
            response = http.send(call.build(http))
        except httpx.TransportError as exc:
            if not retry.allows(call, exc, attempt):
                raise _connection_failed(http, exc) from exc
            time.sleep(retry.delay(attempt))
            attempt += 1
            continue
        return _checked(response)


async def send_async(http: httpx.AsyncClient, call: Call, retry: Retry) -> httpx.Response:
    """The async twin of `send`."""
    attempt = 0
    while True:
        try:
            response = await http.send(call.build(http))
        except httpx.TransportError as exc:
            if not retry.allows(call, exc, attempt):
                raise _connection_failed(http, exc) from exc
            await asyncio.sleep(retry.delay(attempt))
            attempt += 1
            continue
        return _checked(response)


def _checked(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise error_from_response(response)
    return response


def _connection_failed(
    http: httpx.Client | httpx.AsyncClient, exc: httpx.TransportError
) -> ConnectionFailed:
    reason = str(exc) or type(exc).__name__
    return ConnectionFailed(str(http.base_url).rstrip("/"), reason)
