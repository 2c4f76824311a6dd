"""TokenVerifier with real RSA and EC keys: what it accepts, and every refusal."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fabrica.auth import (
    InvalidToken,
    Principal,
    PublicKey,
    TokenVerifier,
    mint_token,
    parse_duration,
    roles_from_claims,
)
from tests._support.tokens import SECRET, KeyPair, hs_token

RSA = KeyPair("RSA", kid="rsa-1")
EC = KeyPair("EC", kid="ec-1")


def verifier(*keys: KeyPair, secret: str | None = None, **options: object) -> TokenVerifier:
    return TokenVerifier(public_keys=[PublicKey.from_pem(k.public_pem) for k in keys],
                         secret=secret, **options)  # type: ignore[arg-type]


async def refused(v: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        await v.verify(token)
    return caught.value.description


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, object], payload: dict[str, object], key: bytes | None) -> str:
    """A token assembled by hand, as an attacker would: HMAC with `key`, or no signature."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{b64(signature)}"


def claims(**extra: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "mallory", "exp": now + 300, "iat": now, "scope": "admin", **extra}


# ---- accepted ----------------------------------------------------------------------------

async def test_rs256_and_es256_tokens_with_pem_keys() -> None:
    v = verifier(RSA, EC)
    assert await v.verify(RSA.token("alice", scope="viewer editor")) == Principal(
        "alice", ("viewer", "editor"))
    assert await v.verify(EC.token("bob", roles=["admin"])) == Principal("bob", ("admin",))


async def test_hs256_development_tokens_with_the_secret() -> None:
    v = verifier(secret=SECRET)
    assert await v.verify(hs_token("carol", scope="viewer")) == Principal("carol", ("viewer",))


@pytest.mark.parametrize(("claims_", "roles"), [
    ({"scope": "viewer editor"}, ("viewer", "editor")),
    ({"scope": ["viewer", "editor"]}, ("viewer", "editor")),
    ({"roles": ["admin"], "scope": "viewer"}, ("viewer", "admin")),
    ({"roles": "admin viewer", "scope": "viewer"}, ("viewer", "admin")),
    ({"scope": 7, "roles": [1, "", "x"]}, ("x",)),
    ({}, ()),
])
def test_roles_come_from_scope_and_roles(claims_: dict[str, object], roles: tuple[str, ...]
                                         ) -> None:
    assert roles_from_claims(claims_) == roles


async def test_exp_and_nbf_have_sixty_seconds_of_leeway() -> None:
    v = verifier(RSA)
    now = int(time.time())
    assert await v.verify(RSA.token(exp=now - 30))
    assert await v.verify(RSA.token(nbf=now + 30))
    assert "expired" in await refused(v, RSA.token(exp=now - 90))
    assert "not valid yet" in await refused(v, RSA.token(nbf=now + 90))


async def test_issuer_and_audience_when_configured() -> None:
    v = verifier(RSA, issuer="https://tokensmith.example", audience="fabrica")
    good = RSA.token(iss="https://tokensmith.example", aud="fabrica")
    assert (await v.verify(good)).sub == "alice"
    assert await v.verify(RSA.token(iss="https://tokensmith.example", aud=["x", "fabrica"]))
    assert "issuer" in (await refused(v, RSA.token(iss="https://evil", aud="fabrica"))).lower()
    assert "audience" in (await refused(v, RSA.token(iss="https://tokensmith.example",
                                                     aud="other"))).lower()
    assert "iss" in await refused(v, RSA.token(aud="fabrica"))
    assert "aud" in await refused(v, RSA.token(iss="https://tokensmith.example"))


async def test_an_audience_in_the_token_is_fine_when_none_is_configured() -> None:
    assert await verifier(RSA).verify(RSA.token(aud="anything"))


# ---- refused -----------------------------------------------------------------------------

async def test_alg_none_is_refused() -> None:
    v = verifier(RSA, secret=SECRET)
    token = forge({"alg": "none", "typ": "JWT"}, claims(), None)
    assert "'none' is not accepted" in await refused(v, token)
    assert "names no algorithm" in await refused(v, forge({"typ": "JWT"}, claims(), None))


async def test_hs256_signed_with_the_rsa_public_key_is_refused() -> None:
    """The confusion attack: an HS256 token whose HMAC key is the server's public key."""
    token = forge({"alg": "HS256", "typ": "JWT"}, claims(), RSA.public_pem)
    assert "HS256 tokens are not accepted" in await refused(verifier(RSA), token)
    assert "signature" in await refused(verifier(RSA, secret=SECRET), token)


