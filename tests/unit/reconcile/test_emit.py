"""`ResourceReconciler.emit`: a reconciler's own events, on ``/events`` like any other.

The server runs in uvicorn on a free port (SSE needs a streaming transport); a reader thread
collects what ``GET /events?type=...`` sends.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fabrica import Condition, Model, Resource, ServiceSettings, find_condition
from fabrica.reconcile import ResourceReconciler, Result
from fabrica.server import create_app
from fabrica.storage import FileStorage
from tests._support.app import serve_in_process
from tests._support.thread_server import ThreadServer
from tests._support.wait import eventually_sync


class SensorSpec(Model):
    threshold: float = 50.0
    reading: float = 0.0
    alarm_reason: str = "overheated"
    details: Any = None


class SensorStatus(Model):
    overheated: bool = False
    observed_generation: int = 0
    conditions: list[Condition] = []


class Sensor(Resource[SensorSpec, SensorStatus], prefix="sensor"):
    pass


runs: dict[str, int] = {}


class SensorReconciler(ResourceReconciler[Sensor]):
    """Emits `alarm_reason` once each time the reading crosses the threshold upwards; the
    fact that it did is the status field `overheated`, saved right after."""

    kind = Sensor

    async def reconcile_sensor(self, sensor: Sensor) -> Result | None:
        runs[sensor.name] = runs.get(sensor.name, 0) + 1
        hot = sensor.spec.reading > sensor.spec.threshold
        if hot and not sensor.status.overheated:
            details = sensor.spec.details if sensor.spec.details is not None else {
                "reading": sensor.spec.reading, "threshold": sensor.spec.threshold}
            self.emit(sensor, sensor.spec.alarm_reason, data=details)
        sensor.status.overheated = hot
        return None


class Listener:
    """Reads ``/events?type=PATTERN`` in a thread; `events` grows as they arrive."""

    def __init__(self, url: str, pattern: str) -> None:
        self.events: list[dict[str, Any]] = []
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url, pattern), daemon=True)
        self._thread.start()
        assert self._connected.wait(10), "no SSE connection"

    def _read(self, url: str, pattern: str) -> None:
        try:
            with httpx.stream("GET", f"{url}/events", params={"type": pattern},
                              timeout=30) as response:
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self._connected.set()
                    elif line.startswith("data: "):
                        self.events.append(json.loads(line[6:]))
        except httpx.TransportError:
            pass  # the server stopped at the end of the test


@pytest.fixture
def app(tmp_path) -> Any:
    settings = ServiceSettings(project="thermo", package="thermo", events=True,
                               reconcile=True, reconcile_workers=2)
    return create_app([Sensor], FileStorage(tmp_path / "data"), settings=settings,
                      reconcilers=[SensorReconciler])


@pytest.fixture
def url(app) -> Iterator[str]:
    with ThreadServer(app) as base:
        yield base


def ready(http: httpx.Client, name: str, generation: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        sensor = http.get(f"/sensors/{name}").json()
        cond = find_condition([Condition.model_validate(c)
                               for c in sensor["status"].get("conditions", [])], "Ready")
        return sensor if cond is not None and cond.observed_generation == generation else None
    return eventually_sync(check)


def test_an_emitted_event_arrives_on_events_with_the_exact_fields(url):
    alarms = Listener(url, "io.fabrica.sensor.overheated")
    everything = Listener(url, "**")
    with httpx.Client(base_url=url, timeout=10) as http:
        made = http.post("/sensors", json={"name": "t1", "threshold": 50, "reading": 71.5})
        uid = made.json()["metadata"]["uid"]
        eventually_sync(lambda: alarms.events)
        sensor = ready(http, "t1", 1)
    assert sensor["status"]["overheated"] is True
    (event,) = alarms.events
    assert set(event) == {"specversion", "id", "source", "type", "subject", "time",
                          "datacontenttype", "resourcekind", "resourceuid", "action", "actor",
                          "data"}
    assert uuid.UUID(event["id"])
    assert event["time"].endswith("Z")
    assert {k: v for k, v in event.items() if k not in ("id", "time", "data")} == {
        "specversion": "1.0",
        "source": f"thermo/resources/Sensor/{uid}",
        "type": "io.fabrica.sensor.overheated",
        "subject": f"sensors/{uid}",
        "datacontenttype": "application/json",
        "resourcekind": "Sensor",
        "resourceuid": uid,
        "action": "overheated",
        "actor": "system:controller",  # the reconciler emitted it
    }
    assert event["data"] == {
        "action": "overheated", "resourceKind": "Sensor", "resourceUID": uid,
        "resourceName": "t1", "changeTime": event["data"]["changeTime"],
        "details": {"reading": 71.5, "threshold": 50.0},
    }
    # Published before the status save that records it, so it precedes that write's event.
    types = [(e["type"], (e["data"].get("metadata") or {}).get("updateType"))
             for e in eventually_sync(lambda: everything.events[2:] and everything.events)]
    alarm_at = types.index(("io.fabrica.sensor.overheated", None))
    assert types[alarm_at + 1] == ("io.fabrica.sensor.updated", "status")


def test_emitted_once_per_crossing_not_on_each_reconcile(url):
    alarms = Listener(url, "io.fabrica.sensor.*")
    with httpx.Client(base_url=url, timeout=10) as http:
        http.post("/sensors", json={"name": "t2", "threshold": 50, "reading": 60})
        ready(http, "t2", 1)
        patch = {"Content-Type": "application/merge-patch+json"}
        http.patch("/sensors/t2", json={"reading": 80}, headers=patch)  # still hot
        ready(http, "t2", 2)
        http.patch("/sensors/t2", json={"reading": 20}, headers=patch)  # cools down
        ready(http, "t2", 3)
        http.patch("/sensors/t2", json={"reading": 90}, headers=patch)  # hot again
        ready(http, "t2", 4)
    eventually_sync(lambda: len([e for e in alarms.events if e["action"] == "overheated"]) >= 2)
    time.sleep(0.2)  # kept: proves no third alarm follows
    emitted = [e for e in alarms.events if e["action"] == "overheated"]
    assert [e["data"]["details"]["reading"] for e in emitted] == [60, 90]
    assert emitted[0]["id"] != emitted[1]["id"]
    # the lifecycle events of the same kind still flow on the same pattern
    assert {"created", "patched", "updated"} <= {e["action"] for e in alarms.events}


@pytest.mark.parametrize(("reason", "message"), [
    ("Overheated", "is not a lower-case word"),
    ("sensor.created", "is not a lower-case word"),
    ("deleted", "reserved for the lifecycle events"),
])
def test_a_bad_reason_fails_the_reconcile_and_publishes_nothing(url, reason, message):
    everything = Listener(url, "**")
    with httpx.Client(base_url=url, timeout=10) as http:
        http.post("/sensors", json={"name": "bad", "reading": 99, "alarmReason": reason})

        def failed() -> dict[str, Any] | None:
            conditions = http.get("/sensors/bad").json()["status"].get("conditions", [])
            return next((c for c in conditions if c["status"] == "False"), None)
        ready_false = eventually_sync(failed)
    assert ready_false["reason"] == "ReconcileError"
    assert "ValueError" in ready_false["message"] and message in ready_false["message"]
    assert everything.events
    assert not [e["type"] for e in everything.events if e["type"].startswith("io.fabrica.sensor.")
                and e["type"].rsplit(".", 1)[1] not in ("created", "updated")]


def test_details_that_are_not_json_fail_in_the_reconciler(url):
    everything = Listener(url, "**")
    with httpx.Client(base_url=url, timeout=10) as http:
        http.post("/sensors", json={"name": "odd", "reading": 99, "details": [1, 2]})

        def failed() -> dict[str, Any] | None:
            conditions = http.get("/sensors/odd").json()["status"].get("conditions", [])
            return next((c for c in conditions if c["status"] == "False"), None)
        ready_false = eventually_sync(failed)
    assert "TypeError" in ready_false["message"] and "mapping" in ready_false["message"]
    assert everything.events
    assert not [e["type"] for e in everything.events if e["type"].startswith("io.fabrica.sensor.")
                and e["type"].rsplit(".", 1)[1] not in ("created", "updated")]


def test_a_crash_before_the_status_save_resends_the_event_with_the_same_id(app, url):
    """The status save that records "emitted" fails twice (as if the process died between
    the emit and the save): the retries run on the same stored state and re-send the event
    with the same id, so a consumer can drop the duplicates; once saved, no more."""
    store = app.state.service.store
    modify, failures = store.modify, []

    async def failing_status_save(cls: Any, id: str, change: Any, **kwargs: Any) -> Any:
        if kwargs.get("part") == "status" and len(failures) < 2:
            current = await store.get(cls, id)
            if current.name == "crashy":
                failures.append(current.name)
                raise RuntimeError("storage went away")
        return await modify(cls, id, change, **kwargs)

    store.modify = failing_status_save
    alarms = Listener(url, "io.fabrica.sensor.overheated")
    with httpx.Client(base_url=url, timeout=10) as http:
        http.post("/sensors", json={"name": "crashy", "reading": 99})
        eventually_sync(lambda: http.get("/sensors/crashy").json()["status"]["overheated"])
        http.patch("/sensors/crashy", json={"threshold": 60},
                   headers={"Content-Type": "application/merge-patch+json"})
        ready(http, "crashy", 2)
    eventually_sync(lambda: len(alarms.events) >= 3)
    time.sleep(0.2)  # kept: proves no fourth copy follows
    assert len(failures) == 2
    assert len(alarms.events) == 3
    assert len({e["id"] for e in alarms.events}) == 1


async def test_an_emitted_event_is_no_reason_to_reconcile(app):
    """The controller reacts to lifecycle events only: ``sensor.overheated`` carries
    resourcekind, resourceuid and an action, but it is not a change (nor does it carry the
    owner references the controller's owner walk keeps)."""
    runs.clear()
    async with serve_in_process(app) as client:
        await client.post("/sensors", json={"name": "once", "reading": 99})
        await app.state.service.controller.wait_idle()
        sensor = (await client.get("/sensors/once")).json()
    assert sensor["status"]["overheated"] is True
    assert runs == {"once": 1}
