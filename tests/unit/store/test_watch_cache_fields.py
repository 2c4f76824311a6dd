"""The watch cache's per-field index (``?fieldSelector=`` from memory): kept exact through
creates, updates that move a resource between values, deletes and a name changing hands,
and a list by a field looks only at the resources holding the value."""

from __future__ import annotations

from typing import Any

from fabrica.resource import Selector, parse_field_selector
from fabrica.storage import StoredChange
from fabrica.store._watch_objects import Entry, KindObjects

PATHS = ("metadata.name", "status.phase", "spec.rack")


def change(revision: int, kind: str, name: str, uid: str, rack: Any = "",
           phase: str = "") -> StoredChange:
    return StoredChange(revision, kind, {  # type: ignore[arg-type]
        "metadata": {"name": name, "uid": uid, "resourceVersion": str(revision)},
        "spec": {"rack": rack}, "status": {"phase": phase}})


def selected(objects: KindObjects, text: str, limit: int | None = None,
             after: str | None = None) -> list[str]:
    selector = Selector(fields=parse_field_selector(text, PATHS))
    return [entry.name for entry in objects.page(selector, limit, after)]


def index_is_exact(objects: KindObjects) -> None:
    """The index holds each entry under its current value, and nothing else."""
    for path, values in zip(objects.paths, objects.index, strict=True):
        expected: dict[str, set[str]] = {}
        for entry in objects.entries.values():
            expected.setdefault(objects.value(entry, path), set()).add(entry.uid)
        assert {value: objects.holders(path, value) for value in values} == expected, path
        # one holder is kept as its uid, not as a set of one
        assert all(isinstance(held, str) == (len(expected[value]) == 1)
                   for value, held in values.items()), path


def test_the_index_follows_every_change() -> None:
    entries = [Entry(change(n, "ADDED", f"b{n}", f"bmc-{n:08x}", f"r{n % 2}").document,
                     paths=PATHS) for n in range(1, 7)]
    objects = KindObjects(entries, PATHS)
    index_is_exact(objects)
    assert selected(objects, "spec.rack=r1") == ["b1", "b3", "b5"]
    objects.apply(change(7, "MODIFIED", "b1", "bmc-00000001", "r0", phase="Ready"))
    objects.apply(change(8, "DELETED", "b5", "bmc-00000005", "r1"))
    objects.apply(change(9, "ADDED", "b9", "bmc-00000009", 9))  # a number: its JSON text
    index_is_exact(objects)
    assert selected(objects, "spec.rack=r1") == ["b3"]
    assert selected(objects, "spec.rack=9") == ["b9"]
    assert selected(objects, "status.phase=Ready") == ["b1"]
    assert selected(objects, "spec.rack=r0,status.phase!=Ready") == ["b2", "b4", "b6"]
    assert selected(objects, "spec.rack=r0", limit=2, after="b1") == ["b2", "b4"]
    assert selected(objects, "metadata.name=b3,spec.rack=r1") == ["b3"]
    assert selected(objects, "metadata.name=b3,spec.rack=r0") == []
    assert selected(objects, "spec.rack!=r0") == ["b3", "b9"]  # (by the names)
    # a name taken by a new uid while the cache still has the old one: the old one goes
    objects.apply(change(10, "ADDED", "b3", "bmc-0000000a", "r7"))
    index_is_exact(objects)
    assert selected(objects, "spec.rack=r1") == []
    assert selected(objects, "spec.rack=r7") == ["b3"]


def test_a_list_by_a_value_looks_only_at_its_holders() -> None:
    entries = [Entry(change(n, "ADDED", f"b{n:05d}", f"bmc-{n:08x}", f"r{n % 1000}").document,
                     paths=PATHS) for n in range(1, 20_001)]
    objects = KindObjects(entries, PATHS)
    selector = Selector(fields=parse_field_selector("spec.rack=r7", PATHS))
    assert objects._candidates(selector) == {f"bmc-{n:08x}" for n in range(7, 20_001, 1000)}
    assert len(objects.page(selector, None, None)) == 20
