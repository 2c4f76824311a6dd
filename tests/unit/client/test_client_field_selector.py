"""``field_selector=`` in the client library (sync and async, raw and typed) and
``--field-selector`` in the client CLI, against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from fabrica import ServiceSettings
from fabrica.client import AsyncClient, Client, ValidationError, client_cli
from fabrica.server import create_app
from fabrica.storage import FileStorage
from tests._support.bmc import BMC, BMCSpec
from tests._support.thread_server import ThreadServer

SETTINGS = ServiceSettings(project="bmc-api", package="bmc_api")


def app(tmp_path: Any) -> Any:
    return create_app([BMC], FileStorage(tmp_path / "data"), settings=SETTINGS)


def fill(client: Client) -> None:
    for n in range(4):
        client.create(BMC, name=f"b{n}", spec=BMCSpec(serial=f"S{n}", mac=f"m{n}",
                                                       rack_uid=f"r{n % 2}", slot=n))


@pytest.fixture
def server(tmp_path: Any) -> Iterator[str]:
    with ThreadServer(app(tmp_path)) as url:
        yield url


def test_sync_client_lists_and_watches_by_field(server: str) -> None:
    with Client(server, kinds=[BMC], retries=0) as client:
        fill(client)
        assert [b.name for b in client.list(BMC, field_selector="spec.rackUID=r1")] == [
            "b1", "b3"]
        assert [b.name for b in client.iter_list(BMC, None, 1,
                                                 field_selector="spec.rackUID=r1")] == [
            "b1", "b3"]
        assert [b.name for b in client.list(BMC, "", field_selector="metadata.name=b2")] == [
            "b2"]
        raw = client.raw.list(BMC, field_selector="spec.mac=m0")
        assert [item["metadata"]["name"] for item in raw] == ["b0"]
        items, version = client.list_with_version(BMC, field_selector="spec.rackUID=r0")
        assert [b.name for b in items] == ["b0", "b2"] and version
        events = list(client.watch(BMC, field_selector="spec.rackUID=r0", timeout_seconds=1))
        assert [(e.type, e.object.name) for e in events] == [("ADDED", "b0"), ("ADDED", "b2")]
        with pytest.raises(ValidationError) as refused:
            client.list(BMC, field_selector="spec.serial=S1")
        assert "spec.rackUID" in str(refused.value)


async def test_async_client_lists_and_watches_by_field(tmp_path: Any) -> None:
    served = app(tmp_path)
    async with served.router.lifespan_context(served), AsyncClient(
            "http://api.test", [BMC], transport=httpx.ASGITransport(app=served)) as client:
        for n in range(3):
            await client.create(BMC, name=f"b{n}", spec=BMCSpec(serial=f"S{n}", mac=f"m{n}",
                                                                rack_uid="r9" if n else "", slot=n))
        assert [b.name for b in await client.list(BMC, field_selector="spec.rackUID=r9")] \
            == ["b1", "b2"]
        assert [b["metadata"]["name"] for b in await client.raw.list(
            BMC, field_selector="spec.rackUID=")] == ["b0"]
        items, _ = await client.list_with_version(BMC, field_selector="spec.mac!=m1")
        assert [b.name for b in items] == ["b0", "b2"]


def run(server: str, *args: str) -> Any:
    return CliRunner().invoke(client_cli([BMC], SETTINGS), ["--server", server, *args])


def test_cli_lists_by_field(server: str) -> None:
    with Client(server, kinds=[BMC], retries=0) as client:
        fill(client)
    chosen = run(server, "bmc", "list", "--field-selector", "spec.rackUID=r1", "-o", "json")
    assert chosen.exit_code == 0, chosen.output
    assert [b["metadata"]["name"] for b in json.loads(chosen.stdout)] == ["b1", "b3"]
    watched = run(server, "bmc", "list", "-w", "--watch-timeout", "1", "--field-selector",
                  "metadata.name=b2", "-o", "json")
    assert watched.exit_code == 0, watched.output
    assert [json.loads(line)["object"]["metadata"]["name"]
            for line in watched.stdout.splitlines()] == ["b2"]
    bad = run(server, "bmc", "list", "--field-selector", "spec.slot=1")
    assert bad.exit_code == 1 and "fields that can be selected" in bad.stderr
    helped = run(server, "bmc", "list", "--help")
    assert "metadata.name, status.phase, spec.mac, spec.rackUID" in " ".join(
        helped.stdout.split())
