"""The transactional outbox: a write's events, recorded in the write's own transaction.

A SQL write given an `Outbox` calls it with the document as stored (its new
resourceVersion included, or the last state for a delete), inside the transaction, and
inserts the messages it returns into ``fabrica_outbox``: the write and its events commit
together or not at all, so a process killed right after a commit, or an event bus that is
down, delays the events but never loses them. A relay (`fabrica.server`) reads them in
``seq`` order, publishes them and deletes them (`SQLStorage.outbox_pending`,
`SQLStorage.outbox_done`).

Order: the outbox row is inserted after the resource row is written (and so locked), so
the writes of one resource get increasing ``seq`` in commit order, and a relay that sees a
row sees every earlier row of that resource too. Storage stays ignorant of events: a
message is a subject, an id and a payload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

from ._base import Document

__all__ = ["Outbox", "OutboxEntry", "OutboxMessage", "OutboxStats"]


class OutboxMessage(NamedTuple):
    subject: str
    id: str
    payload: str


class OutboxEntry(NamedTuple):
    """A recorded message: `seq` orders them; `resource` is ``collection/uid``."""

    seq: int
    resource: str
    subject: str
    id: str
    payload: str
    created_at: datetime


class OutboxStats(NamedTuple):
    backlog: int
    oldest: datetime | None


Outbox = Callable[[Document], Sequence[OutboxMessage]]
