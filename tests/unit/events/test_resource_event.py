"""`ResourceEvent`: the one parser of what an event says about a resource (the controller's
source and the client's event watcher both read events through it)."""

from __future__ import annotations

import json

from fabrica.events import CloudEvent, ResourceEvent, condition_event, lifecycle_event

RESOURCE = {"metadata": {"name": "node-1", "uid": "node-0000000a", "labels": {"rack": "r1"},
                         "ownerReferences": [{"kind": "Blade", "uid": "blade-0000000b",
                                              "name": "b"}, {"kind": 3}]}}


def updated(update_type: str | None = "status") -> CloudEvent:
    return lifecycle_event("updated", "Node", "nodes", "node-0000000a", "node-1",
                           resource=RESOURCE,
                           metadata={"updateType": update_type} if update_type else None)


def test_a_lifecycle_event():
    about = ResourceEvent.parse(updated())
    assert about is not None and about.is_lifecycle and about.status_only
    assert (about.kind, about.uid, about.name, about.action) == (
        "Node", "node-0000000a", "node-1", "updated")
    assert about.labels == {"rack": "r1"}
    assert about.owners == [("Blade", "blade-0000000b")]  # the malformed reference is skipped


def test_the_wire_form_parses_the_same():
    """What the client's watcher gets from ``GET /events``: the JSON object."""
    event = updated("spec")
    from_json = ResourceEvent.parse(json.loads(event.to_json()))
    assert from_json == ResourceEvent.parse(event)
    assert from_json is not None and not from_json.status_only


def test_a_condition_event_names_its_resource_without_an_action():
    event = condition_event("Node", "nodes", "node-0000000a", "node-1",
                            {"type": "Ready", "status": "True"})
    about = ResourceEvent.parse(event)
    assert about is not None and not about.is_lifecycle and about.name == "node-1"
    assert about.owners == [] and about.labels == {}


def test_events_about_no_resource():
    assert ResourceEvent.parse(CloudEvent(type="x.y", source="s", data={"a": 1})) is None
    assert ResourceEvent.parse({"type": "x", "data": "text"}) is None
    odd = ResourceEvent.parse({"resourcekind": "Node", "resourceuid": "n-1", "data": [1]})
    assert odd is not None and odd.action is None and odd.resource == {}
