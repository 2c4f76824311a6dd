"""``?limit=`` and the ``continue`` token: keyset paging on the resource name."""

from __future__ import annotations

import base64
import binascii
import json

from ...resource import is_dns1123_subdomain
from ._errors import APIError

__all__ = ["MAX_LIMIT", "decode_continue", "encode_continue", "parse_limit"]

MAX_LIMIT = 1000


def parse_limit(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    # ASCII digits only: str.isdigit and int() also take "²" and "٣"; and few of them, as
    # int() refuses more than 4,300.
    if not (value.isascii() and value.isdigit() and len(value) <= 9) \
            or not 0 <= int(value) <= MAX_LIMIT:
        raise APIError(400, f"limit must be an integer from 0 to {MAX_LIMIT}",
                       [{"field": "limit", "message": f"0..{MAX_LIMIT}"}])
    return int(value) or None


def encode_continue(after_name: str) -> str:
    """The token of the page after the resource named `after_name`: that name itself.

    Clients treat it as opaque; the server reads any DNS-1123 name in it, which OpenAPI can
    state as a pattern, so anything else is plainly not a token (400).
    """
    return after_name


def decode_continue(token: str | None) -> str | None:
    token = (token or "").strip()
    if not token:
        return None
    if is_dns1123_subdomain(token):
        return token
    try:  # the base64 JSON of releases before: a client may be walking pages across one
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        after = data["after"]
        # The token only ever carries a resource name: anything else (a NUL, a surrogate,
        # a name no resource can have) was not issued here and must not reach a query.
        if data.get("v") != 1 or not isinstance(after, str) or not is_dns1123_subdomain(after):
            raise ValueError
        return after
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise APIError(400, "invalid continue token",
                       [{"field": "continue", "message": "not a token this server issued"}]
                       ) from None
