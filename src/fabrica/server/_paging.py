"""``?limit=`` and the opaque ``continue`` token: keyset paging on the resource name."""

from __future__ import annotations

import base64
import binascii
import json

from ._errors import APIError

__all__ = ["MAX_LIMIT", "decode_continue", "encode_continue", "parse_limit"]

MAX_LIMIT = 1000


def parse_limit(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or not 0 <= int(value) <= MAX_LIMIT:
        raise APIError(400, f"limit must be an integer from 0 to {MAX_LIMIT}",
                       [{"field": "limit", "message": f"0..{MAX_LIMIT}"}])
    return int(value) or None


def encode_continue(after_name: str) -> str:
    raw = json.dumps({"v": 1, "after": after_name}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str | None) -> str | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        after = data["after"]
        if data.get("v") != 1 or not isinstance(after, str):
            raise ValueError
        return after
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise APIError(400, "invalid continue token",
                       [{"field": "continue", "message": "not a token this server issued"}]
                       ) from None
