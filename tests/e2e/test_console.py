"""The web console (SPEC section 14) of the rack example, in a real headless Chromium.

Every page is opened, drawn and photographed (the screenshots go to the test's tmp dir, or
to ``FABRICA_CONSOLE_SCREENSHOTS``), driven with the keyboard where a user could, and every
request the pages make is checked to stay on the server (no CDN, no internet)."""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests._support.cdp import Browser
from tests._support.console import Console, browser_for, screenshot_dir
from tests._support.e2e import Server, make_device_project, make_rack_project
from tests._support.wait import eventually_sync

pytestmark = pytest.mark.e2e

PKG = "rack_inventory"
RACK_LABEL = "fabrica.io/rack-uid"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rack_project(tmp_path_factory.mktemp("console"))


@pytest.fixture(scope="module")
def server(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(project, PKG, "--data-dir", str(tmp_path_factory.mktemp("data")))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with browser_for(tmp_path_factory.mktemp("chromium")) as found:
        yield found


@contextmanager
def console_on(browser: Browser, url: str, tmp_path: Path) -> Iterator[Console]:
    page = Console(browser, url, screenshot_dir(tmp_path))
    try:
        yield page
        assert page.external_requests() == []  # everything came from the service itself
        assert page.errors() == []
    finally:
        page.page.close()


@pytest.fixture
def console(browser: Browser, server: Server, tmp_path: Path) -> Iterator[Console]:
    with console_on(browser, server.url, tmp_path) as page:
        yield page


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def template(api: httpx.Client, name: str, chassis: int = 1, blades: int = 1, nodes: int = 1,
             mode: str = "shared") -> dict:
    response = api.post("/racktemplates", json={
        "name": name, "chassisCount": chassis,
        "chassisConfig": {"bladeCount": blades,
                          "bladeConfig": {"nodeCount": nodes, "bmcMode": mode}}})
    assert response.status_code == 201, response.text
    return response.json()


# The shared helper, with the time a generated server's reconcilers may need when loaded.
wait_until = functools.partial(eventually_sync, timeout=60.0, interval=0.1)


def list_requests(console: Console, plural: str) -> list[str]:
    return [url for url in console.page.requested_urls()
            if f"/{plural}?" in url and "watch=true" not in url]


# -- kinds -----------------------------------------------------------------------------------

def test_kinds_page_lists_every_kind_of_the_openapi_document(console: Console,
                                                             api: httpx.Client) -> None:
    console.open()
    tags = {op["tags"][0] for path, item in api.get("/openapi.json").json()["paths"].items()
            if path.count("/") == 1 for op in item.values() if "tags" in op} - {"system"}
    assert set(console.texts("table.kinds tbody th a")) == tags
    assert console.js("document.querySelector('table.kinds a[href=\"#/kinds/racks\"]') !== "
                      "null")
    assert "events on" in console.text("main")
    console.shot("kinds")


def test_a_path_deep_link_opens_the_page_it_names(console: Console, api: httpx.Client) -> None:
    made = template(api, "deep-link")
    console.open_url(f"{console.url}/ui/kinds/racktemplates/{made['metadata']['uid']}")
    assert console.js("location.hash") == f"#/kinds/racktemplates/{made['metadata']['uid']}"
    assert "deep-link" in console.text("h1")


# -- the live table --------------------------------------------------------------------------

def test_table_filters_by_label_and_pages_only_as_far_as_the_user_scrolls(
    console: Console, api: httpx.Client
) -> None:
    def bmc(i: int) -> None:
        made = api.post("/bmcs", json={"metadata": {"name": f"bulk-{i:04d}",
                                                    "labels": {"bulk": "yes"}},
                                       "spec": {"bladeUID": "blade-00000000"}})
        assert made.status_code == 201, made.text
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(bmc, range(1000)))
    api.post("/bmcs", json={"name": "not-bulk", "bladeUID": "blade-00000000"})

    console.open("kinds/bmcs")
    console.fill("#label-selector", "bulk=yes")
    console.press("Enter")  # submits the filter form: the route holds the selector
    console.wait("location.hash === '#/kinds/bmcs?labelSelector=bulk%3Dyes'")
    console.wait_ready()
    console.wait("document.querySelector('.status').textContent.startsWith('200 bmcs loaded')")
    assert len(list_requests(console, "bmcs")) == 2  # unfiltered first, then one page filtered
    assert console.count(".vt-body .vt-row") < 40  # only what is visible, and a few more
    console.shot("table-bmcs")

    console.focus(".vt-body .vt-row[tabindex='0']")
    for _ in range(30):  # End: the last row loaded; near it, the next page comes
        console.press("End")
        if "1,000 bmcs loaded ·" in console.text(".status"):
            break
        time.sleep(0.1)
    console.wait("document.querySelector('.status').textContent.startsWith('1,000 bmcs loaded ·')")
    # End moves to the last row loaded when it is pressed: if the last page arrived after
    # the last press (a slow machine), one more press reaches the new last row.
    console.press("End")
    console.wait("document.activeElement.dataset.name === 'bulk-0999'")
    filtered = [url for url in list_requests(console, "bmcs") if "bulk" in url]
    assert len(filtered) == 5 and all("limit=200" in url for url in filtered)
    assert console.count(".vt-body .vt-row") < 40
    assert console.js("document.querySelector('.vt').getAttribute('aria-rowcount')") == "1001"
    assert "not-bulk" not in console.js("[...document.querySelectorAll('.vt-row')]"
                                        ".map(r => r.dataset.name).join()")


