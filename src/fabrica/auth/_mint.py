"""`mint_token`: an HS256 development token, as ``python -m PKG.server token`` prints it."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence

import jwt

from ._tokens import MIN_SECRET_BYTES

__all__ = ["mint_token", "parse_duration"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def mint_token(
    secret: str,
    sub: str,
    roles: Sequence[str],
    ttl: float = 3600,
    *,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> str:
    """A token for `sub` with `roles` (as the ``scope`` claim), valid for `ttl` seconds."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret must be at least {MIN_SECRET_BYTES} bytes long")
    if not sub:
        raise ValueError("the subject (sub) must not be empty")
    if ttl <= 0:
        raise ValueError("the lifetime must be more than 0 seconds")
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {"sub": sub, "scope": " ".join(roles), "iat": issued,
                                 "nbf": issued, "exp": issued + int(ttl),
                                 "jti": uuid.uuid4().hex}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` → seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 1h or 7d")
    return float(match.group(1)) * _UNIT[match.group(2)]
