"""ETag, If-Match, If-None-Match and stale resourceVersion; a race of If-Match writers."""

import asyncio

import pytest

WEB = {"name": "web-01", "type": "server", "ipAddress": "10.0.0.1"}


@pytest.fixture
async def device(client):
    return (await client.post("/devices", json=WEB)).json()


async def test_get_carries_a_strong_etag_and_304s(client, device):
    response = await client.get("/devices/web-01")
    tag = response.headers["etag"]
    assert tag == f'"{device["metadata"]["resourceVersion"]}"'
    cached = await client.get("/devices/web-01", headers={"If-None-Match": tag})
    assert cached.status_code == 304 and cached.headers["etag"] == tag and cached.content == b""
    weak = await client.get("/devices/web-01", headers={"If-None-Match": f"W/{tag}"})
    assert weak.status_code == 304
    star = await client.get("/devices/web-01", headers={"If-None-Match": "*"})
    assert star.status_code == 304
    await client.put("/devices/web-01/status", json={"health": "ok"})
    fresh = await client.get("/devices/web-01", headers={"If-None-Match": tag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != tag


@pytest.mark.parametrize("method, path, body", [
    ("PUT", "/devices/web-01", {**WEB, "port": 1}),
    ("PATCH", "/devices/web-01", {"port": 1}),
    ("PUT", "/devices/web-01/status", {"health": "x"}),
    ("PATCH", "/devices/web-01/status", {"health": "x"}),
    ("DELETE", "/devices/web-01", None),
])
async def test_if_match(client, device, method, path, body):
    tag = (await client.get("/devices/web-01")).headers["etag"]
    stale = await client.request(method, path, json=body, headers={"If-Match": '"999"'})
    assert stale.status_code == 412
    assert stale.json()["code"] == 412
    weak = await client.request(method, path, json=body, headers={"If-Match": f"W/{tag}"})
    assert weak.status_code == 412
    assert (await client.get("/devices/web-01")).json() == device
    ok = await client.request(method, path, json=body, headers={"If-Match": f'"1", {tag}'})
    assert ok.status_code == 200, ok.text


async def test_if_match_star_needs_existence(client, device):
    ok = await client.patch("/devices/web-01", json={"port": 2}, headers={"If-Match": "*"})
    assert ok.status_code == 200
    missing = await client.patch("/devices/nope", json={"port": 2}, headers={"If-Match": "*"})
    assert missing.status_code == 404


async def test_etag_of_a_recreated_name_differs(client, device):
    await client.delete("/devices/web-01")
    again = await client.post("/devices", json=WEB)
    assert again.headers["etag"] != f'"{device["metadata"]["resourceVersion"]}"'


async def test_envelope_put_with_stale_version_is_409(client, device):
    version = device["metadata"]["resourceVersion"]
    await client.patch("/devices/web-01", json={"port": 2})
    stale = {"metadata": {"name": "web-01", "resourceVersion": version},
             "spec": {"type": "router", "ipAddress": "1"}}
    response = await client.put("/devices/web-01", json=stale)
    assert response.status_code == 409
    assert (await client.get("/devices/web-01")).json()["spec"]["type"] == "server"


async def test_racing_if_match_writers_lose_nothing(client, device):
    """Every writer reads, then writes with If-Match: accepted writes form a chain."""
    async def writer(n: int) -> tuple[int, int]:
        current = await client.get("/devices/web-01")
        response = await client.patch(
            "/devices/web-01", json={"tags": {f"w{n}": "x"}, "port": n + 1},
            headers={"If-Match": current.headers["etag"]},
        )
        return n, response.status_code

    results = await asyncio.gather(*(writer(n) for n in range(30)))
    accepted = [n for n, status in results if status == 200]
    rejected = [n for n, status in results if status == 412]
    assert len(accepted) + len(rejected) == 30 and accepted
    final = (await client.get("/devices/web-01")).json()
    assert set(final["spec"]["tags"]) == {f"w{n}" for n in accepted}
    assert final["metadata"]["generation"] == 1 + len(accepted)


async def test_racing_unconditional_patches_all_apply(client, device):
    responses = await asyncio.gather(*(
        client.patch("/devices/web-01", json={"tags": {f"t{n}": "x"}}) for n in range(25)
    ))
    assert {r.status_code for r in responses} == {200}
    final = (await client.get("/devices/web-01")).json()
    assert set(final["spec"]["tags"]) == {f"t{n}" for n in range(25)}