def test_end_pressed_before_the_next_frame_reaches_the_new_last_row(console: Console) -> None:
    """A page of rows arrives and End is pressed before the browser draws again (a busy
    machine): End goes to the new last row. (The table grew its scroll range only when it
    drew, so the scroll stopped at the old end and the focus fell on a row near it.)"""
    console.open()
    name = console.js("""(async () => {
      const {VirtualTable} = await import('/ui/js/vtable.js');
      const table = new VirtualTable({label: 't', rowHref: () => '#', onNeedMore: () => {}});
      document.body.append(table.el);
      const item = (i) => ({metadata: {uid: `u${i}`, name: `n${String(i).padStart(4, '0')}`,
                                      labels: {}, createdAt: new Date().toISOString()},
                            spec: {}, status: {}});
      const items = (n) => Array.from({length: n}, (_, i) => item(i));
      table.setItems(items(100), true);
      await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 50)));
      table.moveTo(99);
      table.setItems(items(200), false);  // the next page, not drawn yet ...
      document.activeElement.dispatchEvent(  // ... when End is pressed
        new KeyboardEvent('keydown', {key: 'End', bubbles: true}));
      const name = document.activeElement.dataset.name;
      table.el.remove();
      return name;
    })()""")
    assert name == "n0199"


def test_a_field_selector_filter_shows_when_the_kind_documents_one(
    console: Console, api: httpx.Client
) -> None:
    """Lists that take ``fieldSelector`` (SPEC section 10) get a filter for it, with the
    document's description as its help; the others do not. Every kind documents one now, so
    the document is served here with the parameter taken out of one kind's list."""
    doc = api.get("/openapi.json").json()
    params = doc["paths"]["/racktemplates"]["get"]["parameters"]
    help_text = next(p["description"] for p in params if p["name"] == "fieldSelector")
    bmcs = doc["paths"]["/bmcs"]["get"]
    bmcs["parameters"] = [p for p in bmcs["parameters"] if p["name"] != "fieldSelector"]
    console.page.send("Fetch.enable", {"patterns": [{"urlPattern": "*/openapi.json"}]})
    console.page.goto(f"{console.url}/ui/#/kinds/racktemplates")
    held = console.page.wait_event("Fetch.requestPaused")
    console.page.send("Fetch.fulfillRequest", {
        "requestId": held["requestId"], "responseCode": 200,
        "responseHeaders": [{"name": "Content-Type", "value": "application/json"}],
        "body": base64.b64encode(json.dumps(doc).encode()).decode()})
    console.page.send("Fetch.disable")
    console.wait_ready()
    assert console.text("label[for=field-selector]") == "Field selector"
    assert console.text("#field-selector-help") == help_text
    console.fill("#field-selector", "metadata.name=x")
    console.press("Enter")
    console.wait("location.hash === '#/kinds/racktemplates?fieldSelector=metadata.name%3Dx'")
    console.wait_ready()
    assert any("fieldSelector=metadata.name%3Dx" in url
               for url in list_requests(console, "racktemplates"))
    console.go("kinds/bmcs")
    assert console.count("#field-selector") == 0 and console.count("#label-selector") == 1


