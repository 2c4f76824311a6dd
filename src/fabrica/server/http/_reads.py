"""The responses of reads (get, list), their headers encoded once per API version.

A cached get costs little besides building its response, and Starlette's `Response`
encodes every header of every response again (name lowered, both halves to latin-1) and
looks through them for Content-Length and Content-Type. What a read answers never varies
but for its ETag, its length and the list's own headers, so the rest is encoded once.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

__all__ = ["RawResponse", "ReadHeaders"]

RawHeader = tuple[bytes, bytes]


class RawResponse(Response):
    """A response whose headers are already encoded (ASGI's list of byte pairs)."""

    def __init__(self, status_code: int, body: bytes, raw_headers: list[RawHeader]) -> None:
        self.status_code = status_code
        self.body = body
        self.background = None
        self.raw_headers = raw_headers


class ReadHeaders:
    """A read's headers in one API version: `headers` (the version's), then Content-Length
    and Content-Type, as `Response` would send them."""

    __slots__ = ("_fixed", "_type")

    def __init__(self, headers: Mapping[str, str], media_type: str) -> None:
        self._fixed = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                       for k, v in headers.items()]
        self._type = (b"content-type", media_type.encode("latin-1"))

    def response(self, status_code: int, body: bytes | None, *first: RawHeader
                 ) -> Response:
        """`first` (an ETag, a list's headers) and the version's headers; with a `body`,
        its length and type; without (a 304), neither."""
        if body is None:
            return RawResponse(status_code, b"", [*first, *self._fixed])
        return RawResponse(status_code, body, [*first, *self._fixed,
                                               (b"content-length", str(len(body)).encode()),
                                               self._type])
