"""API version negotiation: which version a request reads and writes in, and what the
response says about it (SPEC section 9).

- Reads pick a version with ``Accept: application/json;version=V`` (several ranges: the
  first served one by quality, then order); an Accept that names only versions the kind does
  not serve is a 406.
- Writes say which version their body is in with ``Content-Type: ...;version=V`` (any of
  the JSON and patch media types), or with the body's own ``schemaVersion`` (or an
  ``apiVersion`` naming a served version, as a Kubernetes client sends it). An unknown
  version in the Content-Type is a 415; an unknown ``schemaVersion`` a 400. A write answers
  in the Accept's version when it names one, else in the body's.
- Nothing named: the kind's default version (its storage version unless it says otherwise).

Every answer says ``X-Schema-Version: V``; a deprecated version adds ``Warning: 299`` and
``Deprecation: true``. These are API versions, unrelated to the spec history of
``versioning=True`` kinds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from ...resource import ApiVersions, ResourceInfo
from ._errors import APIError

__all__ = [
    "SCHEMA_VERSION_HEADER",
    "Negotiated",
    "Negotiator",
    "accept_versions",
    "media_version",
    "warning_header",
]

SCHEMA_VERSION_HEADER = "X-Schema-Version"
_ACCEPT_CACHE_SIZE = 256


@dataclass(frozen=True)
class Negotiated:
    """The version a request's body is in, and the one its response is in."""

    body: str
    response: str


class Negotiator:
    """Negotiation for one kind, over its `ApiVersions`."""

    def __init__(self, versions: ApiVersions) -> None:
        self.versions = versions
        info = versions.kind.resource_info
        self._views = {v: dataclasses.replace(info, spec_type=versions.spec_type(v),
                                              status_type=versions.status_type(v))
                       for v in versions.names}
        self._headers = {v: self._make_headers(v) for v in versions.names}
        self._by_accept: dict[str | None, str] = {}

    def read(self, request: Request) -> str:
        """The version to answer in: from Accept, else the default; 406 when none is served."""
        return self.read_accept(request.headers.get("accept"))

    def read_accept(self, accept: str | None) -> str:
        """`read` of an Accept value, remembered per value (clients send a few, again and
        again: parsing one costs more than the rest of negotiating a cached get)."""
        version = self._by_accept.get(accept)
        if version is None:
            version = self._read_accept(accept)
            if len(self._by_accept) >= _ACCEPT_CACHE_SIZE:
                self._by_accept.clear()
            self._by_accept[accept] = version
        return version

    def _read_accept(self, accept: str | None) -> str:
        wanted = accept_versions(accept)
        if not wanted:
            return self.versions.default
        for version in wanted:
            if self.versions.is_served(version):
                return version
        raise APIError(406, f"{self._kind} is not served in API version "
                       f"{' or '.join(repr(v) for v in wanted)}; served: {self._served}",
                       [{"field": "Accept", "message": f"served versions: {self._served}"}])

    def write(self, request: Request, body: Any = None) -> Negotiated:
        """The version of a write's body (Content-Type, then the body itself) and of its
        response (Accept, else the body's)."""
        version = media_version(request.headers.get("content-type"))
        if version is not None and not self.versions.is_served(version):
            raise APIError(415, f"{self._kind} is not served in API version {version!r}; "
                           f"served: {self._served}",
                           [{"field": "Content-Type", "message": f"served versions: "
                             f"{self._served}"}])
        in_body = self._body_version(body)
        if version is not None and in_body is not None and in_body != version:
            raise APIError(400, f"the body says schemaVersion {in_body!r} but Content-Type "
                           f"says version={version}",
                           [{"field": "schemaVersion", "message": f"must be {version}"}])
        chosen = version or in_body or self.versions.default
        answer = self.read(request) if accept_versions(request.headers.get("accept")) else chosen
        return Negotiated(body=chosen, response=answer)

    def view(self, version: str) -> ResourceInfo:
        """The kind as `version` shows it: its Spec and Status classes (for parsing bodies)."""
        return self._views[version]

    def headers(self, version: str) -> dict[str, str]:
        return dict(self._headers[version])

    def media_type(self, version: str) -> str:
        """``application/json``, with ``;version=V`` when V is not the default version (the
        body is then of the ``application/json;version=V`` schema OpenAPI documents)."""
        if version == self.versions.default:
            return "application/json"
        return f"application/json;version={version}"

    @property
    def _kind(self) -> str:
        return self.versions.kind.resource_info.kind

    @property
    def _served(self) -> str:
        return ", ".join(self.versions.names)

    def _body_version(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return None
        spec_fields = self.versions.kind.resource_info.spec_type.model_fields
        declared = body.get("schemaVersion")
        if declared is not None and "schemaVersion" not in spec_fields:
            if not isinstance(declared, str) or not self.versions.is_served(declared):
                raise APIError(400, f"schemaVersion {declared!r} is not served for "
                               f"{self._kind}; served: {self._served}",
                               [{"field": "schemaVersion",
                                 "message": f"served versions: {self._served}"}])
            return declared
        api_version = body.get("apiVersion")
        # apiVersion was always accepted and ignored; it selects only a version served here.
        if isinstance(api_version, str) and self.versions.is_served(api_version):
            return api_version
        return None

    def _make_headers(self, version: str) -> dict[str, str]:
        headers = {SCHEMA_VERSION_HEADER: version}
        if self.versions.multiple:
            headers["Vary"] = "Accept, Content-Type"
        if self.versions.deprecated(version):
            headers["Deprecation"] = "true"
        return headers

    def deprecation(self, version: str) -> list[str]:
        """The warning text of a deprecated version (to join a response's other warnings)."""
        if not self.versions.deprecated(version):
            return []
        return [f"{self._kind} {version} is deprecated; use {self.versions.storage}"]


def media_version(value: str | None) -> str | None:
    """The ``version`` parameter of one media type (``application/json;version=v1``)."""
    if not value:
        return None
    return _params(value.split(";")[1:]).get("version")


def accept_versions(value: str | None) -> list[str]:
    """The versions an Accept header names, best first (quality, then order); q=0 refused."""
    if not value or "version" not in value:
        return []
    ranked: list[tuple[float, int, str]] = []
    for index, media_range in enumerate(value.split(",")):
        params = _params(media_range.split(";")[1:])
        version = params.get("version")
        if version is None:
            continue
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 1.0
        if quality > 0:
            ranked.append((-quality, index, version))
    return [version for _, _, version in sorted(ranked)]


def _params(parts: list[str]) -> dict[str, str]:
    params = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if sep:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            params[key.strip().lower()] = value
    return params


def warning_header(texts: list[str]) -> dict[str, str]:
    """``Warning: 299 - "..."`` for each text (JSON's string syntax is a valid, all-ASCII
    HTTP quoted-string, so no text can break the header)."""
    if not texts:
        return {}
    return {"Warning": ", ".join(f"299 - {json.dumps(text)}" for text in texts)}