def test_table_updates_live_resumes_after_a_cut_and_lists_again_after_410(
    project: Path, browser: Browser, tmp_path: Path
) -> None:
    data = str(tmp_path / "data")
    server = Server(project, PKG, "--data-dir", data, "--watch-history", "3")
    try:
        with console_on(browser, server.url, tmp_path) as console, \
                httpx.Client(base_url=server.url, timeout=30) as api:
            template(api, "live-0")
            console.open("kinds/racktemplates")
            console.wait("document.querySelector('.status').dataset.state === 'live'")
            console.js("window.notReloaded = true")
            seen = template(api, "live-1")["metadata"]["resourceVersion"]  # no reload
            console.wait("!!document.querySelector('.vt-row[data-name=\"live-1\"]')")
            assert console.js("window.notReloaded") is True
            console.shot("table-live")

            # A cut: the server restarts. The console connects again from the last version
            # it saw; its new watch is held here until a change is made meanwhile.
            console.page.send("Fetch.enable", {"patterns": [{"urlPattern": "*watch=true*"}]})
            server = restart(server, project, data)
            held = console.page.wait_event("Fetch.requestPaused", timeout=30)
            assert f"resourceVersion={seen}&" in held["request"]["url"] + "&"  # the last seen
            template(api, "live-2")
            console.page.send("Fetch.continueRequest", {"requestId": held["requestId"]})
            console.wait("!!document.querySelector('.vt-row[data-name=\"live-2\"]')")
            assert len(list_requests(console, "racktemplates")) == 1  # resumed, not relisted

            # Cut again, and more changes meanwhile than the server keeps: 410, list again.
            server = restart(server, project, data)
            held = console.page.wait_event("Fetch.requestPaused", timeout=30)
            for i in range(3, 8):
                template(api, f"live-{i}")
            console.page.send("Fetch.continueRequest", {"requestId": held["requestId"]})
            after = console.page.wait_event("Fetch.requestPaused", timeout=30)  # new watch
            console.page.send("Fetch.continueRequest", {"requestId": after["requestId"]})
            console.page.send("Fetch.disable")
            console.wait("!!document.querySelector('.vt-row[data-name=\"live-7\"]')")
            assert len(list_requests(console, "racktemplates")) == 2
            assert console.js("window.notReloaded") is True
    finally:
        server.stop()


def restart(server: Server, project: Path, data: str) -> Server:
    server.stop()
    return Server(project, PKG, "--data-dir", data, "--watch-history", "3", port=server.port)


# -- the resource page -----------------------------------------------------------------------

def test_rack_page_shows_spec_status_conditions_tree_events_and_yaml(
    console: Console, api: httpx.Client
) -> None:
    uid = template(api, "tree-template", 2, 2, 2, "dedicated")["metadata"]["uid"]
    api.post("/racks", json={"name": "tree-01", "templateUID": uid, "location": "room-7"})
    rack = wait_until(lambda: (r := api.get("/racks/tree-01").json())["status"]["phase"]
                      == "Ready" and r)
    expected = {kind: len(api.get(f"/{plural}", params={
        "labelSelector": f"{RACK_LABEL}={rack['metadata']['uid']}"}).json())
        for kind, plural in (("Chassis", "chassis"), ("Blade", "blades"), ("Node", "nodes"),
                             ("BMC", "bmcs"))}

    console.open(f"kinds/racks/{rack['metadata']['uid']}")
    assert "tree-01" in console.text("h1")
    assert "room-7" in console.text("#section-spec")
    assert "Ready" in console.text("#section-status")
    assert console.texts("#section-conditions tbody tr")[0].split("\t")[:2] == ["Ready", "True"]
    summary = console.text(".dependents .status")
    total = sum(expected.values())
    assert summary.startswith(f"{total} dependents: ")
    for kind, count in expected.items():
        assert f"{count} {kind}" in summary
    shown = yaml.safe_load(console.text("pre.yaml"))
    assert shown == api.get(f"/racks/{rack['metadata']['uid']}").json()

    # Recent events: a change made now shows on the page.
    api.patch("/racks/tree-01", json={"datacenter": "dc-east"})
    console.wait("document.querySelector('.event-list').innerText"
                 ".includes('io.fabrica.rack.patched')")

    # The tree with the keyboard: open a chassis, then a blade, then go to a node.
    console.focus(".tree [role=treeitem][tabindex='0']")
    console.press("ArrowRight")
    console.press("ArrowDown")
    assert console.js("document.activeElement.querySelector('.kind').textContent") == "Blade"
    blade = console.js("document.activeElement.dataset.uid")
    console.press("ArrowRight")
    console.press("ArrowDown")
    child = console.js("document.activeElement.querySelector('a').textContent")
    console.js("document.getElementById('section-dependents').scrollIntoView()")
    console.shot("rack-tree")
    console.press("Enter")
    console.wait(f"document.querySelector('h1').innerText.includes({json.dumps(child)})")
    console.wait_ready()
    owner = console.js("document.querySelector('#section-summary a[href^=\"#/kinds/blades/\"]')"
                       ".getAttribute('href')")
    assert owner == f"#/kinds/blades/{blade}"
    console.shot("node-page", full_page=True)


