"""Reading ``GET /events``: a server-sent event stream in, CloudEvent JSON objects out.

The server sends one CloudEvent per SSE message, as compact JSON on ``data:`` lines, and
``:`` comments to keep idle connections open. Parsing follows the SSE rules the server's
side relies on (multi-line data joins with newlines; an unterminated last message is
dropped), line by line, so the sync and async clients share it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from ._errors import FabricaError

__all__ = ["event_objects", "event_objects_async"]

OnOpen = Callable[[], None] | None


class _Messages:
    """Feeds lines in; hands back each complete message's data."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._named = False

    def feed(self, line: str) -> str | None:
        if not line:  # a blank line ends the message
            data, self._data = self._data, []
            named, self._named = self._named, False
            return "\n".join(data) if data and not named else None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            self._data.append(value)
        elif field == "event":  # fabrica.dropped, fabrica.resync: notices, not CloudEvents
            self._named = value not in ("", "message")
        return None  # comments (":...") and other fields (id, retry) carry no data


def event_objects(lines: Iterable[str], on_open: OnOpen = None) -> Iterator[dict[str, Any]]:
    """The events of an SSE stream. `on_open` runs at its first line, which the server sends
    once the subscription is live: whatever it reads, no later event is missed."""
    messages, pending = _Messages(), on_open
    for line in lines:
        if pending is not None:
            pending()
            pending = None
        if (data := messages.feed(line)) is not None:
            yield _event(data)


async def event_objects_async(
    lines: AsyncIterable[str], on_open: OnOpen = None
) -> AsyncIterator[dict[str, Any]]:
    messages, pending = _Messages(), on_open
    async for line in lines:
        if pending is not None:
            pending()
            pending = None
        if (data := messages.feed(line)) is not None:
            yield _event(data)


def _event(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        raise FabricaError(200, f"the event stream sent something that is not a JSON object: "
                                f"{data[:200]!r}")
    return event