async def test_each_key_verifies_only_its_own_family() -> None:
    rsa_only, ec_only = verifier(RSA), verifier(EC)
    assert "no ES256 signing key" in await refused(rsa_only, EC.token())
    assert "no RS256 signing key" in await refused(ec_only, RSA.token())
    p384 = KeyPair("EC", kid="p384", curve=ec.SECP384R1())
    assert "no ES384 signing key" in await refused(ec_only, p384.token())


async def test_a_token_signed_by_another_key_or_tampered_with() -> None:
    v = verifier(RSA)
    assert "signature" in await refused(v, KeyPair("RSA").token())
    head, body, sig = RSA.token("alice", scope="viewer").split(".")
    evil = b64(json.dumps(claims(sub="alice")).encode())
    assert "signature" in await refused(v, f"{head}.{evil}.{sig}")


async def test_exp_and_sub_are_required() -> None:
    v = verifier(RSA)
    assert "exp" in await refused(v, jwt.encode({"sub": "a"}, RSA.private, algorithm="RS256"))
    assert "sub" in await refused(v, RSA.token(None))


@pytest.mark.parametrize("exp", [10**400, -(10**400), 10**4000],
                         ids=["1e400", "-1e400", "1e4000"])
async def test_an_expiry_beyond_any_float_is_a_token_like_any_other(exp: int) -> None:
    """``exp`` is a JSON number of any size: 10**400 is far in the future (the token is
    good, and cached until the end of time), -10**400 long past; neither is a 500."""
    v = verifier(secret=SECRET)
    token = forge({"alg": "HS256", "typ": "JWT"}, {"sub": "alice", "exp": exp},
                  SECRET.encode())
    if exp > 0:
        assert (await v.verify(token)).sub == "alice"
        assert (await v.verify(token)).sub == "alice"  # from the cache
    else:
        assert "expired" in await refused(v, token)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "Bearer x.y.z", "e30"])
async def test_malformed_tokens(token: str) -> None:
    assert "malformed" in await refused(verifier(RSA, secret=SECRET), token)


async def test_a_wrong_secret_and_hs_without_a_secret() -> None:
    assert "signature" in await refused(verifier(secret=SECRET), hs_token(secret="x" * 40))
    assert "not accepted" in await refused(verifier(RSA), hs_token())


def test_weak_or_missing_key_material_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="no key source"):
        TokenVerifier()
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenVerifier(secret="short")
    with pytest.raises(ValueError, match="at least 2048 bits"):
        PublicKey.from_pem(KeyPair("RSA", bits=1024).public_pem)
    with pytest.raises(ValueError, match="not a PEM public key"):
        PublicKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ValueError, match="cannot read"):
        PublicKey.from_file("/nonexistent/key.pem")


# ---- the cache ---------------------------------------------------------------------------

async def test_verified_tokens_are_cached_until_they_expire(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    v = verifier(RSA)
    exp = int(time.time()) - 58  # expired, but within the leeway for a second or two more
    token = RSA.token(exp=exp)
    decodes = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decodes.append(1) or real(*a, **k))
    for _ in range(5):
        assert (await v.verify(token)).sub == "alice"
    assert len(decodes) == 1
    while time.time() <= exp + 60.05:  # past exp and its leeway: the cache lets go
        await asyncio.sleep(0.05)
    assert "expired" in await refused(v, token)
    assert len(decodes) == 2


async def test_the_cache_is_bounded() -> None:
    v = verifier(RSA, cache_size=2)
    tokens = [RSA.token(f"user{n}") for n in range(5)]
    for token in tokens:
        await v.verify(token)
    assert len(v._cache._entries) == 2


# ---- development tokens -----------------------------------------------------------------

async def test_minted_tokens_verify_with_the_same_secret() -> None:
    token = mint_token(SECRET, "alice", ["viewer", "editor"], 600, issuer="me", audience="you")
    v = verifier(secret=SECRET, issuer="me", audience="you")
    assert await v.verify(token) == Principal("alice", ("viewer", "editor"))
    body = jwt.decode(token, SECRET, algorithms=["HS256"], audience="you")
    assert body["exp"] - body["iat"] == 600 and body["scope"] == "viewer editor"
    with pytest.raises(ValueError, match="at least 32 bytes"):
        mint_token("short", "alice", [])


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800), ("1.5h", 5400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "1w", "h", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
