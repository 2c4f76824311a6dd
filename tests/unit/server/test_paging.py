import asyncio
import re

import pytest


async def make(client, name, **labels):
    body = {"name": name, "type": "server", "ipAddress": "1", "labels": labels}
    response = await client.post("/devices", json=body)
    assert response.status_code == 201, response.text


async def walk(client, url, between=None):
    seen, pages = [], 0
    while url:
        response = await client.get(url)
        assert response.status_code == 200
        seen += [o["metadata"]["name"] for o in response.json()]
        pages += 1
        link = response.headers.get("link")
        url = re.match(r'<([^>]+)>; rel="next"', link).group(1) if link else None
        if between and url:
            await between(pages)
    return seen, pages


async def test_pages_follow_link_headers(client):
    for n in range(25):
        await make(client, f"dev-{n:03d}", parity="even" if n % 2 == 0 else "odd")
    seen, pages = await walk(client, "/devices?limit=10")
    assert seen == [f"dev-{n:03d}" for n in range(25)] and pages == 3
    even, _ = await walk(client, "/devices?limit=4&labelSelector=parity%3Deven")
    assert even == [f"dev-{n:03d}" for n in range(0, 25, 2)]


async def test_last_full_page_has_no_next_link(client):
    for n in range(4):
        await make(client, f"d{n}")
    response = await client.get("/devices?limit=4")
    assert len(response.json()) == 4 and "link" not in response.headers


async def test_paging_under_concurrent_writes_sees_survivors_exactly_once(client):
    for n in range(0, 60, 2):
        await make(client, f"d{n:03d}")
    survivors = {f"d{n:03d}" for n in range(0, 60, 2) if n % 6 != 0}

    async def churn(page):
        # Others write while we walk: new names appear, some old ones go away.
        await asyncio.gather(make(client, f"d{page * 6 + 1:03d}"),
                             client.delete(f"/devices/d{(page * 6) % 60:03d}"))

    seen, _ = await walk(client, "/devices?limit=7", between=churn)
    assert len(seen) == len(set(seen))
    assert survivors <= set(seen)


@pytest.mark.parametrize("query", ["limit=-1", "limit=abc", "limit=100000", "continue=%%%",
                                   "continue=bm90LWpzb24", "continue=eyJ2IjoyfQ"])
async def test_bad_paging_parameters_are_400(client, query):
    response = await client.get(f"/devices?{query}")
    assert response.status_code == 400
