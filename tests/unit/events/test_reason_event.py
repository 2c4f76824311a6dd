"""`reason_event` and `check_reason`: the shape of a reconciler's own event (SPEC section 5)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fabrica.events import (
    LIFECYCLE_ACTIONS,
    CloudEvent,
    check_reason,
    lifecycle_event,
    reason_event,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


def test_same_fields_as_a_lifecycle_event_with_action_the_reason_and_details():
    event = reason_event("provisioned", "Rack", "racks", "rack-0000abcd", "r1",
                         prefix="acme.dc", source="inv", details={"nodes": 16}, id="e-1",
                         now=NOW)
    lifecycle = lifecycle_event("updated", "Rack", "racks", "rack-0000abcd", "r1",
                                prefix="acme.dc", source="inv", now=NOW)
    assert event.to_dict() == {
        "specversion": "1.0",
        "id": "e-1",
        "source": "inv/resources/Rack/rack-0000abcd",
        "type": "acme.dc.rack.provisioned",
        "subject": "racks/rack-0000abcd",
        "time": "2026-01-02T03:04:05.000006Z",
        "datacontenttype": "application/json",
        "resourcekind": "Rack",
        "resourceuid": "rack-0000abcd",
        "action": "provisioned",
        "data": {
            "action": "provisioned",
            "resourceKind": "Rack",
            "resourceUID": "rack-0000abcd",
            "resourceName": "r1",
            "changeTime": "2026-01-02T03:04:05.000006Z",
            "details": {"nodes": 16},
        },
    }
    for same in ("source", "subject", "resourcekind", "resourceuid"):
        assert getattr(event, same) == getattr(lifecycle, same)
    assert set(lifecycle.data) | {"details"} == set(event.data)
    assert CloudEvent.from_json(event.to_json()) == event


def test_without_details_there_is_no_details_field_and_the_id_is_fresh():
    one = reason_event("rebooted", "Node", "nodes", "node-00000001", "n1")
    two = reason_event("rebooted", "Node", "nodes", "node-00000001", "n1")
    assert "details" not in one.data and one.id != two.id
    assert one.type == "io.fabrica.node.rebooted"


@pytest.mark.parametrize("reason", sorted(LIFECYCLE_ACTIONS))
def test_lifecycle_actions_are_reserved(reason):
    with pytest.raises(ValueError, match="reserved for the lifecycle events"):
        check_reason(reason)
    with pytest.raises(ValueError, match="reserved"):
        reason_event(reason, "Rack", "racks", "rack-00000001", "r1")


@pytest.mark.parametrize("reason", [
    "", "Provisioned", "PROVISIONED", "provisioned.done", "rack.created", "*", "**", ">",
    "pro visioned", "9lives", "re-booted", "re_booted", "provisioned ", "é", "a" * 64, None, 3,
])
def test_a_reason_that_is_not_a_lower_case_word_is_refused(reason):
    with pytest.raises(ValueError, match="not a lower-case word"):
        check_reason(reason)


@pytest.mark.parametrize("reason", ["provisioned", "v2", "a", "a" * 63, "createdagain"])
def test_lower_case_words_are_reasons(reason):
    assert check_reason(reason) == reason
