"""The model's metadata rules hold on every write through `ResourceStore`, not only on what
the HTTP API read: a bad annotation, finalizer or owner reference is `InvalidMetadata`, and
nothing is written."""

from __future__ import annotations

import pytest

from fabrica.resource import MAX_ANNOTATIONS_BYTES, InvalidMetadata, OwnerReference
from fabrica.storage import FileStorage, NotFound
from fabrica.store import OwnerReferenceError, ResourceStore
from tests._support.app import Device, DeviceSpec

WEB = DeviceSpec(type="server", ip_address="10.0.0.1")


@pytest.fixture
async def store(tmp_path):
    storage = FileStorage(tmp_path / "data")
    yield ResourceStore(storage, [Device])
    await storage.close()


async def absent(store: ResourceStore, name: str) -> bool:
    try:
        await store.get(Device, name)
    except NotFound:
        return True
    return False


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"annotations": {"no spaces": "x"}}, "metadata.annotations.no spaces"),
    ({"annotations": {"k": "x" * MAX_ANNOTATIONS_BYTES}}, "metadata.annotations"),
    ({"labels": {"rack": "not a value"}}, "metadata.labels.rack"),
    ({"finalizers": ["bad finalizer"]}, "metadata.finalizers"),
])
async def test_a_create_with_bad_metadata_is_refused(store, kwargs, field):
    with pytest.raises(InvalidMetadata) as refused:
        await store.create(Device, "web", WEB, **kwargs)
    assert field in {path for path, _ in refused.value.causes}
    assert await absent(store, "web")


async def test_an_owner_reference_of_a_bad_shape_is_refused_before_its_owner_is_looked_up(
        store):
    ref = OwnerReference(kind="Rack", name="r1", uid="rack-0000abcd")
    ref.uid = 7  # type: ignore[assignment]  # not validated on assignment
    with pytest.raises(InvalidMetadata) as refused:  # not the kind's OwnerReferenceError
        await store.create(Device, "web", WEB, owner_references=[ref])
    assert refused.value.causes[0][0] == "metadata.ownerReferences.0.uid"
    assert await absent(store, "web")
    with pytest.raises(OwnerReferenceError):  # well formed: then the store's own check
        await store.create(Device, "web", WEB, owner_references=[
            OwnerReference(kind="Rack", name="r1", uid="rack-0000abcd")])


async def test_an_update_with_a_bad_annotation_is_refused_and_writes_nothing(store):
    created = await store.create(Device, "web", WEB, annotations={"note": "x"})
    bad = created.model_copy(deep=True)
    bad.metadata.annotations["example.com/bad key"] = "y"
    with pytest.raises(InvalidMetadata) as refused:
        await store.update(bad)
    assert refused.value.message == "invalid metadata.annotations"
    assert refused.value.causes[0][0] == "metadata.annotations.example.com/bad key"
    stored = await store.get(Device, "web")
    assert stored.metadata.resource_version == created.metadata.resource_version


async def test_a_change_that_edits_metadata_in_place_is_checked_too(store):
    await store.create(Device, "web", WEB)

    def add_finalizer(current):
        current.metadata.finalizers.append("not a name!")  # the stored object, mutated
        return current

    with pytest.raises(InvalidMetadata) as refused:
        await store.modify(Device, "web", add_finalizer)
    assert refused.value.causes[0][0] == "metadata.finalizers"
    assert (await store.get(Device, "web")).metadata.finalizers == []


async def test_metadata_stored_before_the_rules_stays_writable(store):
    """A resource written before a rule existed (here: straight into storage) can still
    have its status written and its finalizer removed; only a change to the bad field is
    checked."""
    created = await store.create(Device, "web", WEB, finalizers=["example.com/hold"])
    doc = await store.get_document(Device, "web")
    doc["metadata"]["annotations"] = {"legacy key": "x"}
    await store.storage.update("devices", doc, created.metadata.resource_version)

    def set_health(current):
        current.status.health = "ok"
        return current

    await store.modify(Device, "web", set_health, part="status")

    def release(current):
        current.metadata.finalizers = []
        return current

    released = await store.modify(Device, "web", release)
    assert released.metadata.finalizers == []
    assert released.metadata.annotations == {"legacy key": "x"}

    def annotate(current):
        current.metadata.annotations["more"] = "y"
        return current

    with pytest.raises(InvalidMetadata):
        await store.modify(Device, "web", annotate)
