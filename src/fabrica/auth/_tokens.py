"""`TokenVerifier`: bearer JWTs in, a `Principal` out, or `InvalidToken` saying why.

The header's ``alg`` picks the key family before anything is verified, and each key only
ever verifies its own family: HS256 only with the configured secret, RS*/PS* only with RSA
keys, ES* only with the EC key of the matching curve. So ``alg: none`` is refused, and so is
the classic confusion attack (an HS256 token "signed" with the server's RSA public key),
since a public key is never handed to HMAC. PyJWT does every check (signature, ``exp`` and
``nbf`` with `leeway`, ``iss``, ``aud``, key sizes); this module only chooses the key.

Verified tokens are cached (bounded, least recently used out) until they expire, so a
client sending the same token on every request pays for the signature check once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ._errors import InvalidToken
from ._jwks import JWKSCache
from ._principal import Principal, roles_from_claims

__all__ = ["DEFAULT_LEEWAY", "MIN_SECRET_BYTES", "PublicKey", "TokenVerifier"]

DEFAULT_LEEWAY = 60.0
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash
_HMAC = ("HS256",)
_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_MIN_RSA_BITS = 2048
_NEVER = 2.0**53


@dataclass(frozen=True)
class PublicKey:
    """An RSA or EC public key (PEM), e.g. ``--auth-public-key FILE``."""

    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey

    @classmethod
    def from_pem(cls, pem: bytes | str, source: str = "the key") -> PublicKey:
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            key = load_pem_public_key(data)
        except ValueError as exc:
            raise ValueError(f"{source} is not a PEM public key: {exc}") from None
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < _MIN_RSA_BITS:
                raise ValueError(f"{source}: RSA keys need at least {_MIN_RSA_BITS} bits")
            return cls(key)
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC.values():
            return cls(key)
        raise ValueError(f"{source} is neither an RSA key nor an EC key on P-256/384/521")

    @classmethod
    def from_file(cls, path: str | Path) -> PublicKey:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the public key {path}: {exc.strerror}") from None
        return cls.from_pem(data, str(path))

    def fits(self, alg: str) -> bool:
        if isinstance(self.key, rsa.RSAPublicKey):
            return alg in _RSA
        return _EC.get(alg) == self.key.curve.name


class TokenVerifier:
    """Checks tokens against any of: a JWKS, PEM public keys, an HS256 development secret.

    `issuer` and `audience`, when given, must match ``iss`` and ``aud``. `clock` is the
    seam for tests (seconds since the epoch).
    """

    def __init__(
        self,
        *,
        jwks: JWKSCache | None = None,
        public_keys: Sequence[PublicKey] = (),
        secret: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = DEFAULT_LEEWAY,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if jwks is None and not public_keys and not secret:
            raise ValueError("no key source: give a JWKS URL, a public key or a secret")
        if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the secret must be at least {MIN_SECRET_BYTES} bytes long "
                             "(RFC 7518 section 3.2)")
        self.jwks = jwks
        self.public_keys = tuple(public_keys)
        self.secret = secret.encode() if secret else None
        self.issuer = issuer or None
        self.audience = audience or None
        self.leeway = leeway
        self.clock = clock
        self._cache = _TokenCache(cache_size)

    def describe(self) -> str:
        sources = []
        if self.jwks is not None:
            sources.append(f"JWKS {self.jwks.url}")
        sources += [f"{_family(k)} public key" for k in self.public_keys]
        if self.secret:
            sources.append("HS256 secret (development)")
        checks = [f"iss={self.issuer}"] if self.issuer else []
        checks += [f"aud={self.audience}"] if self.audience else []
        return ", ".join(sources) + (f"; checking {', '.join(checks)}" if checks else "")

    async def verify(self, token: str) -> Principal:
        now = self.clock()
        cached = self._cache.get(token, now - self.leeway)
        if cached is not None:
            return cached
        claims = await self._decode(token)
        principal = _principal(claims)
        self._cache.put(token, principal, _expiry(claims["exp"]))
        return principal

    async def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str):
            raise InvalidToken("the token names no algorithm")
        key = await self._key(alg, kid if isinstance(kid, str) else None)
        try:
            return jwt.decode(
                token, key, algorithms=[alg], issuer=self.issuer, audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None,
                         "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet (nbf)") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(str(exc) or type(exc).__name__) from None

    async def _key(self, alg: str, kid: str | None) -> Any:
        if alg in _HMAC:
            if self.secret is None:
                raise InvalidToken(f"{alg} tokens are not accepted by this server")
            return self.secret
        if alg not in _RSA and alg not in _EC:
            raise InvalidToken(f"the algorithm {alg!r} is not accepted")
        if self.jwks is not None:
            found = await self.jwks.key(kid)
            # PyJWT binds a JWK to its algorithm (its "alg", else RS256 / the curve's ES*)
            if found is not None and found.algorithm_name == alg:
                return found
        for public in self.public_keys:
            if public.fits(alg):
                return public.key
        if self.jwks is not None and kid is not None:
            raise InvalidToken(f"no {alg} signing key with kid {kid!r}")
        raise InvalidToken(f"no {alg} signing key is configured")


def _family(key: PublicKey) -> str:
    return "RSA" if isinstance(key.key, rsa.RSAPublicKey) else f"EC {key.key.curve.name}"


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("the token has no subject (sub)")
    if not isinstance(claims.get("exp"), int | float):
        raise InvalidToken("the token has no expiry (exp)")
    return Principal(sub, roles_from_claims(claims))


def _expiry(exp: float) -> float:
    """``exp`` as a float: a JSON number may be 10**400, which no float holds, and any time
    past 2**53 seconds is as good as never for a cache."""
    return float(min(exp, _NEVER))


class _TokenCache:
    """token → (principal, exp): tokens already verified, until they expire."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def get(self, token: str, oldest_exp: float) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry[1] < oldest_exp:
            del self._entries[token]  # expired: decode again, which says so
            return None
        self._entries.move_to_end(token)
        return entry[0]

    def put(self, token: str, principal: Principal, exp: float) -> None:
        if self.capacity <= 0:
            return
        self._entries[token] = (principal, exp)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
