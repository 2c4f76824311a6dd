"""Unique keys in the `Storage` contract, on every backend: a key is held atomically with
the write that brings it, by one resource at a time, whatever the concurrency and however
many storages (processes) share the place; updates move keys, deletes free them; a new
constraint over stored duplicates is refused, naming them. A write's keys are always its
document's (the store computes them from it), as here."""

from __future__ import annotations

import asyncio

import pytest

from fabrica.resource import unique_key
from fabrica.storage import AlreadyExists, DuplicateValues
from tests._support.storage import doc, uid

SERIAL = "spec.serial"
PAIR = "spec.rack+spec.slot"


def keys(serial=None, rack=None, slot=None) -> dict[str, str | None]:
    return {SERIAL: unique_key([serial]), PAIR: unique_key([rack, slot])}


async def test_a_key_is_held_by_one_resource_and_named_when_refused(storage):
    await storage.prepare_unique("bmcs", [SERIAL, PAIR])
    first = await storage.create("bmcs", doc("a", uid(1), serial="S1"), unique=keys("S1"))
    with pytest.raises(AlreadyExists) as refused:
        await storage.create("bmcs", doc("b", uid(2), serial="S1"), unique=keys("S1"))
    assert (refused.value.field, refused.value.holder) == (SERIAL, uid(1))
    assert refused.value.value == unique_key(["S1"])
    # Nothing of the refused create is stored: neither it, nor its name.
    assert [d["metadata"]["name"] for d in await storage.list("bmcs")] == ["a"]
    await storage.create("bmcs", doc("b", uid(3), serial="S2"), unique=keys("S2"))
    assert await storage.get("bmcs", uid(1)) == first


async def test_unset_values_hold_nothing_and_combinations_are_one_key(storage):
    await storage.prepare_unique("bmcs", [SERIAL, PAIR])
    for n in range(3):  # an unset serial, and half-set pairs: nothing held
        await storage.create("bmcs", doc(f"n{n}", uid(n), rack="r1"),
                             unique=keys(None, "r1", None))
    await storage.create("bmcs", doc("p1", uid(10), serial="S1", rack="r1", slot=1),
                         unique=keys("S1", "r1", 1))
    await storage.create("bmcs", doc("p2", uid(11), serial="S2", rack="r1", slot=2),
                         unique=keys("S2", "r1", 2))
    with pytest.raises(AlreadyExists) as refused:
        await storage.create("bmcs", doc("p3", uid(12), serial="S3", rack="r1", slot=1),
                             unique=keys("S3", "r1", 1))
    assert (refused.value.field, refused.value.holder) == (PAIR, uid(10))


async def test_updates_move_keys_and_deletes_free_them(storage):
    await storage.prepare_unique("bmcs", [SERIAL])
    one = {SERIAL: unique_key(["S1"])}
    two = {SERIAL: unique_key(["S2"])}
    a = await storage.create("bmcs", doc("a", uid(1), serial="S1"), unique=one)
    b = await storage.create("bmcs", doc("b", uid(2), serial="S2"), unique=two)
    with pytest.raises(AlreadyExists) as refused:  # b cannot take a's value
        await storage.update("bmcs", doc("b", uid(2), serial="S1"), b["metadata"][
            "resourceVersion"], unique=one)
    assert refused.value.holder == uid(1)
    assert await storage.get("bmcs", uid(2)) == b  # the refused update changed nothing
    # a moves to S3: S1 is free for b, S3 is a's.
    a = await storage.update("bmcs", doc("a", uid(1), serial="S3"), a["metadata"][
        "resourceVersion"], unique={SERIAL: unique_key(["S3"])})
    b = await storage.update("bmcs", doc("b", uid(2), serial="S1"), b["metadata"][
        "resourceVersion"], unique=one)
    # An update without unique= leaves the keys alone (a status write).
    await storage.update("bmcs", doc("b", uid(2), serial="S1"), b["metadata"][
        "resourceVersion"])
    with pytest.raises(AlreadyExists):
        await storage.create("bmcs", doc("c", uid(3), serial="S3"),
                             unique={SERIAL: unique_key(["S3"])})
    await storage.delete("bmcs", uid(1))
    await storage.create("bmcs", doc("c", uid(3), serial="S3"),
                             unique={SERIAL: unique_key(["S3"])})
    # A key set to None is let go.
    c = await storage.get("bmcs", uid(3))
    await storage.update("bmcs", doc("c", uid(3)), c["metadata"]["resourceVersion"],
                         unique={SERIAL: None})
    await storage.create("bmcs", doc("d", uid(4), serial="S3"),
                         unique={SERIAL: unique_key(["S3"])})


