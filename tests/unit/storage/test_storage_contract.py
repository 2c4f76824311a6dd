"""The `Storage` contract, one suite for every backend: file, SQLite, PostgreSQL, MariaDB.

Everything `fabrica.storage._base` promises is checked here against each backend alike;
what only one backend needs (file paths, temp files, SQL migrations, connection loss) is
tested beside it, in file/ and sql/.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from fabrica.resource import parse_selector
from fabrica.storage import (
    AlreadyExists,
    Conflict,
    Invalid,
    NotFound,
    Storage,
)
from tests._support.storage import doc, uid


def snapshot(version_id: str, **spec):
    return {"versionId": version_id, "createdAt": "2026-01-02T03:04:05Z", "spec": spec}


def rv(document) -> str:
    return document["metadata"]["resourceVersion"]


async def test_every_backend_is_a_storage(storage):
    assert isinstance(storage, Storage)
    assert storage.name in ("file", "sqlite", "postgresql", "mariadb", "mysql")


async def test_create_get_list_delete(storage):
    created = await storage.create("devices", doc("web-01", uid(10), port=1))
    assert rv(created)
    assert await storage.get("devices", uid(10)) == created
    assert await storage.get_by_name("devices", "web-01") == created
    await storage.create("devices", doc("aaa", uid(11)))
    assert [d["metadata"]["name"] for d in await storage.list("devices")] == ["aaa", "web-01"]
    deleted = await storage.delete("devices", uid(10))
    assert int(rv(deleted)) > int(rv(created))  # a delete takes a version of its own
    assert deleted == {**created, "metadata": {**created["metadata"],
                                               "resourceVersion": rv(deleted)}}
    with pytest.raises(NotFound):
        await storage.get("devices", uid(10))
    with pytest.raises(NotFound):
        await storage.get_by_name("devices", "web-01")
    assert [d["metadata"]["name"] for d in await storage.list("devices")] == ["aaa"]


async def test_get_returns_exactly_what_create_returned(storage):
    original = doc("exact", uid(1), {"a": "b"}, text="ünïcødé ☃ \U0001f680 \u0000 \"q\"",
                   nested={"z": 1, "a": [1.5, None, True, {"k": "v"}]}, big="x" * 300_000)
    original["metadata"]["ownerReferences"] = [{"kind": "Rack", "uid": "rack-00000001",
                                                "name": "r1"}]
    original["metadata"]["finalizers"] = ["example.com/cleanup"]
    original["metadata"]["deletionTimestamp"] = "2026-01-02T03:04:06Z"
    created = await storage.create("devices", original)
    assert created == {**original, "metadata": {**original["metadata"],
                                                "resourceVersion": rv(created)}}
    for fetched in (await storage.get("devices", uid(1)),
                    await storage.get_by_name("devices", "exact"),
                    (await storage.list("devices"))[0]):
        assert json.dumps(fetched) == json.dumps(created)  # key order kept too


async def test_list_of_unknown_collection_is_empty(storage):
    assert await storage.list("nothings") == []


async def test_create_never_overwrites(storage):
    await storage.create("devices", doc("a", uid(10), v=1))
    with pytest.raises(AlreadyExists) as uid_clash:
        await storage.create("devices", doc("b", uid(10), v=2))
    assert uid_clash.value.field == "uid"
    with pytest.raises(AlreadyExists) as name_clash:
        await storage.create("devices", doc("a", uid(11), v=3))
    assert name_clash.value.field == "name"
    assert (await storage.get("devices", uid(10)))["spec"] == {"v": 1}
    with pytest.raises(NotFound):
        await storage.get("devices", uid(11))


async def test_a_version_is_compared_as_written(storage):
    # An equal number written otherwise names no stored version: SQL used to take "07" or
    # the Arabic-Indic "٧" for 7 on update, and "²" raised ValueError.
    first = await storage.create("devices", doc("a", uid(11), v=1))
    for written in ("0" + rv(first), "\u0660" + rv(first), "\u00b2"):
        with pytest.raises(Conflict):
            await storage.update("devices", doc("a", uid(11), v=2), written)
        with pytest.raises(Conflict):
            await storage.delete("devices", uid(11), expected_version=written)
    assert await storage.get("devices", uid(11)) == first


async def test_collections_are_separate(storage):
    await storage.create("devices", doc("same", uid(1), v=1))
    await storage.create("racks", doc("same", uid(2), v=2))
    assert (await storage.get_by_name("devices", "same"))["spec"] == {"v": 1}
    assert (await storage.get_by_name("racks", "same"))["spec"] == {"v": 2}
    with pytest.raises(NotFound):
        await storage.get("racks", uid(1))
    assert [d["spec"] for d in await storage.list("racks")] == [{"v": 2}]


async def test_update_is_compare_and_swap(storage):
    first = await storage.create("devices", doc("a", uid(10), v=1))
    updated = await storage.update("devices", doc("a", uid(10), v=2), rv(first))
    assert rv(updated) != rv(first)
    assert await storage.get("devices", uid(10)) == updated
    with pytest.raises(Conflict) as stale:
        await storage.update("devices", doc("a", uid(10), v=3), rv(first))
    assert (stale.value.expected, stale.value.actual) == (rv(first), rv(updated))
    with pytest.raises(Conflict):
        await storage.update("devices", doc("a", uid(10), v=3), "not-a-version")
    with pytest.raises(Conflict):
        await storage.delete("devices", uid(10), expected_version=rv(first))
    with pytest.raises(Conflict) as padded:  # the version as written, not an equal number
        await storage.delete("devices", uid(10), expected_version="0" + rv(updated))
    assert (padded.value.expected, padded.value.actual) == ("0" + rv(updated), rv(updated))
    assert (await storage.get("devices", uid(10)))["spec"] == {"v": 2}
    removed = await storage.delete("devices", uid(10), expected_version=rv(updated))
    assert removed["spec"] == updated["spec"] and int(rv(removed)) > int(rv(updated))


async def test_update_and_delete_of_missing_document(storage):
    with pytest.raises(NotFound):
        await storage.update("devices", doc("a", uid(10)), "1")
    with pytest.raises(NotFound):
        await storage.delete("devices", uid(10))
    with pytest.raises(NotFound):
        await storage.delete("devices", uid(10), expected_version="1")


async def test_name_is_immutable(storage):
    created = await storage.create("devices", doc("a", uid(10)))
    with pytest.raises(ValueError):
        await storage.update("devices", doc("b", uid(10)), rv(created))
    assert await storage.get_by_name("devices", "a") == created


async def test_resource_versions_change_on_every_write_and_are_never_reused(storage):
    seen = []
    created = await storage.create("devices", doc("web", uid(1), v=0))
    seen.append(rv(created))
    current = created
    for n in range(3):
        current = await storage.update("devices", doc("web", uid(1), v=n + 1), rv(current))
        seen.append(rv(current))
    seen.append(rv(await storage.delete("devices", uid(1))))
    again = await storage.create("devices", doc("web", uid(1), v=0))  # same name, same uid
    seen.append(rv(again))
    other = await storage.create("devices", doc("other", uid(2)))
    seen.append(rv(other))
    assert len(set(seen)) == len(seen), seen
    assert [int(v) for v in seen] == sorted(int(v) for v in seen)  # ours grow; not promised


@pytest.mark.parametrize("bad", ["../../etc/passwd", "..", "dev-0000000a/../../x", "",
                                 "DEV-0000000A", "dev-0000000a.json", "x" * 300])
async def test_malformed_ids_are_not_found(storage, bad):
    await storage.create("devices", doc("a", uid(10)))
    with pytest.raises(NotFound):
        await storage.get("devices", bad)
    with pytest.raises(NotFound):
        await storage.get_by_name("devices", bad)
    with pytest.raises(NotFound):
        await storage.delete("devices", bad)


@pytest.mark.parametrize("labels", [{"bad key": "x"}, {"app": "no spaces"}, {"a" * 64: "x"},
                                    {"app": "x" * 64}, {"-app": "x"}])
async def test_every_backend_refuses_bad_labels_alike(storage, labels):
    with pytest.raises(Invalid, match="invalid label"):
        await storage.create("devices", doc("a", uid(1), labels=labels))
    created = await storage.create("devices", doc("a", uid(1), labels={"app": "web"}))
    with pytest.raises(Invalid, match="invalid label"):
        await storage.update("devices", doc("a", uid(1), labels=labels), rv(created))
    assert await storage.get("devices", uid(1)) == created


async def test_refusals_are_invalid_which_is_a_value_error(storage):
    """`Invalid` (400 in the server) for what can never be stored, on every backend."""
    created = await storage.create("devices", doc("a", uid(10)))
    with pytest.raises(Invalid, match="immutable"):
        await storage.update("devices", doc("b", uid(10)), rv(created))
    with pytest.raises(Invalid, match="invalid uid"):
        await storage.create("devices", doc("b", "dev-" + "0" * 65))
    with pytest.raises(Invalid, match="invalid collection"):
        await storage.list("Not A Plural")
    assert issubclass(Invalid, ValueError)


async def test_invalid_input_is_refused(storage):
    with pytest.raises(ValueError):
        await storage.get("../x", uid(1))
    with pytest.raises(ValueError):
        await storage.list("Not A Plural")
    with pytest.raises(ValueError):
        await storage.create("devices", doc("a", "not-a-uid"))
    with pytest.raises(ValueError):
        await storage.create("devices", doc("Not_A_Name", uid(1)))
    assert await storage.list("devices") == []


SELECTOR_CASES = [
    ("env=prod", ["a", "b"]),
    ("env==prod", ["a", "b"]),
    ("env!=prod", ["c", "d", "e"]),  # e has no env label, and still matches
    ("env in (prod,dev)", ["a", "b", "c"]),
    ("env notin (prod,dev)", ["d", "e"]),
    ("tier", ["a", "c", "d"]),
    ("!tier", ["b", "e"]),
    ("env=prod,tier=web", ["a"]),
    ("env=prod,!tier", ["b"]),
    ("tier=", ["d"]),  # the empty value
    ("env=PROD", []),  # values are case-sensitive
    ("example.com/team=x", ["e"]),
    ("nothing=here", []),
    ("", ["a", "b", "c", "d", "e"]),
]


@pytest.mark.parametrize(("selector", "expected"), SELECTOR_CASES)
async def test_label_selectors(storage, selector, expected):
    labelled = {"a": {"env": "prod", "tier": "web"}, "b": {"env": "prod"},
                "c": {"env": "dev", "tier": "db"}, "d": {"env": "test", "tier": ""},
                "e": {"example.com/team": "x"}}
    for n, (name, labels) in enumerate(labelled.items()):
        await storage.create("devices", doc(name, uid(n + 1), labels))
    await storage.create("racks", doc("z", uid(99), {"env": "prod"}))  # another collection
    found = await storage.list("devices", selector=parse_selector(selector))
    assert [d["metadata"]["name"] for d in found] == expected


async def test_selectors_follow_label_updates(storage):
    created = await storage.create("devices", doc("a", uid(1), {"env": "prod"}))
    await storage.update("devices", doc("a", uid(1), {"env": "dev", "new": "1"}), rv(created))
    names = [d["metadata"]["name"]
             for d in await storage.list("devices", selector=parse_selector("env=dev,new"))]
    assert names == ["a"]
    assert await storage.list("devices", selector=parse_selector("env=prod")) == []
    await storage.delete("devices", uid(1))
    assert await storage.list("devices", selector=parse_selector("new")) == []


async def test_an_update_replaces_the_labels_a_failed_one_leaves_them(storage):
    """Kept, changed, removed and new keys; a compare-and-swap that fails changes none."""
    def names(selector):
        return [d["metadata"]["name"] for d in found[selector]]

    created = await storage.create("devices", doc("a", uid(1),
                                                  {"env": "prod", "keep": "1", "gone": "x"}))
    updated = await storage.update("devices", doc("a", uid(1),
                                                  {"env": "dev", "keep": "1", "new": "1"}),
                                   rv(created))
    with pytest.raises(Conflict):  # a stale version: nothing of it is stored
        await storage.update("devices", doc("a", uid(1), {"stale": "1"}), rv(created))
    selectors = ("env=dev,keep=1,new=1", "gone", "env=prod", "stale", "!env")
    found = {s: await storage.list("devices", selector=parse_selector(s)) for s in selectors}
    assert [names(s) for s in selectors] == [["a"], [], [], [], []]
    await storage.update("devices", doc("a", uid(1)), rv(updated))  # no labels at all
    selectors = ("keep", "!env")
    found = {s: await storage.list("devices", selector=parse_selector(s)) for s in selectors}
    assert [names(s) for s in selectors] == [[], ["a"]]


async def test_keyset_pages_walk_every_resource_once_in_name_order(storage):
    names = ["a", "a-1", "a.1", "a0", "b", "node-10", "node-2", "z.z", "0", "9-x"]
    for n, name in enumerate(names):
        await storage.create("devices", doc(name, uid(n + 1), {"even": str(n % 2 == 0)}))
    walked, after = [], None
    while True:
        page = await storage.list("devices", limit=3, after=after)
        walked += [d["metadata"]["name"] for d in page]
        if len(page) < 3:
            break
        after = page[-1]["metadata"]["name"]
    assert walked == sorted(names)
    selected = parse_selector("even=True")
    first = await storage.list("devices", selector=selected, limit=2)
    rest = await storage.list("devices", selector=selected, after=first[-1]["metadata"]["name"])
    assert [d["metadata"]["name"] for d in first + rest] == sorted(names[0::2])
    assert await storage.list("devices", limit=0) == []


async def test_spec_versions(storage):
    created = await storage.create("devices", doc("a", uid(1), v=1), snapshot("v1", v=1))
    current = created
    for n in range(2, 12):
        current = await storage.update("devices", doc("a", uid(1), v=n), rv(current),
                                       snapshot(f"v{n}", v=n))
    history = await storage.list_versions("devices", uid(1))
    assert [s["versionId"] for s in history] == [f"v{n}" for n in range(1, 12)]  # v10 > v9
    assert await storage.get_version("devices", uid(1), "v3") == snapshot("v3", v=3)
    await storage.delete_version("devices", uid(1), "v3")
    with pytest.raises(NotFound):
        await storage.get_version("devices", uid(1), "v3")
    with pytest.raises(NotFound):
        await storage.delete_version("devices", uid(1), "v3")
    assert len(await storage.list_versions("devices", uid(1))) == 10
    await storage.update("devices", doc("a", uid(1), v=99), rv(current))  # no snapshot
    assert len(await storage.list_versions("devices", uid(1))) == 10


async def test_spec_versions_go_with_their_resource(storage):
    await storage.create("devices", doc("a", uid(1)), snapshot("v1"))
    with pytest.raises(NotFound):
        await storage.list_versions("devices", uid(2))
    await storage.delete("devices", uid(1))
    with pytest.raises(NotFound):
        await storage.list_versions("devices", uid(1))
    with pytest.raises(NotFound):
        await storage.get_version("devices", uid(1), "v1")
    await storage.create("devices", doc("a", uid(1)))  # re-created: no history of the old one
    assert await storage.list_versions("devices", uid(1)) == []


async def test_a_failed_write_leaves_nothing_behind(storage):
    with pytest.raises((ValueError, NotFound)):  # a snapshot the backend refuses
        await storage.create("devices", doc("a", uid(1)), snapshot("not a version"))
    with pytest.raises(NotFound):
        await storage.get("devices", uid(1))
    assert await storage.list("devices") == []
    assert await storage.create("devices", doc("a", uid(2)))  # the name is free


async def test_concurrent_compare_and_swap_loses_no_write(storage):
    await storage.create("devices", doc("a", uid(1), n=0))

    async def bump():
        while True:
            current = await storage.get("devices", uid(1))
            new = dict(current, spec={"n": current["spec"]["n"] + 1})
            try:
                return rv(await storage.update("devices", new, rv(current)))
            except Conflict:
                continue

    written = await asyncio.gather(*(bump() for _ in range(20)))
    final = await storage.get("devices", uid(1))
    assert final["spec"]["n"] == 20
    assert len(set(written)) == 20 and rv(final) in written


async def test_concurrent_creates_of_one_name_have_one_winner(storage):
    async def create(n):
        try:
            await storage.create("devices", doc("contested", uid(n)))
            return "won"
        except AlreadyExists as exc:
            assert exc.field == "name"
            return "lost"

    outcomes = await asyncio.gather(*(create(n) for n in range(1, 11)))
    assert sorted(outcomes) == ["lost"] * 9 + ["won"]
    assert len(await storage.list("devices")) == 1


async def test_concurrent_delete_and_update_one_wins(storage):
    created = await storage.create("devices", doc("a", uid(1)))
    results = await asyncio.gather(
        storage.delete("devices", uid(1), expected_version=rv(created)),
        storage.update("devices", doc("a", uid(1), v=2), rv(created)),
        return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], (Conflict, NotFound))
