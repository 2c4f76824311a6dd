"""Events as Kafka records: CloudEvents' Kafka protocol binding, structured mode.

The value is the structured CloudEvent JSON (`CloudEvent.to_json`), the header
``content-type`` says so, and the key is the resource's uid (the ``resourceuid``
extension, else the ``subject``), so that the default partitioner of every Kafka client
puts one resource's events on one partition, in order. An event about no resource has no
key and lands on any partition.
"""

from __future__ import annotations

import json

from .._cloudevent import CloudEvent

__all__ = ["CONTENT_TYPE", "decode", "encode", "id_needle"]

CONTENT_TYPE = b"application/cloudevents+json; charset=UTF-8"
HEADERS = [("content-type", CONTENT_TYPE)]


def encode(event: CloudEvent) -> tuple[bytes | None, bytes]:
    """The (key, value) of `event`'s record; its headers are `HEADERS`."""
    uid = event.resourceuid or event.subject
    return (uid.encode() if uid else None), event.to_json().encode()


def decode(value: bytes | None) -> CloudEvent:
    """The event a record carries; ValueError if its value is not a structured CloudEvent."""
    if not value:
        raise ValueError("the record has no value")
    return CloudEvent.from_json(value)


def id_needle(event_id: str) -> bytes:
    """Bytes every record of the event `event_id` holds: a cheap test before decoding."""
    return json.dumps(event_id, ensure_ascii=False).encode()
