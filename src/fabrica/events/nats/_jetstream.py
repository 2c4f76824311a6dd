"""The JetStream stream a service's events are kept in: its setting, setup and lookup.

`NatsBus` publishes every event through JetStream (the server answers once the event is
stored) with the header ``Nats-Msg-Id`` = the CloudEvent ``id``, so a re-sent event is
dropped by the server within ``duplicate_window``. The stream holds
``PREFIX.>`` and keeps events by limits (age, bytes, count): any NATS client can read it
from the start, and a consumer that was down reads what it missed.

`find_sequence` finds the stream sequence of an event by its id (``Nats-Msg-Id``), newest
first, so that ``GET /events`` with ``Last-Event-ID`` resumes right after that event.

`ensure_stream` creates the stream, or reuses the one already there: it adds our subjects
and applies the configured limits when they differ, and never touches the stored events.
Two streams cannot hold overlapping subjects, which is what two services on one NATS with
the same event prefix would ask for: that is refused with a message naming both.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from .._bus import EventBusError

__all__ = ["JetStream", "ensure_stream", "find_sequence", "intersect_subjects"]

log = logging.getLogger("fabrica.events")

_SUBJECTS_OVERLAP = 10065  # JetStream's error code: subjects overlap with an existing stream
DEFAULT_MAX_AGE = 7 * 24 * 3600.0
DEFAULT_MAX_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class JetStream:
    """Where and how long a service's events are kept.

    `stream` is the stream's name; `subjects` what it holds (``("io.fabrica.>",)``).
    Limits: `max_age` seconds, `max_bytes`, `max_msgs` (0 or -1: unlimited); the oldest
    events go first. `duplicate_window` is how long the server remembers ids to drop
    re-sent events. `heartbeat` is how often, in seconds, an idle subscription hears from
    the server: two missed heartbeats and it resumes after the last event it saw.
    """

    stream: str
    subjects: tuple[str, ...]
    max_age: float = DEFAULT_MAX_AGE
    max_bytes: int = DEFAULT_MAX_BYTES
    max_msgs: int = -1
    duplicate_window: float = 120.0
    heartbeat: float = 1.0

    def __post_init__(self) -> None:
        if not self.stream or any(c in self.stream for c in ". *>\t\r\n/\\"):
            raise ValueError(f"invalid JetStream stream name {self.stream!r}: use letters, "
                             "digits, '-' and '_'")
        if not self.subjects:
            raise ValueError("a JetStream stream needs at least one subject")
        if self.max_age < 0 or self.duplicate_window <= 0 or self.heartbeat <= 0:
            raise ValueError("JetStream ages and windows must be positive numbers of seconds")

    @classmethod
    def for_prefix(cls, stream: str, prefix: str, **limits: float) -> JetStream:
        """The stream of a service whose event types all start with `prefix`."""
        return cls(stream, (f"{prefix}.>",), **limits)  # type: ignore[arg-type]

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.stream,
            description="CloudEvents of a fabrica service",
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            max_age=self.max_age or None,
            max_bytes=self.max_bytes if self.max_bytes > 0 else -1,
            max_msgs=self.max_msgs if self.max_msgs > 0 else -1,
            duplicate_window=self.duplicate_window,
            num_replicas=1,
        )


async def ensure_stream(js: JetStreamContext, setting: JetStream, url: str) -> None:
    """Create `setting`'s stream, or reuse it (adding subjects, applying limits)."""
    wanted = setting.config()
    try:
        try:
            info = await js.stream_info(setting.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(wanted)
            log.info("JetStream stream %s created for %s", setting.stream,
                     ", ".join(setting.subjects))
            return
        have = info.config
        subjects = list(have.subjects or [])
        missing = [s for s in setting.subjects if s not in subjects]
        if missing or _limits(have) != _limits(wanted):
            have.subjects = subjects + missing
            have.max_age, have.max_bytes = wanted.max_age, wanted.max_bytes
            have.max_msgs, have.duplicate_window = wanted.max_msgs, wanted.duplicate_window
            await js.update_stream(have)
            log.info("JetStream stream %s reused, updated to subjects %s and limits %s",
                     setting.stream, ", ".join(have.subjects), _limits(wanted))
        else:
            log.info("JetStream stream %s reused (%d events kept)", setting.stream,
                     info.state.messages)
    except nats.js.errors.APIError as exc:
        if exc.err_code == _SUBJECTS_OVERLAP:
            raise EventBusError(
                f"JetStream stream {setting.stream} cannot hold {', '.join(setting.subjects)} "
                f"on NATS at {url}: another stream already holds overlapping subjects "
                "(give each service its own --event-prefix and --nats-stream)") from exc
        raise EventBusError(f"cannot set up JetStream stream {setting.stream} on NATS at "
                            f"{url}: {exc.description or exc}") from exc
    except (TimeoutError, nats.errors.NoRespondersError, nats.js.errors.Error) as exc:
        raise EventBusError(f"cannot set up JetStream stream {setting.stream} on NATS at "
                            f"{url}: is JetStream enabled (nats-server -js)? {exc!r}") from exc


async def find_sequence(
    js: JetStreamContext, setting: JetStream, event_id: str, *, limit: int = 100_000,
    window: int = 1024,
) -> int | None:
    """The stream sequence of the event whose ``Nats-Msg-Id`` is `event_id`, or None when
    the stream no longer (or never) held it among its newest `limit` events.

    JetStream indexes messages by sequence and subject, not by id, so this reads headers
    only, backwards in growing windows from the newest event: a client reconnecting after a
    short break finds its event in the first window, and a made-up id costs at most `limit`
    headers (a bound, since any client can send one).
    """
    state = (await js.stream_info(setting.stream)).state
    end, scanned = state.last_seq, 0
    while end >= max(state.first_seq, 1) and scanned < limit:
        start = max(state.first_seq, end - min(window, limit - scanned) + 1, 1)
        found = await _scan(js, setting, event_id, start, end)
        if found is not None:
            return found
        scanned += end - start + 1
        end, window = start - 1, window * 4
    return None


async def _scan(js: JetStreamContext, setting: JetStream, event_id: str, start: int,
                end: int) -> int | None:
    """Sequences `start`..`end` of the stream, headers only, looking for `event_id`."""
    info = await js.add_consumer(setting.stream, ConsumerConfig(
        description="fabrica Last-Event-ID lookup", headers_only=True,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start,
        ack_policy=AckPolicy.NONE, mem_storage=True, inactive_threshold=10.0, num_replicas=1,
    ))
    sub = await js.pull_subscribe_bind(info.name, setting.stream)
    try:
        seq = start - 1
        while seq < end:
            try:
                msgs = await sub.fetch(min(end - seq, 1024), timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                return None  # fewer than asked: the rest was deleted meanwhile
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                if seq > end:
                    return None
                if (msg.headers or {}).get("Nats-Msg-Id") == event_id:
                    return seq
        return None
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await js.delete_consumer(setting.stream, info.name)


def _limits(config: StreamConfig) -> tuple[object, ...]:
    age = round(config.max_age or 0.0, 3)
    return (age, config.max_bytes, config.max_msgs, round(config.duplicate_window or 0.0, 3))


def intersect_subjects(a: str, b: str) -> str | None:
    """The NATS subject pattern matching what both `a` and `b` match, or None if nothing.

    ``>`` ∩ ``io.fabrica.>`` = ``io.fabrica.>``; ``a.*.c`` ∩ ``a.b.>`` = ``a.b.c``.
    """
    left, right = a.split("."), b.split(".")
    out: list[str] = []
    for i, (x, y) in enumerate(zip(left, right, strict=False)):
        if x == ">":
            return ".".join(out + right[i:])
        if y == ">":
            return ".".join(out + left[i:])
        if x != y and "*" not in (x, y):
            return None
        out.append(y if x == "*" else x)
    return ".".join(out) if len(left) == len(right) else None