def test_events_off_is_said_on_the_resource_page(browser: Browser, tmp_path: Path) -> None:
    project = make_device_project(tmp_path)
    server = Server(project, "device_api", "--data-dir", str(tmp_path / "data"))
    try:
        with console_on(browser, server.url, tmp_path) as console:
            made = httpx.post(f"{server.url}/devices", json={
                "name": "quiet", "type": "server", "ipAddress": "10.0.0.2"}).json()
            console.open(f"kinds/devices/{made['metadata']['uid']}")
            assert "Events are off for this service" in console.text("#section-events")
            assert not [url for url in console.page.requested_urls()
                        if url.startswith(f"{server.url}/events")]
    finally:
        server.stop()


# -- edit, delete, create --------------------------------------------------------------------

def test_a_stale_edit_says_412_and_shows_the_newer_version(console: Console,
                                                            api: httpx.Client) -> None:
    made = template(api, "edit-me")
    console.open(f"kinds/racktemplates/{made['metadata']['uid']}/edit")
    console.fill("[data-path='spec.description'] input", "from the console")
    changed = api.patch("/racktemplates/edit-me", json={"chassisCount": 3})  # someone else
    assert changed.status_code == 200
    console.focus("form.editor button[type=submit]")
    console.press("Enter")
    console.wait("!document.querySelector('.conflict').hidden")
    text = console.text(".conflict")
    assert "changed since you opened it" in text and "412 Precondition failed" in text
    assert "chassisCount: 3" in console.text(".conflict pre.yaml")
    assert "spec.chassisCount: 1 → 3" in text
    console.shot("edit-conflict", full_page=True)
    assert api.get("/racktemplates/edit-me").json()["spec"].get("description", "") == ""

    console.click(".conflict button")  # start again from the newer version
    assert console.js("document.querySelector(\"[data-path='spec.chassisCount'] input\").value"
                      ) == "3"
    console.fill("[data-path='spec.description'] input", "from the console")
    console.focus("form.editor button[type=submit]")
    console.press("Enter")
    console.wait("document.querySelector('.notice.success')?.innerText === "
                 "'Saved RackTemplate edit-me.'")
    spec = api.get("/racktemplates/edit-me").json()["spec"]
    assert (spec["chassisCount"], spec["description"]) == (3, "from the console")


def test_delete_asks_first_and_cancel_keeps_the_resource(console: Console,
                                                         api: httpx.Client) -> None:
    made = template(api, "doomed")
    console.open(f"kinds/racktemplates/{made['metadata']['uid']}")
    console.focus("button.danger")
    console.press("Enter")
    console.wait("!!document.querySelector('dialog[open]')")
    assert "Delete RackTemplate doomed?" in console.text("dialog")
    assert console.focused() == "Cancel"
    console.shot("delete-confirm")
    console.press("Escape")
    console.wait("!document.querySelector('dialog')")
    assert api.get("/racktemplates/doomed").status_code == 200

    console.focus("button.danger")
    console.press("Enter")
    console.wait("!!document.querySelector('dialog[open]')")
    console.press("Tab", shift=True)
    assert console.focused() == "Delete"
    console.press("Enter")
    console.wait("document.querySelector('.notice.success')?.innerText === "
                 "'Deleted RackTemplate doomed.'")
    assert console.js("location.hash") == "#/kinds/racktemplates"
    assert api.get("/racktemplates/doomed").status_code == 404


