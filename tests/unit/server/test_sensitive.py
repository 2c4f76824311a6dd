"""Sensitive fields over HTTP (SPEC section 10): a secret is written, kept, and read by no one
but reconcilers; with ``--encryption-key`` it is stored encrypted.

The secret is a distinctive text; each test looks for it in every channel readers have."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import field_validator

from fabrica import Model, Resource, Sensitive, ServiceSettings
from fabrica.events import MemoryBus
from fabrica.server import create_app
from fabrica.service import OptionError, Service, ServiceOptions
from fabrica.storage import FileStorage
from fabrica.store import EncryptionError
from tests._support.app import serve_in_process, serve_on_port

SECRET = "hunter2-s3cr3t"
NEW_SECRET = "n3w-s3cr3t-value"


class VaultSpec(Model):
    user: str = "admin"
    password: Annotated[str, Sensitive()] = ""
    pin: Annotated[int, Sensitive()] = 0

    @field_validator("password")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < 6:  # a careless message that quotes the value
            raise ValueError(f"password {value!r} is too short")
        return value


class VaultStatus(Model):
    phase: str = ""
    version: str = ""


class Vault(Resource[VaultSpec, VaultStatus], prefix="vlt", versioning=True):
    pass


def _service(path: Path, key: str | None = None, bus: MemoryBus | None = None) -> Service:
    settings = ServiceSettings(project="vaults", package="vaults", events=bus is not None)
    return Service([Vault], FileStorage(path), ServiceOptions(settings=settings,
                                                              encryption_key=key), bus=bus)


def _stored(path: Path) -> str:
    """Every byte the file backend keeps, as text."""
    return "".join(p.read_text(errors="replace") for p in path.rglob("*") if p.is_file())


async def _create(client: httpx.AsyncClient, name: str = "v1", **spec: Any) -> dict[str, Any]:
    response = await client.post("/vaults", json={
        "metadata": {"name": name}, "spec": {"user": "ops", "password": SECRET, "pin": 4321,
                                             **spec}})
    assert response.status_code == 201, response.text
    return response.json()


async def test_no_reader_channel_shows_a_sensitive_value(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    bus = MemoryBus()
    events: list[Any] = []

    async def collect(event: Any) -> None:
        events.append(event)

    await bus.subscribe("**", collect)
    service = _service(tmp_path / "data", bus=bus)
    app = create_app(service)
    async with serve_on_port(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as c:
        async with c.stream("GET", "/vaults?watch=true") as watch:
            lines = watch.aiter_lines()
            created = await _create(c)
            seen = [await anext(lines)]
            uid = created["metadata"]["uid"]
            patched = await c.patch(f"/vaults/{uid}", json={"user": "root"},
                                    headers={"Content-Type": "application/merge-patch+json"})
            seen.append(await anext(lines))
        answers = [created, patched.json(), (await c.get(f"/vaults/{uid}")).json(),
                   (await c.get("/vaults")).json(), (await c.get(f"/vaults/{uid}/versions")).json(),
                   (await c.get(f"/vaults/{uid}/versions/v1")).json()]
        invalid = await c.post("/vaults", json={"metadata": {"name": "v2"},
                                                "spec": {"password": "abc", "pin": "x"}})
        while len(events) < 2:
            await asyncio.sleep(0.01)
        # ...while the store, which reconcilers and hooks read, has the real values.
        obj = await service.store.get(Vault, uid)
        assert (obj.spec.password, obj.spec.pin) == (SECRET, 4321)
        assert SECRET not in repr(obj) and SECRET not in str(obj.spec)
    assert created["spec"] == {"user": "ops"}
    assert patched.json()["spec"] == {"user": "root"}
    assert invalid.status_code == 400
    assert "abc" not in invalid.text  # the user's validator quoted it: not shown
    assert {d["field"] for d in invalid.json()["details"]} == {"spec.password", "spec.pin"}
    shown = json.dumps(answers) + "".join(seen) + "".join(e.to_json() for e in events)
    for value in (SECRET, "4321", '"password"', '"pin"'):
        assert value not in shown
    assert SECRET not in caplog.text
    assert SECRET in _stored(tmp_path / "data")  # no key: stored as written


async def test_a_write_that_leaves_a_secret_out_keeps_it(tmp_path):
    service = _service(tmp_path / "data")
    async with serve_in_process(create_app(service)) as c:
        uid = (await _create(c))["metadata"]["uid"]
        got = (await c.get(f"/vaults/{uid}")).json()
        got["spec"]["user"] = "changed"  # a read, a change, a write back: as a client does
        assert (await c.put(f"/vaults/{uid}", json=got)).status_code == 200
        merge = {"Content-Type": "application/merge-patch+json"}
        assert (await c.patch(f"/vaults/{uid}", json={"pin": 7}, headers=merge)).is_success
        obj = await service.store.get(Vault, uid)
        assert (obj.spec.user, obj.spec.password, obj.spec.pin) == ("changed", SECRET, 7)

        json_patch = {"Content-Type": "application/json-patch+json"}
        copy = [{"op": "copy", "from": "/password", "path": "/user"}]
        refused = await c.patch(f"/vaults/{uid}", json=copy, headers=json_patch)
        assert refused.status_code >= 400 and SECRET not in refused.text  # nothing to copy
        test = [{"op": "test", "path": "/password", "value": SECRET}]
        assert (await c.patch(f"/vaults/{uid}", json=test, headers=json_patch)).status_code >= 400

        got = (await c.get(f"/vaults/{uid}")).json()
        got["spec"]["password"] = NEW_SECRET
        assert (await c.put(f"/vaults/{uid}", json=got)).status_code == 200
        assert (await service.store.get(Vault, uid)).spec.password == NEW_SECRET


def test_a_typed_client_sends_back_only_the_secrets_it_set():
    from fabrica.client._calls import to_json

    read = VaultSpec.model_validate({"user": "ops"})  # as a response gives it
    assert to_json(read) == {"user": "ops"}
    read.password = NEW_SECRET
    assert to_json(read) == {"user": "ops", "password": NEW_SECRET}


async def test_openapi_marks_sensitive_fields_write_only(tmp_path):
    async with serve_in_process(create_app(_service(tmp_path / "data"))) as client:
        doc = (await client.get("/openapi.json")).json()
    specs = [s for name, s in doc["components"]["schemas"].items() if name.startswith("VaultSpec")]
    assert specs and all(s["properties"]["password"]["writeOnly"] is True for s in specs)
    assert all(s["properties"]["pin"]["writeOnly"] is True for s in specs)


def test_a_sensitive_field_needs_a_default():
    class NoDefaultSpec(Model):
        password: Annotated[str, Sensitive()]

    with pytest.raises(TypeError, match="no default"):
        class NoDefault(Resource[NoDefaultSpec, VaultStatus], prefix="nd"):
            pass


# -- encryption at rest ---------------------------------------------------------------------


async def test_values_are_stored_encrypted_and_keys_rotate(tmp_path):
    data = tmp_path / "data"
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    async with serve_in_process(create_app(_service(data, old))) as c:
        uid = (await _create(c))["metadata"]["uid"]
    assert SECRET not in _stored(data) and "fernet:v1:" in _stored(data)

    # Rotation: the new key first, the old one still opens what it wrote.
    service = _service(data, f"{new},{old}")
    async with serve_in_process(create_app(service)) as c:
        assert (await service.store.get(Vault, uid)).spec.password == SECRET
        merge = {"Content-Type": "application/merge-patch+json"}
        assert (await c.patch(f"/vaults/{uid}", json={"user": "x"}, headers=merge)).is_success

    # Written again: now the new key alone opens it.
    service = _service(data, new)
    async with serve_in_process(create_app(service)):
        assert (await service.store.get(Vault, uid)).spec.password == SECRET


async def test_clear_values_stay_readable_and_are_encrypted_on_their_next_write(tmp_path):
    data = tmp_path / "data"
    async with serve_in_process(create_app(_service(data))) as c:
        uid = (await _create(c))["metadata"]["uid"]
    assert SECRET in _stored(data)
    service = _service(data, Fernet.generate_key().decode())
    async with serve_in_process(create_app(service)) as c:
        assert (await service.store.get(Vault, uid)).spec.password == SECRET
        merge = {"Content-Type": "application/merge-patch+json"}
        assert (await c.patch(f"/vaults/{uid}", json={"user": "x"}, headers=merge)).is_success
        assert (await service.store.get(Vault, uid)).spec.password == SECRET
    documents = "".join(p.read_text() for p in (data / "vaults").glob("*.json"))
    assert SECRET not in documents and "fernet:v1:" in documents


async def test_the_server_refuses_to_start_without_the_key(tmp_path):
    data, key = tmp_path / "data", Fernet.generate_key().decode()
    async with serve_in_process(create_app(_service(data, key))) as c:
        await _create(c)
    with pytest.raises(EncryptionError, match="no key is given"):
        await _service(data).start()
    with pytest.raises(EncryptionError, match="none of the 1 encryption keys"):
        await _service(data, Fernet.generate_key().decode()).start()
    await _service(data, key).start()  # the right key still starts


async def test_a_value_that_looks_encrypted_is_refused_without_a_key(tmp_path):
    async with serve_in_process(create_app(_service(tmp_path / "data"))) as c:
        response = await c.post("/vaults", json={"metadata": {"name": "v"},
                                                 "spec": {"password": "fernet:v1:abc"}})
    assert response.status_code == 400 and "fernet:v1:" in response.json()["error"]


def test_an_encryption_key_that_is_no_fernet_key_is_an_option_error():
    with pytest.raises(OptionError, match="key 2 of 2 is not a Fernet key") as caught:
        ServiceOptions(encryption_key=f"{Fernet.generate_key().decode()},not-a-key")
    assert caught.value.option == "--encryption-key"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def sql_url(request, tmp_path):  # (sync: preparing a database runs its own event loop)
    from tests._support.sqldb import database

    with database(request.param, tmp_path) as url:
        yield url


async def test_sql_storage_holds_envelopes_and_refuses_a_start_without_the_key(sql_url):
    from fabrica.storage import SQLStorage

    url = sql_url
    key = Fernet.generate_key().decode()

    async def service(key: str | None) -> Service:
        storage = SQLStorage(url)
        await storage.migrate()
        settings = ServiceSettings(project="vaults", package="vaults")
        return Service([Vault], storage, ServiceOptions(settings=settings, encryption_key=key))

    first = await service(key)
    async with serve_in_process(create_app(first)) as c:
        uid = (await _create(c))["metadata"]["uid"]
        stored = await first.storage.get("vaults", uid)
        assert stored["spec"]["password"].startswith("fernet:v1:")
        assert (await first.store.get(Vault, uid)).spec.password == SECRET
    for wrong in (None, Fernet.generate_key().decode()):
        refused = await service(wrong)
        with pytest.raises(EncryptionError):
            await refused.start()
        await refused.storage.close()
