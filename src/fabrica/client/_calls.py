"""The requests of the fabrica HTTP API, described without doing any I/O.

A `Call` says what to send (method, path, query, JSON body, headers); the sync and async
clients differ only in how they send it. Keeping the wire format here, once, means the two
clients cannot drift apart, and each one stays a thin loop around ``httpx``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from ..resource import ResourceInfo, Verb, sensitive_fields
from ._errors import MethodNotAllowed

__all__ = [
    "PATCH_TYPES",
    "Call",
    "PatchType",
    "create_call",
    "delete_call",
    "events_call",
    "get_call",
    "if_match_value",
    "list_call",
    "next_page_call",
    "patch_call",
    "replace_call",
    "replace_status_call",
    "to_json",
    "version_call",
    "versions_call",
    "warnings_of",
    "watch_call",
    "with_api_version",
]

PatchType = Literal["merge", "json", "shorthand"]

PATCH_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "shorthand": "application/shorthand-patch+json",
}
# Safe to resend after a broken connection: doing them twice has the effect of doing them once.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})


@dataclass(frozen=True)
class Call:
    """One HTTP request; ``url`` is relative to the client's base URL unless absolute."""

    method: str
    url: str
    params: Mapping[str, str | int] = field(default_factory=dict)
    body: Any = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False  # a response that stays open: no read timeout

    @property
    def idempotent(self) -> bool:
        return self.method in _IDEMPOTENT

    def build(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        headers = dict(self.headers)
        content = None
        if self.body is not None:
            content = json.dumps(self.body, separators=(",", ":")).encode()
            headers["Content-Type"] = self.content_type
        request = http.build_request(self.method, self.url, params=dict(self.params) or None,
                                     content=content, headers=headers)
        if self.stream:  # wait for the connection as usual, for the next event forever
            timeout = httpx.Timeout(http.timeout.connect, read=None)
            request.extensions["timeout"] = timeout.as_dict()
        return request


HEALTH = Call("GET", "/health")
READY = Call("GET", "/ready")


def to_json(value: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """A spec or status as the server spells it: camelCase JSON names, JSON-safe values."""
    if isinstance(value, BaseModel):
        # A sensitive field the caller did not set (one read from the server, which never
        # sends it) is left out, so the server keeps its value instead of the default.
        unset = {name for name, _ in sensitive_fields(type(value))
                 if name not in value.model_fields_set}
        return value.model_dump(mode="json", by_alias=True, exclude=unset or None)
    return dict(value)


def with_api_version(call: Call, version: str | None) -> Call:
    """`call` in API `version`: ``Accept: application/json;version=V``, and its body's
    ``Content-Type`` with ``;version=V`` (SPEC section 9). None leaves it as it is."""
    if version is None:
        return call
    return dataclasses.replace(
        call, content_type=f"{call.content_type};version={version}",
        headers={"Accept": f"application/json;version={version}", **call.headers})


_WARNING = re.compile(r'\s*\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"')


def warnings_of(response: httpx.Response) -> list[str]:
    """The texts of a response's ``Warning: 299 - "..."`` headers (a deprecated version...)."""
    texts = []
    for header in response.headers.get_list("warning"):
        for match in _WARNING.finditer(header):
            try:
                texts.append(json.loads(f'"{match.group(1)}"'))
            except ValueError:
                texts.append(match.group(1))
    return texts


def if_match_value(version: str) -> str:
    """``17`` → ``"17"``: an ETag is a quoted resourceVersion; quoted values and ``*`` pass."""
    if version == "*" or version.startswith(('"', 'W/"')):
        return version
    return f'"{version}"'


def list_call(info: ResourceInfo, selector: str | None, limit: int | None,
              field_selector: str | None = None) -> Call:
    _offered(info, "list")
    params: dict[str, str | int] = {}
    if selector:
        params["labelSelector"] = selector
    if field_selector:
        params["fieldSelector"] = field_selector
    if limit is not None:
        params["limit"] = limit
    return Call("GET", f"/{info.plural}", params=params)


def watch_call(
    info: ResourceInfo,
    resource_version: str | None,
    selector: str | None,
    bookmarks: bool,
    timeout_seconds: int | None,
    field_selector: str | None = None,
) -> Call:
    """``GET /PLURAL?watch=true`` (SPEC section 8): the changes after `resource_version`
    (without one: every current match as ADDED first), one JSON event per line."""
    _offered(info, "watch")
    params: dict[str, str | int] = {"watch": "true"}
    if resource_version:
        params["resourceVersion"] = resource_version
    if selector:
        params["labelSelector"] = selector
    if field_selector:
        params["fieldSelector"] = field_selector
    if bookmarks:
        params["allowWatchBookmarks"] = "true"
    if timeout_seconds is not None:
        params["timeoutSeconds"] = timeout_seconds
    return Call("GET", f"/{info.plural}", params=params, stream=True)


def next_page_call(response: httpx.Response) -> Call | None:
    """The ``Link: <...>; rel="next"`` page, resolved against the URL that answered."""
    link = response.links.get("next")
    if not link or not link.get("url"):
        return None
    return Call("GET", str(response.url.join(link["url"])))


def get_call(info: ResourceInfo, id: str) -> Call:
    _offered(info, "get")
    return Call("GET", _item(info, id))


def create_call(info: ResourceInfo, body: Mapping[str, Any]) -> Call:
    _offered(info, "create")
    return Call("POST", f"/{info.plural}", body=dict(body))


def replace_call(
    info: ResourceInfo, id: str, body: Mapping[str, Any], if_match: str | None
) -> Call:
    _offered(info, "update")
    return Call("PUT", _item(info, id), body=dict(body), headers=_preconditions(if_match))


def replace_status_call(
    info: ResourceInfo, id: str, status: Mapping[str, Any], if_match: str | None
) -> Call:
    _offered(info, "status")
    return Call("PUT", _item(info, id) + "/status", body=dict(status),
                headers=_preconditions(if_match))


def patch_call(
    info: ResourceInfo,
    id: str,
    patch: Any,
    patch_type: str,
    if_match: str | None,
    *,
    status: bool = False,
) -> Call:
    _offered(info, "status" if status else "patch")
    if patch_type not in PATCH_TYPES:
        raise ValueError(f"patch_type must be one of {', '.join(PATCH_TYPES)}, not {patch_type!r}")
    url = _item(info, id) + ("/status" if status else "")
    return Call("PATCH", url, body=patch, content_type=PATCH_TYPES[patch_type],
                headers=_preconditions(if_match))


def delete_call(info: ResourceInfo, id: str, if_match: str | None) -> Call:
    _offered(info, "delete")
    return Call("DELETE", _item(info, id), headers=_preconditions(if_match))


def versions_call(info: ResourceInfo, id: str) -> Call:
    _offered(info, "versions")
    return Call("GET", _item(info, id) + "/versions")


def version_call(info: ResourceInfo, id: str, version: str, method: str = "GET") -> Call:
    _offered(info, "versions")
    return Call(method, _item(info, id) + "/versions/" + quote(version, safe=""))


def events_call(pattern: str | None) -> Call:
    """``GET /events``: the server-sent CloudEvents whose type matches `pattern`."""
    return Call("GET", "/events", params={"type": pattern} if pattern else {},
                headers={"Accept": "text/event-stream"}, stream=True)


def _offered(info: ResourceInfo, verb: Verb) -> None:
    """Refuse, without a request, what the kind does not offer: a verb its ``verbs=``
    leaves out (as the server would, 405), or any verb of an ``internal`` kind, which has
    no HTTP routes at all."""
    rules = info.rules
    if not rules.served:
        raise ValueError(f"{info.kind} is internal (exposure='internal'): it is not served "
                         "over HTTP, only reconcilers and hooks use it")
    if not rules.allows(verb):
        offered = ", ".join(sorted(rules.verbs)) or "none"
        raise MethodNotAllowed(405, f"{info.kind} does not offer {verb} (its verbs: "
                               f"{offered})")


def _item(info: ResourceInfo, id: str) -> str:
    if not id:
        raise ValueError(f"a {info.kind} id (uid or name) is required")
    return f"/{info.plural}/{quote(id, safe='')}"


def _preconditions(if_match: str | None) -> dict[str, str]:
    return {"If-Match": if_match_value(if_match)} if if_match else {}
