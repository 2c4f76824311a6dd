"""Unique and immutable fields through HTTP, on every backend: many concurrent creates of
one serial answer one 201 and 409s whose details name the field and the holder; the same
across two processes writing one storage; a patch of an immutable field is a 422 naming it;
a service over stored duplicates refuses to start, naming them."""

from __future__ import annotations

import asyncio
import multiprocessing

import pytest

from fabrica.server import create_app
from fabrica.storage import DuplicateValues, FileStorage, SQLStorage
from tests._support.app import serve_in_process
from tests._support.bmc import BMC, OldBMC
from tests._support.sqldb import database, migrate

BACKENDS = ("file", "sqlite", "postgresql", "mariadb")


@pytest.fixture(params=BACKENDS)
def place(request, tmp_path):
    """Where the storage lives: a data dir, or a migrated empty database."""
    if request.param == "file":
        yield str(tmp_path / "data")
        return
    with database(request.param, tmp_path) as url:
        migrate(url)
        yield url


def open_storage(place: str):
    return FileStorage(place) if "://" not in place else SQLStorage(place)


async def test_concurrent_creates_of_one_serial_one_201_the_rest_409(place):
    async with serve_in_process(create_app([BMC], open_storage(place))) as client:
        answers = await asyncio.gather(*(client.post("/bmcs", json={
            "name": f"b{n}", "serial": "SN-1", "mac": f"m{n}"}) for n in range(24)))
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [201] + [409] * 23
        winner = next(a for a in answers if a.status_code == 201).json()["metadata"]["uid"]
        for answer in answers:
            if answer.status_code == 409:
                body = answer.json()
                assert body["code"] == 409 and winner in body["error"]
                assert body["details"] == [{"field": "spec.serial",
                                            "message": f"must be unique: held by {winner}"}]
        assert len((await client.get("/bmcs")).json()) == 1


def _create_in_another_process(place: str, start: int, results) -> None:  # type: ignore[no-untyped-def]
    from fabrica.storage import AlreadyExists
    from fabrica.store import ResourceStore
    from tests._support.bmc import BMCSpec

    async def work() -> list[str]:
        storage = open_storage(place)
        store = ResourceStore(storage, [BMC])

        async def create(n: int) -> str:
            try:
                await store.create(BMC, f"p{n}", BMCSpec(serial="SN-2", mac=f"p{n}"))
                return "created"
            except AlreadyExists:
                return "refused"
        try:
            return list(await asyncio.gather(*(create(start + n) for n in range(12))))
        finally:
            await storage.close()

    results.extend(asyncio.run(work()))


async def test_two_processes_writing_one_value_one_wins(place):
    """Half the writers in this process's server, half in another process: one create in
    all succeeds."""
    async with serve_in_process(create_app([BMC], open_storage(place))) as client:
        with multiprocessing.Manager() as manager:
            results = manager.list()
            other = multiprocessing.get_context("spawn").Process(
                target=_create_in_another_process, args=(place, 100, results))
            other.start()
            answers = await asyncio.gather(*(client.post("/bmcs", json={
                "name": f"h{n}", "serial": "SN-2", "mac": f"h{n}"}) for n in range(12)))
            await asyncio.to_thread(other.join, 120)
            theirs = list(results)
        ours = [answer.status_code for answer in answers]
        assert set(ours) <= {201, 409} and len(theirs) == 12
        assert ours.count(201) + theirs.count("created") == 1
        assert len((await client.get("/bmcs")).json()) == 1


async def test_an_immutable_field_cannot_be_patched(place):
    async with serve_in_process(create_app([BMC], open_storage(place))) as client:
        assert (await client.post("/bmcs", json={"name": "b", "serial": "SN-3"})).status_code \
            == 201
        answer = await client.patch("/bmcs/b", json={"serial": "other"},
                                    headers={"Content-Type": "application/merge-patch+json"})
        assert answer.status_code == 422
        assert answer.json()["details"] == [{"field": "spec.serial",
                                             "message": "immutable: cannot change once set"}]
        assert (await client.get("/bmcs/b")).json()["spec"]["serial"] == "SN-3"
        answer = await client.patch("/bmcs/b", json={"mac": "m9"},
                                    headers={"Content-Type": "application/merge-patch+json"})
        assert answer.status_code == 200  # the other fields still change


async def test_a_service_over_stored_duplicates_refuses_to_start(place):
    """An earlier release's kind stored two BMCs of one serial; the kind now marks it
    unique: the service does not start, and says which resources share which value."""
    storage = open_storage(place)
    async with serve_in_process(create_app([OldBMC], storage)) as client:
        for n in range(2):
            assert (await client.post("/bmcs", json={"name": f"d{n}", "serial": "SN-4"})
                    ).status_code == 201
        uids = sorted(d["metadata"]["uid"] for d in (await client.get("/bmcs")).json())
    refusing = open_storage(place)
    try:
        with pytest.raises(DuplicateValues) as refused:
            async with serve_in_process(create_app([BMC], refusing)):
                pass
    finally:
        await refusing.close()  # (a process that cannot start exits; a test goes on)
    assert "spec.serial" in str(refused.value) and all(uid in str(refused.value)
                                                        for uid in uids)


async def test_a_dry_run_reports_a_unique_clash_and_holds_nothing(place):
    """SPEC 10: ``?dryRun=All`` runs uniqueness too. The check only reads: the value stays
    free for a real write."""
    async with serve_in_process(create_app([BMC], open_storage(place))) as client:
        held = await client.post("/bmcs", json={"name": "a", "serial": "SN-9", "mac": "ma"})
        holder = held.json()["metadata"]["uid"]
        clash = await client.post("/bmcs?dryRun=All",
                                  json={"name": "b", "serial": "SN-9", "mac": "mb"})
        assert clash.status_code == 409
        assert clash.json()["details"] == [{"field": "spec.serial",
                                            "message": f"must be unique: held by {holder}"}]
        free = await client.post("/bmcs?dryRun=All",
                                 json={"name": "b", "serial": "SN-10", "mac": "mb"})
        assert free.status_code == 201
        other = await client.post("/bmcs", json={"name": "c", "serial": "SN-11", "mac": "mc"})
        patched = await client.patch("/bmcs/c?dryRun=All", json={"mac": "ma"},
                                     headers={"Content-Type": "application/merge-patch+json"})
        assert patched.status_code == 409, patched.text
        same = await client.patch("/bmcs/c?dryRun=All", json={"mac": "mc"},
                                  headers={"Content-Type": "application/merge-patch+json"})
        assert same.status_code == 200, same.text  # its own value is no clash
        real = await client.post("/bmcs", json={"name": "d", "serial": "SN-10", "mac": "md"})
        assert real.status_code == 201  # the dry run held nothing
        assert other.status_code == 201
