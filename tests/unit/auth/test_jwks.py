"""JWKSCache against a JWKS served over HTTP by a local server: caching, rotation, the
rate limit on refreshes, and an issuer that is down."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fabrica.auth import InvalidToken, JWKSCache, KeysUnavailable, TokenVerifier
from tests._support.tokens import JWKSServer, KeyPair

OLD = KeyPair("RSA", kid="2024")
NEW = KeyPair("RSA", kid="2025")
EC = KeyPair("EC", kid="ec")


@pytest.fixture
def issuer() -> Iterator[JWKSServer]:
    server = JWKSServer(OLD, EC)
    yield server
    server.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier(jwks: JWKSCache) -> TokenVerifier:
    return TokenVerifier(jwks=jwks)


async def test_keys_are_fetched_once_and_cached(issuer: JWKSServer) -> None:
    jwks = JWKSCache(issuer.url)
    v = verifier(jwks)
    try:
        for n in range(5):
            assert (await v.verify(OLD.token(f"u{n}"))).sub == f"u{n}"
        assert (await v.verify(EC.token("ec-user"))).sub == "ec-user"
        assert issuer.hits == 1
    finally:
        await jwks.close()


async def test_rotation_unknown_kid_refreshes_and_old_keys_stop(issuer: JWKSServer) -> None:
    clock = Clock()
    jwks = JWKSCache(issuer.url, min_interval=10, clock=clock)
    v = verifier(jwks)
    try:
        await v.verify(OLD.token("before"))
        issuer.keys = [NEW]  # the issuer rotates
        clock.now += 11
        assert (await v.verify(NEW.token("after"))).sub == "after"
        assert issuer.hits == 2
        with pytest.raises(InvalidToken, match="no RS256 signing key with kid '2024'"):
            await v.verify(OLD.token("fresh-token-of-the-withdrawn-key"))
    finally:
        await jwks.close()


async def test_a_flood_of_unknown_kids_costs_one_fetch_per_interval(issuer: JWKSServer) -> None:
    clock = Clock()
    jwks = JWKSCache(issuer.url, min_interval=10, clock=clock)
    v = verifier(jwks)
    try:
        await jwks.refresh()
        clock.now += 11
        forged = [KeyPair("RSA", kid=f"made-up-{n}") for n in range(3)]
        attempts = [v.verify(forged[n % 3].token()) for n in range(60)]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        assert all(isinstance(r, InvalidToken) for r in results)
        assert issuer.hits == 2  # the start, then one refresh for all 60
        clock.now += 11
        await asyncio.gather(*[v.verify(forged[0].token()) for _ in range(10)],
                             return_exceptions=True)
        assert issuer.hits == 3
    finally:
        await jwks.close()


async def test_keys_older_than_max_age_are_fetched_again(issuer: JWKSServer) -> None:
    clock = Clock()
    jwks = JWKSCache(issuer.url, min_interval=10, max_age=300, clock=clock)
    try:
        assert await jwks.key("2024") is not None
        issuer.keys = [NEW]
        clock.now += 301
        assert await jwks.key("2024") is None  # withdrawn by the issuer: gone here too
        assert await jwks.key("2025") is not None
        assert issuer.hits == 2
    finally:
        await jwks.close()


async def test_an_issuer_that_is_down(issuer: JWKSServer) -> None:
    clock = Clock()
    jwks = JWKSCache(issuer.url, min_interval=10, clock=clock)
    v = verifier(jwks)
    try:
        issuer.fail = True
        with pytest.raises(KeysUnavailable):
            await v.verify(OLD.token())
        issuer.fail = False
        with pytest.raises(KeysUnavailable):  # within the interval: no new attempt
            await v.verify(OLD.token())
        assert issuer.hits == 1
        clock.now += 11
        assert (await v.verify(OLD.token("back"))).sub == "back"
        issuer.fail = True  # down again later: the keys we have stay in use
        clock.now += 1000
        assert (await v.verify(OLD.token("still"))).sub == "still"
    finally:
        await jwks.close()


async def test_symmetric_and_encryption_keys_in_a_jwks_are_ignored(issuer: JWKSServer) -> None:
    oct_key = {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}
    enc = {**NEW.jwk, "use": "enc"}
    broken = {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}

    class Raw:
        jwk: dict[str, object]

    issuer.keys = []
    for data in (oct_key, enc, broken, OLD.jwk):
        raw = Raw()
        raw.jwk = data
        issuer.keys.append(raw)  # type: ignore[arg-type]
    jwks = JWKSCache(issuer.url)
    try:
        assert await jwks.key("hmac") is None
        assert await jwks.key("2025") is None
        assert await jwks.key("2024") is not None
    finally:
        await jwks.close()


async def test_a_token_without_kid_uses_the_only_key(issuer: JWKSServer) -> None:
    issuer.keys = [OLD]
    jwks = JWKSCache(issuer.url)
    try:
        assert (await verifier(jwks).verify(OLD.token("nokid", kid=False))).sub == "nokid"
    finally:
        await jwks.close()


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="must be http"):
        JWKSCache("file:///etc/passwd")