def test_create_form_shows_each_validation_error_next_to_its_field(
    console: Console, api: httpx.Client
) -> None:
    console.open("kinds/racktemplates/_new")
    values = {"metadata.name": "made-here", "spec.chassisCount": "43",
              "spec.chassisConfig.bladeCount": "0",
              "spec.chassisConfig.bladeConfig.nodeCount": "9"}
    for path, value in values.items():
        console.fill(f"[data-path='{path}'] input", value)
    console.focus("form.editor button[type=submit]")
    console.press("Enter")
    console.wait("!document.querySelector('.error-summary').hidden")
    refused = api.post("/racktemplates", json={
        "metadata": {"name": "made-here"},
        "spec": {"chassisCount": 43, "chassisConfig": {
            "bladeCount": 0, "bladeConfig": {"nodeCount": 9, "bmcMode": ""}}}})
    details = refused.json()["details"]
    assert len(details) == 4
    for detail in details:
        shown = console.text(f"[data-path='{detail['field']}'] > .field-error")
        assert detail["message"] in shown, (detail, shown)
        assert console.js(f"document.querySelector(\"[data-path='{detail['field']}'] "
                          "[aria-invalid='true']\") !== null")
    assert console.focused().startswith("400 Bad request")  # the summary, read first
    console.shot("create-errors", full_page=True)

    for path, value in {"spec.chassisCount": "2", "spec.chassisConfig.bladeCount": "2",
                        "spec.chassisConfig.bladeConfig.nodeCount": "2"}.items():
        console.fill(f"[data-path='{path}'] input", value)
    console.js("document.querySelector(\"[data-path='spec.chassisConfig.bladeConfig.bmcMode']"
               " select\").value = 'shared'")
    console.focus("form.editor button[type=submit]")
    console.press("Enter")
    console.wait("document.querySelector('.notice.success')?.innerText === "
                 "'Created RackTemplate made-here.'")
    assert api.get("/racktemplates/made-here").json()["spec"]["chassisCount"] == 2


# -- keyboard and the YAML emitter -----------------------------------------------------------

def test_the_console_works_from_the_keyboard(console: Console, api: httpx.Client) -> None:
    template(api, "keyed")
    console.open()
    order = []
    for _ in range(12):
        console.press("Tab")
        order.append(console.focused())
        if order[-1] == "RackTemplate":
            break
    assert order[0] == "Skip to content" and order[-1] == "RackTemplate", order
    ring = console.js("getComputedStyle(document.activeElement).outlineStyle")
    assert ring != "none"
    console.press("Enter")
    console.wait("location.hash === '#/kinds/racktemplates'")
    console.wait_ready()
    console.wait("!!document.querySelector('.vt-row[data-name=\"keyed\"]')")
    for _ in range(10):
        console.press("Tab")
        if console.js("document.activeElement.classList.contains('vt-row')"):
            break
    assert console.js("document.activeElement.getAttribute('role')") == "row"
    while console.js("document.activeElement.dataset.name") != "keyed":
        console.press("ArrowDown")
    console.press(" ")
    console.wait("document.querySelector('h1').innerText.includes('keyed')")


def test_the_yaml_emitter_round_trips_through_a_yaml_parser(console: Console) -> None:
    value = {
        "plain": "web-01", "empty": "", "true": "true", "no": "no", "on": "On", "null": "null",
        "tilde": "~", "number": "1.0", "hex": "0x1f", "octal": "0o17", "date": "2026-01-01",
        "time": "1:20", "colon": "a: b", "hash": "a #b", "dash": "- x", "at": "@x",
        "tick": "`x", "quotes": "it's \"q\"", "lead": " x", "trail": "x ", "tab": "a\tb",
        "multi": "one\ntwo\n", "multi2": "one\n\ntwo", "unicode": "é ✓", "eq": "=",
        "merge": "<<", "1": 1, "a b": [1, -1.5, 1e21, 0.1, True, False, None],
        "fabrica.io/rack-uid": "rack-1a2b3c4d", "nested": [{"a": {"b": [{"c": []}]}},
                                                          [], {}, [["x"]], {"k": {}}],
        "ctrl": "bell\u0007", "percent": "%x", "star": "*x", "amp": "&x", "bang": "!x",
    }
    console.open()
    text = console.js(f"import('/ui/js/yaml.js').then(m => m.toYaml({json.dumps(value)}))")
    assert yaml.safe_load(text) == value, text


def test_text_has_enough_contrast_on_every_page(console: Console, api: httpx.Client) -> None:
    made = template(api, "contrast", 1, 1, 1)
    console.open()
    pages = {"kinds": console.low_contrast()}
    console.go("kinds/racktemplates")
    pages["table"] = console.low_contrast()
    console.go(f"kinds/racktemplates/{made['metadata']['uid']}")
    pages["resource"] = console.low_contrast()
    console.go("kinds/racktemplates/_new")
    console.focus("form.editor button[type=submit]")
    console.press("Enter")
    console.wait("!document.querySelector('.error-summary').hidden")
    pages["form errors"] = console.low_contrast()
    assert pages == {name: [] for name in pages}
