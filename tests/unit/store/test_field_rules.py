"""`Unique` and `Immutable` hold on every write through `ResourceStore` (the HTTP API's and
reconcilers' alike): unique keys are computed from the document and enforced by the
storage; an immutable field that changes is `ImmutableFieldError`, and nothing is written.
Strings compare in Unicode NFC: "é" as one code point and as "e" plus a combining accent
are the same value."""

from __future__ import annotations

import asyncio
from typing import Annotated

import pytest
from pydantic import Field

from fabrica import Immutable, Indexed, Model, Resource, Unique
from fabrica.storage import AlreadyExists, DuplicateValues, FileStorage
from fabrica.store import ImmutableFieldError, ResourceStore, prepare_unique


class BMCSpec(Model):
    serial: Annotated[str, Unique(), Immutable()] = ""
    mac: Annotated[str, Unique(), Indexed()] = ""
    rack_uid: str = Field("", alias="rackUID")
    slot: int = 0


class BMCStatus(Model):
    phase: str = ""


class BMC(Resource[BMCSpec, BMCStatus], prefix="bmc", unique=[("rackUID", "slot")]):
    pass


@pytest.fixture
async def store(tmp_path):
    storage = FileStorage(tmp_path / "data")
    await prepare_unique(storage, [BMC])
    yield ResourceStore(storage, [BMC])
    await storage.close()


async def test_unique_fields_and_combinations_are_refused_naming_the_holder(store):
    first = await store.create(BMC, "a", BMCSpec(serial="S1", mac="m1", rackUID="r", slot=1))
    for spec, field in [(BMCSpec(serial="S1", mac="m2"), "spec.serial"),
                        (BMCSpec(serial="S2", mac="m1"), "spec.mac"),
                        (BMCSpec(serial="S3", mac="m3", rackUID="r", slot=1),
                         "spec.rackUID+spec.slot")]:
        with pytest.raises(AlreadyExists) as refused:
            await store.create(BMC, "b", spec)
        assert (refused.value.field, refused.value.holder) == (field, first.uid)
    await store.create(BMC, "b", BMCSpec(serial="S2", mac="m2", rackUID="r", slot=2))


async def test_nfc_twins_are_the_same_value(store):
    await store.create(BMC, "a", BMCSpec(serial="caf\u00e9"))
    with pytest.raises(AlreadyExists):
        await store.create(BMC, "b", BMCSpec(serial="cafe\u0301"))


async def test_a_patch_into_a_held_value_is_refused_and_a_freed_value_reused(store):
    await store.create(BMC, "a", BMCSpec(serial="S1", mac="m1"))
    b = await store.create(BMC, "b", BMCSpec(serial="S2", mac="m2"))

    def take_m1(current: BMC) -> BMC:
        current.spec.mac = "m1"
        return current

    with pytest.raises(AlreadyExists):
        await store.modify(BMC, "b", take_m1)
    assert (await store.get(BMC, "b")).spec.mac == "m2"
    await store.delete(BMC, "a")
    assert (await store.modify(BMC, "b", take_m1)).spec.mac == "m1"
    # A status write leaves the keys alone.
    got = await store.get(BMC, "b")
    got.status.phase = "Ready"
    await store.update_status(got)
    assert b.uid == got.uid


async def test_an_immutable_field_cannot_change_but_can_be_set_once(store):
    await store.create(BMC, "a", BMCSpec(serial="caf\u00e9", mac="m1"))

    def change(serial: str):
        def apply(current: BMC) -> BMC:
            current.spec.serial = serial
            return current
        return apply

    with pytest.raises(ImmutableFieldError) as refused:
        await store.modify(BMC, "a", change("other"))
    assert refused.value.field == "spec.serial"
    assert (await store.get(BMC, "a")).spec.serial == "caf\u00e9"
    await store.modify(BMC, "a", change("cafe\u0301"))  # the same value, spelled apart
    # Unset on create: may be set once, then holds.
    await store.create(BMC, "b", BMCSpec(mac="m2"))
    await store.modify(BMC, "b", change("S9"))
    with pytest.raises(ImmutableFieldError):
        await store.modify(BMC, "b", change("S10"))


async def test_concurrent_writers_of_one_value_one_wins(store):
    async def create(n: int):
        try:
            return await store.create(BMC, f"w{n}", BMCSpec(serial="same", mac=f"m{n}"))
        except AlreadyExists as exc:
            return exc

    results = await asyncio.gather(*(create(n) for n in range(24)))
    assert sum(isinstance(r, BMC) for r in results) == 1
    assert len(await store.list(BMC)) == 1


async def test_a_kind_whose_stored_resources_share_a_value_refuses_to_start(tmp_path):
    unique_bmc = globals()["BMC"]

    class PlainSpec(Model):  # the kind as an earlier release declared it: nothing unique
        serial: str = ""
        mac: str = ""

    class BMC(Resource[PlainSpec, BMCStatus], prefix="bmc"):  # type: ignore[no-redef]
        pass

    storage = FileStorage(tmp_path / "data")
    plain = ResourceStore(storage, [BMC])
    await plain.create(BMC, "a", PlainSpec(serial="S1", mac="m1"))
    await plain.create(BMC, "b", PlainSpec(serial="S1", mac="m2"))
    with pytest.raises(DuplicateValues, match="spec.serial") as refused:
        await prepare_unique(storage, [unique_bmc])
    assert len(refused.value.duplicates) == 1
    await storage.close()


async def test_imported_resources_hold_their_unique_values(store, tmp_path):
    """An import writes its batches holding each document's unique keys, as a create does:
    a later create of an imported serial is refused naming the imported holder."""
    import io

    from fabrica.store import export_resources, import_resources, read_export

    first = await store.create(BMC, "a", BMCSpec(serial="S1", mac="m1", rackUID="r", slot=1))
    out = io.StringIO()
    await export_resources(store.storage, [BMC], "p", out)
    target = FileStorage(tmp_path / "target")
    await prepare_unique(target, [BMC])
    plan = read_export(out.getvalue().splitlines(keepends=True), [BMC], "p")
    await import_resources(target, plan, "create")
    imported = ResourceStore(target, [BMC])
    for spec, field in [(BMCSpec(serial="S1"), "spec.serial"),
                        (BMCSpec(serial="S2", rackUID="r", slot=1), "spec.rackUID+spec.slot")]:
        with pytest.raises(AlreadyExists) as refused:
            await imported.create(BMC, "b", spec)
        assert (refused.value.field, refused.value.holder) == (field, first.uid)
    await target.close()
