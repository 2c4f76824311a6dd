import pytest

from fabrica.resource import SelectorError, parse_selector

LABELS = [
    {"env": "prod", "tier": "web"},
    {"env": "dev", "tier": "db"},
    {"env": "prod"},
    {},
]


@pytest.mark.parametrize("text, expected", [
    ("", [0, 1, 2, 3]),
    ("env=prod", [0, 2]),
    ("env==prod", [0, 2]),
    ("env!=prod", [1, 3]),
    ("env in (prod, dev)", [0, 1, 2]),
    ("tier notin (web)", [1, 2, 3]),
    ("tier", [0, 1]),
    ("!tier", [2, 3]),
    ("env=prod,tier", [0]),
    ("env = prod , !tier", [2]),
    ("tier=", []),
    ("example.com/owner=me", []),
])
def test_matching(text, expected):
    selector = parse_selector(text)
    assert [i for i, labels in enumerate(LABELS) if selector.matches(labels)] == expected


@pytest.mark.parametrize("text, position", [
    ("env in (prod", 12),
    ("env prod", 4),
    ("=prod", 0),
    ("env=prod,", 9),
    ("env in ()", 8),
    ("env in prod", 7),
    ("Bad_Key!", 7),
    ("-bad=1", 0),
    ("env=bad value", 8),
    ("env=" + "v" * 64, 4),
    ("!", 1),
])
def test_errors_say_where(text, position):
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    assert info.value.position == position
    assert f"position {position}" in str(info.value)


async def test_list_with_selector_over_http(client):
    for name, labels in [("a", {"env": "prod"}), ("b", {"env": "dev"}), ("c", {})]:
        body = {"name": name, "type": "server", "ipAddress": "1", "labels": labels}
        assert (await client.post("/devices", json=body)).status_code == 201
    names = lambda r: [o["metadata"]["name"] for o in r.json()]  # noqa: E731
    assert names(await client.get("/devices", params={"labelSelector": "env=prod"})) == ["a"]
    assert names(await client.get("/devices", params={"labelSelector": "env!=prod"})) == ["b", "c"]
    bad = await client.get("/devices", params={"labelSelector": "env in (x"})
    assert bad.status_code == 400 and "position" in bad.json()["error"]


@pytest.mark.parametrize("labels, field", [
    ({"bad key": "x"}, "labels.bad key"),
    ({"ok": "bad value"}, "labels.ok"),
    ({"a/b/c": "x"}, "labels.a/b/c"),
    ({"x" * 64: "v"}, "labels." + "x" * 64),
    ({"k": "v" * 64}, "labels.k"),
])
async def test_label_rules_on_write(client, labels, field):
    response = await client.post("/devices", json={"name": "a", "type": "server",
                                                   "ipAddress": "1", "labels": labels})
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == field


async def test_annotation_keys_are_checked_but_values_are_free(client):
    ok = await client.post("/devices", json={"name": "a", "type": "server", "ipAddress": "1",
                                             "annotations": {"example.com/note": "any text!"}})
    assert ok.status_code == 201
    bad = await client.post("/devices", json={"name": "b", "type": "server", "ipAddress": "1",
                                              "annotations": {"no spaces": "x"}})
    assert bad.status_code == 400