async def test_a_64_kib_value_is_one_fixed_size_key(storage):
    await storage.prepare_unique("bmcs", [SERIAL])
    big = "x" * 65536
    await storage.create("bmcs", doc("a", uid(1), serial=big), unique=keys(big))
    with pytest.raises(AlreadyExists) as refused:
        await storage.create("bmcs", doc("b", uid(2), serial=big), unique=keys(big))
    assert refused.value.holder == uid(1)
    assert len(str(refused.value)) < 1000  # the message shows a prefix, not 64 KiB
    await storage.create("bmcs", doc("c", uid(3), serial=big + "y"), unique=keys(big + "y"))


@pytest.mark.parametrize("storages", [1, 2], ids=["one-storage", "two-storages"])
async def test_concurrent_creates_of_one_value_one_wins(open_backend, storages):
    """24 writers of one serial at once (split across two storages on the same place:
    two processes' worth of connections and locks): exactly one create succeeds, the
    others are refused naming it, and the winner is the one stored."""
    opened = [await open_backend() for _ in range(storages)]
    await opened[0].prepare_unique("bmcs", [SERIAL])

    async def create(n: int):
        try:
            return await opened[n % storages].create(
                "bmcs", doc(f"w{n}", uid(n), serial="same"), unique=keys("same"))
        except AlreadyExists as exc:
            return exc

    results = await asyncio.gather(*(create(n) for n in range(24)))
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, AlreadyExists)]
    assert len(won) == 1 and len(lost) == 23
    winner = won[0]["metadata"]["uid"]
    assert {exc.holder for exc in lost} <= {winner, None}
    assert [d["metadata"]["uid"] for d in await opened[0].list("bmcs")] == [winner]


async def test_concurrent_updates_to_one_value_one_wins(storage):
    await storage.prepare_unique("bmcs", [SERIAL])
    created = [await storage.create("bmcs", doc(f"u{n}", uid(n), serial=f"S{n}"),
                                    unique=keys(f"S{n}")) for n in range(12)]

    async def update(n: int):
        try:
            return await storage.update(
                "bmcs", doc(f"u{n}", uid(n), serial="same"),
                created[n]["metadata"]["resourceVersion"], unique=keys("same"))
        except AlreadyExists as exc:
            return exc

    results = await asyncio.gather(*(update(n) for n in range(12)))
    assert sum(isinstance(r, dict) for r in results) == 1
    serials = [d["spec"]["serial"] for d in await storage.list("bmcs")]
    assert serials.count("same") == 1


async def test_a_new_constraint_over_duplicates_refuses_naming_them(storage):
    await storage.create("bmcs", doc("a", uid(1), serial="S1"))
    await storage.create("bmcs", doc("b", uid(2), serial="S1"))
    await storage.create("bmcs", doc("c", uid(3), serial="S2"))
    with pytest.raises(DuplicateValues) as refused:
        await storage.prepare_unique("bmcs", [SERIAL])
    assert refused.value.duplicates == {unique_key(["S1"]): [uid(1), uid(2)]}
    assert uid(1) in str(refused.value) and uid(2) in str(refused.value)
    assert len(await storage.list("bmcs")) == 3  # nothing dropped
    # Fixed by the operator: the constraint builds, and holds for what was stored.
    await storage.delete("bmcs", uid(2))
    await storage.prepare_unique("bmcs", [SERIAL])
    with pytest.raises(AlreadyExists) as taken:
        await storage.create("bmcs", doc("d", uid(4), serial="S2"), unique=keys("S2"))
    assert taken.value.holder == uid(3)


async def test_a_dropped_constraint_is_forgotten_and_rebuilt_when_back(storage):
    await storage.prepare_unique("bmcs", [SERIAL])
    await storage.create("bmcs", doc("a", uid(1), serial="S1"), unique=keys("S1"))
    await storage.prepare_unique("bmcs", [])
    await storage.create("bmcs", doc("b", uid(2), serial="S1"))  # no longer unique
    with pytest.raises(DuplicateValues):
        await storage.prepare_unique("bmcs", [SERIAL])
