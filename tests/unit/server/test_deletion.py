"""Finalizers, deletionTimestamp and cascading deletion through ownerReferences."""

import pytest

from tests._support.app import Device, make_client
from tests._support.wait import eventually

WEB = {"type": "server", "ipAddress": "10.0.0.1"}


def envelope(name, **metadata):
    return {"metadata": {"name": name, **metadata}, "spec": WEB}


async def wait_gone(client, path):
    async def gone():
        return (await client.get(path)).status_code == 404
    await eventually(gone)


@pytest.fixture
async def client(tmp_path):
    async with make_client(tmp_path, kinds=(Device,)) as c:
        yield c


async def test_finalizer_holds_deletion_until_removed(client):
    created = await client.post("/devices", json=envelope("db", finalizers=["example.com/x"]))
    assert created.json()["metadata"]["finalizers"] == ["example.com/x"]
    pending = await client.delete("/devices/db")
    assert pending.status_code == 200
    assert pending.json()["finalizers"] == ["example.com/x"]
    marked = (await client.get("/devices/db")).json()
    assert marked["metadata"]["deletionTimestamp"].endswith("Z")
    again = await client.delete("/devices/db")  # deleting again changes nothing
    assert again.json()["finalizers"] == ["example.com/x"]
    assert (await client.get("/devices/db")).json()["metadata"]["resourceVersion"] == \
        marked["metadata"]["resourceVersion"]
    cleared = await client.put("/devices/db", json=envelope("db", finalizers=[]))
    assert cleared.status_code == 200
    assert (await client.get("/devices/db")).status_code == 404


async def test_metadata_without_extras_stays_compact(client):
    obj = (await client.post("/devices", json={"name": "a", **WEB})).json()
    assert set(obj["metadata"]) == {"name", "uid", "labels", "annotations", "createdAt",
                                    "updatedAt", "resourceVersion", "generation"}


async def test_deleting_an_owner_deletes_its_dependents_in_waves(client):
    root = (await client.post("/devices", json=envelope("root"))).json()

    def owned_by(obj):
        meta = obj["metadata"]
        return [{"kind": "Device", "name": meta["name"], "uid": meta["uid"],
                 "controller": True}]

    mids = [(await client.post("/devices", json=envelope(f"mid-{i}",
                                                         ownerReferences=owned_by(root)))).json()
            for i in range(3)]
    for mid in mids:
        for j in range(2):
            leaf = envelope(f"{mid['metadata']['name']}-leaf-{j}",
                            ownerReferences=owned_by(mid))
            assert (await client.post("/devices", json=leaf)).status_code == 201
    await client.post("/devices", json=envelope("unrelated"))
    assert len((await client.get("/devices")).json()) == 11

    await client.delete("/devices/root")
    await wait_gone(client, "/devices/mid-2-leaf-1")
    names = [o["metadata"]["name"] for o in (await client.get("/devices")).json()]
    assert names == ["unrelated"]


async def test_dependent_with_finalizer_waits_for_it(client):
    root = (await client.post("/devices", json=envelope("root"))).json()
    ref = [{"kind": "Device", "name": "root", "uid": root["metadata"]["uid"]}]
    await client.post("/devices", json=envelope("child", ownerReferences=ref,
                                                finalizers=["example.com/keep"]))
    await client.delete("/devices/root")
    async def child_deleting():
        return (await client.get("/devices/child")).json()["metadata"].get("deletionTimestamp")
    await eventually(child_deleting)
    await client.patch("/devices/child", content=b"[]",
                       headers={"content-type": "application/json-patch+json"})
    assert (await client.get("/devices/child")).status_code == 200
    await client.put("/devices/child", json=envelope("child", finalizers=[]))
    assert (await client.get("/devices/child")).status_code == 404


async def test_orphans_left_by_a_crash_are_swept_at_start(tmp_path):
    async with make_client(tmp_path) as client:
        root = (await client.post("/devices", json=envelope("root"))).json()
        ref = [{"kind": "Device", "name": "root", "uid": root["metadata"]["uid"]}]
        await client.post("/devices", json=envelope("child", ownerReferences=ref))
    # The owner vanishes while no server runs (as if the server died mid-cascade).
    from fabrica.storage import FileStorage
    await FileStorage(tmp_path / "data").delete("devices", root["metadata"]["uid"])
    async with make_client(tmp_path) as client:
        await wait_gone(client, "/devices/child")


@pytest.mark.parametrize("metadata, field", [
    ({"finalizers": "x"}, "metadata.finalizers"),
    ({"finalizers": ["bad finalizer"]}, "metadata.finalizers"),
    ({"ownerReferences": [{"kind": "Device"}]}, "metadata.ownerReferences.0.name"),
    ({"ownerReferences": {"a": 1}}, "metadata.ownerReferences"),
])
async def test_bad_deletion_metadata_is_400(client, metadata, field):
    response = await client.post("/devices", json=envelope("x", **metadata))
    assert response.status_code == 400
    assert field in {d["field"] for d in response.json()["details"]}


async def test_an_owner_that_does_not_exist_is_422_and_nothing_is_written(client):
    ref = [{"kind": "Device", "name": "gone", "uid": "dev-0badc0de"}]
    response = await client.post("/devices", json=envelope("child", ownerReferences=ref))
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == 422 and "dev-0badc0de" in body["error"]
    assert body["details"] == [{"field": "metadata.ownerReferences.0.uid",
                                "message": "owner Device dev-0badc0de does not exist"}]
    assert (await client.get("/devices/child")).status_code == 404
    await client.post("/devices", json=envelope("child"))
    replaced = await client.put("/devices/child", json=envelope("child", ownerReferences=ref))
    assert replaced.status_code == 422  # an update may not add one either
    assert "ownerReferences" not in (await client.get("/devices/child")).json()["metadata"]


async def test_an_owner_of_a_kind_not_served_is_422(client):
    """422, not 400: the schema takes any kind (schemathesis sends one); which kinds are
    served is a fact of this service, as which uids exist is."""
    ref = [{"kind": "Rack", "name": "r1", "uid": "rack-0badc0de"}]
    response = await client.post("/devices", json=envelope("child", ownerReferences=ref))
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "metadata.ownerReferences.0.kind"
    assert (await client.get("/devices/child")).status_code == 404


async def test_collected_dependents_are_counted_in_metrics(client):
    root = (await client.post("/devices", json=envelope("root"))).json()
    ref = [{"kind": "Device", "name": "root", "uid": root["metadata"]["uid"]}]
    await client.post("/devices", json=envelope("child", ownerReferences=ref))
    await client.delete("/devices/root")
    await wait_gone(client, "/devices/child")

    async def counted():  # the collector counts once its delete returns: a moment after
        metrics = (await client.get("/metrics")).text
        assert 'fabrica_gc_deleted_total{reason="owner_deleted"} 1.0' in metrics
        return metrics
    metrics = await eventually(counted)
    assert 'fabrica_gc_deleted_total{reason="orphan_at_start"} 0.0' in metrics
