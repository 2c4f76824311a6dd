"""`JWKSCache`: an issuer's signing keys from its JWKS URL, cached and refreshed politely.

Keys are fetched at start and kept; a token naming a ``kid`` we do not have triggers a
refresh (the issuer rotated its keys), and so does age (`max_age`, so a key the issuer
withdrew stops working). Refreshes are rate-limited to one per `min_interval` and shared by
every request waiting for one, so a flood of tokens with made-up kids costs the issuer one
request per interval, not one per token. When a refresh fails the keys we had stay in use.
Keys are parsed by PyJWT (`PyJWK`); symmetric (``oct``) keys and keys not meant for
signatures are ignored, since a JWKS is public.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from ._errors import KeysUnavailable

__all__ = ["JWKSCache"]

log = logging.getLogger("fabrica.auth")


class JWKSCache:
    def __init__(
        self,
        url: str,
        *,
        min_interval: float = 10.0,
        max_age: float = 300.0,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"the JWKS URL must be http(s)://..., not {url!r}")
        self.url = url
        self.min_interval = min_interval
        self.max_age = max_age
        self.clock = clock
        self.fetches = 0  # attempts, for tests and logs
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._loaded_at: float | None = None
        self._tried_at: float | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self._http.aclose()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for `kid` (or the only key, for a token without one); None if unknown
        even after a refresh. `KeysUnavailable` when no key could ever be fetched."""
        if self._stale():
            await self.refresh()
        found = self._lookup(kid)
        if found is None and self._may_refresh():
            await self.refresh()
            found = self._lookup(kid)
        if found is None and self._loaded_at is None:
            raise KeysUnavailable(f"cannot fetch the signing keys from {self.url}")
        return found

    async def refresh(self) -> None:
        """Fetch the key set, unless another caller fetched it while we waited."""
        attempt = self.fetches
        async with self._lock:
            if self.fetches != attempt or not self._may_refresh():
                return
            self.fetches += 1
            self._tried_at = self.clock()
            try:
                keys = _parse(await self._fetch())
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("could not refresh the signing keys from %s: %s", self.url, exc)
                return
            self._keys, self._loaded_at = keys, self.clock()
            log.info("signing keys from %s: %s", self.url,
                     ", ".join(str(kid) for kid in keys) or "none usable")

    async def _fetch(self) -> Any:
        response = await self._http.get(self.url, headers={"Accept": "application/json"})
        response.raise_for_status()
        return response.json()

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid) if kid is not None else None

    def _stale(self) -> bool:
        if self._loaded_at is None:
            return self._may_refresh()
        return self.clock() - self._loaded_at > self.max_age and self._may_refresh()

    def _may_refresh(self) -> bool:
        return self._tried_at is None or self.clock() - self._tried_at >= self.min_interval


def _parse(document: Any) -> dict[str | None, jwt.PyJWK]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    keys: dict[str | None, jwt.PyJWK] = {}
    for data in document["keys"]:
        if not isinstance(data, dict) or data.get("kty") == "oct":
            continue  # a symmetric key in a public document would let anyone sign
        if data.get("use", "sig") != "sig":
            continue
        try:
            keys[data.get("kid")] = jwt.PyJWK(data)
        except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
            log.warning("ignoring a key of the JWKS (kid %s): %s", data.get("kid"), exc)
    return keys
