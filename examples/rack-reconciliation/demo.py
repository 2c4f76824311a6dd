"""The rack reconciliation walkthrough (README.md beside this file), end to end.

fabrica init --events --reconcile → add the six kinds → copy this example's files →
generate → serve → curl, in a temporary directory, printing every step as a user would type
it. A small shared-BMC rack (2 × 4 × 2) and its lifecycle events; a larger dedicated one
whose provisioning is followed as it happens, with the server killed (SIGKILL) midway and
restarted; the reconciler's own io.fabrica.rack.provisioned, once per rack; a missing
template; self-healing; the cascade on delete; the controller's metrics.
Every count is checked against the template's arithmetic; any mismatch exits non-zero.
Run it with `make demo`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
FABRICA = [sys.executable, "-m", "fabrica.cli"]
KINDS = ["RackTemplate", "Rack", "Chassis", "Blade", "BMC", "Node"]
CHILDREN = ["chassis", "blades", "bmcs", "nodes"]  # list endpoints of what a rack provisions
RACK_UID_LABEL = "fabrica.io/rack-uid"
PROVISIONED = "io.fabrica.rack.provisioned"

SMALL = {"name": "standard-rack", "chassisCount": 2,
         "chassisConfig": {"bladeCount": 4, "bladeConfig": {"nodeCount": 2, "bmcMode": "shared"}},
         "description": "Standard 2-chassis rack"}
LARGE = {"name": "dense-rack", "chassisCount": 24,
         "chassisConfig": {"bladeCount": 16,
                           "bladeConfig": {"nodeCount": 4, "bmcMode": "dedicated"}},
         "description": "24 chassis of 16 blades, 4 nodes each, one BMC per node"}


class DemoFailed(Exception):
    pass


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def run(cmd: list[str], cwd: Path) -> None:
    shown = " ".join(["fabrica", *cmd[len(FABRICA):]] if cmd[:3] == FABRICA else cmd)
    print(f"$ {shown}", flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def expected(template: dict[str, Any]) -> dict[str, int]:
    """What a template asks for, per list endpoint."""
    chassis = template["chassisCount"]
    blades = chassis * template["chassisConfig"]["bladeCount"]
    per_blade = template["chassisConfig"]["bladeConfig"]
    nodes = blades * per_blade["nodeCount"]
    bmcs = blades if per_blade["bmcMode"] == "shared" else nodes
    return {"chassis": chassis, "blades": blades, "bmcs": bmcs, "nodes": nodes}


class Server:
    """`python -m rack_inventory.server serve` in the project, started and stopped."""

    def __init__(self, project: Path, port: int) -> None:
        self.project, self.port = project, port
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        print(f"$ python -m rack_inventory.server serve --port {self.port} --data-dir ./data",
              flush=True)
        cmd = [sys.executable, "-m", "rack_inventory.server", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--data-dir", "./data", "--no-access-log",
               "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, cwd=self.project)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoFailed(f"the server exited with code {self.proc.returncode}")
            try:
                if httpx.get(f"{self.base}/health").status_code == 200:
                    print(f"  (listening on {self.base})")
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise DemoFailed("the server did not become healthy within 30 s")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no draining; whatever was in flight is cut off."""
        assert self.proc is not None
        print(f"$ kill -9 {self.proc.pid}", flush=True)
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Walkthrough:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=30)

    def reconnect(self) -> None:
        """A fresh connection pool, after the server was restarted."""
        self.http.close()
        self.http = httpx.Client(base_url=self.base, timeout=30)

    def curl(self, method: str, path: str, body: Any = None, *, show: int = 300) -> Any:
        sent = (f" -H 'Content-Type: application/json' -d '{json.dumps(body)}'"
                if body is not None else "")
        verb = "" if method == "GET" else f"-X {method} "
        print(f"$ curl {verb}{self.base}{path}{sent}")
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        response = self.http.request(method, path, json=body, headers=headers)
        text = response.text
        shown = f"  {text[:show]}{' ...' if len(text) > show else ''}" if show else ""
        print(f"  HTTP {response.status_code}{shown}")
        if response.status_code >= 400:
            raise DemoFailed(f"{method} {path} answered {response.status_code}")
        return response.json()

    def counts(self, rack_uid: str) -> dict[str, int]:
        params = {"labelSelector": f"{RACK_UID_LABEL}={rack_uid}"}
        return {kind: len(self.http.get(f"/{kind}", params=params).json()) for kind in CHILDREN}

    def rack(self, name: str) -> dict[str, Any]:
        return self.http.get(f"/racks/{name}").json()

    def wait_for(self, name: str, phases: set[str], timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rack = self.rack(name)
            if rack["status"]["phase"] in phases:
                return rack
            time.sleep(0.1)
        raise DemoFailed(f"rack {name} did not reach {'/'.join(sorted(phases))} in {timeout} s")

    def follow(self, name: str, want: dict[str, int], *, until: float = 1.0,
               timeout: float = 60.0) -> float:
        """Print the children's counts every 0.5 s until the rack is Ready (or, with
        `until` < 1, until that share of its children exists); the time it took."""
        total = sum(want.values())
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            rack = self.rack(name)
            phase = rack["status"]["phase"]
            have = self.counts(rack["metadata"]["uid"])
            done = sum(have.values())
            bar = "#" * (30 * done // total)
            print(f"  {time.monotonic() - started:5.1f}s  {phase:12} [{bar:30}] "
                  + "  ".join(f"{kind} {have[kind]}/{want[kind]}" for kind in CHILDREN),
                  flush=True)
            if phase == "Ready" or (until < 1 and done >= until * total):
                return time.monotonic() - started
            if phase == "Error":
                raise DemoFailed(f"rack {name}: {rack['status']['message']}")
            time.sleep(0.5)
        raise DemoFailed(f"rack {name} was not Ready within {timeout} s")

    def check(self, name: str, want: dict[str, int], timeout: float = 15.0) -> None:
        """Counts from the list endpoints and the rack's status against the arithmetic,
        once the rack has settled (a reconcile may be running when this is called)."""
        deadline = time.monotonic() + timeout
        while True:
            rack = self.rack(name)
            uid, status = rack["metadata"]["uid"], rack["status"]
            have = self.counts(uid)
            totals = {"chassis": status["totalChassis"], "blades": status["totalBlades"],
                      "bmcs": status["totalBMCs"], "nodes": status["totalNodes"]}
            ready = [c for c in status["conditions"] if c["type"] == "Ready"]
            settled = (status["phase"] == "Ready" and ready and ready[0]["status"] == "True"
                       and status["observedGeneration"] == rack["metadata"]["generation"])
            if settled and have == want and totals == want:
                break
            if time.monotonic() > deadline:
                raise DemoFailed(f"rack {name}: phase {status['phase']}, listed {have}, "
                                 f"status says {totals}, the template asks for {want}")
            time.sleep(0.2)
        print(f"$ curl '{self.base}/nodes?labelSelector={RACK_UID_LABEL}={uid}' | jq length"
              "   # and the same for chassis, blades, bmcs")
        print("  " + "   ".join(f"{kind}: {have[kind]}" for kind in CHILDREN)
              + f"   (template: {', '.join(f'{want[k]} {k}' for k in CHILDREN)})")
        print(f"  OK: phase Ready, condition Ready=True, {status['message']}")


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="fabrica-rack-demo-"))
    project = workdir / "rack-inventory"
    server = Server(project, free_port())
    walk = Walkthrough(server.base)
    started = time.monotonic()
    try:
        build(workdir, project)
        step(f"Serve it on 127.0.0.1:{server.port}: file storage, memory event bus, "
             "the Rack reconciler")
        server.start()
        talk(walk, server)
        step("Stop the server")
        server.stop()
        print("$ ^C")
        print(f"\nDemo finished in {time.monotonic() - started:.0f} s: every rack was "
              "provisioned from its template with exact counts, across a kill -9; a deleted "
              "node came back; a deleted rack took its hardware with it.")
        return 0
    except (DemoFailed, subprocess.CalledProcessError, httpx.HTTPError) as exc:
        print(f"\n\033[31mDEMO FAILED: {exc}\033[0m", file=sys.stderr)
        return 1
    finally:
        walk.http.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def build(workdir: Path, project: Path) -> None:
    step(f"Create a project with events and reconciliation, in {workdir}")
    run([*FABRICA, "init", "rack-inventory", "--module", "github.com/example/rack-inventory",
         "--storage-type", "file", "--events", "--events-bus", "memory", "--reconcile"],
        workdir)
    print("$ cd rack-inventory")
    step("Add the six resources")
    for kind in KINDS:
        run([*FABRICA, "add", "resource", kind], project)
    step("Replace the starter definitions with this example's, and add the rack reconciler")
    files = [f"{kind.lower()}.py" for kind in KINDS]
    for name in files:
        shutil.copy(HERE / name, project / "rack_inventory" / "resources" / name)
    print(f"$ cp examples/rack-reconciliation/{{{','.join(f[:-3] for f in files)}}}.py "
          "rack_inventory/resources/")
    shutil.copy(HERE / "rack_reconciler.py", project / "rack_inventory" / "reconcilers")
    print("$ cp examples/rack-reconciliation/rack_reconciler.py rack_inventory/reconcilers/")
    (project / "rack_inventory" / "hooks").mkdir(exist_ok=True)
    shutil.copy(HERE / "node_hooks.py", project / "rack_inventory" / "hooks" / "node.py")
    print("$ mkdir -p rack_inventory/hooks && "
          "cp examples/rack-reconciliation/node_hooks.py rack_inventory/hooks/node.py")
    step("Generate: handlers, client, reconciler bases and stubs (rack_reconciler.py is kept)")
    run([*FABRICA, "generate"], project)


def talk(w: Walkthrough, server: Server) -> None:
    events = EventTap(f"{w.base}/events?type=io.fabrica.rack.*")
    step("A template: 2 chassis × 4 blades × 2 nodes, one shared BMC per blade")
    template = w.curl("POST", "/racktemplates", SMALL)
    step("A rack from it: the API answers at once (Pending), the reconciler provisions it")
    w.curl("POST", "/racks", {"name": "rack-01", "templateUID": template["metadata"]["uid"],
                              "location": "datacenter-1"})
    w.wait_for("rack-01", {"Ready", "Error"})
    rack = w.curl("GET", "/racks/rack-01", show=0)
    print("  status: " + json.dumps({k: rack["status"][k] for k in (
        "phase", "totalChassis", "totalBlades", "totalNodes", "totalBMCs")}))
    w.check("rack-01", expected(SMALL))
    print(f"$ curl -N '{events.url}'   # meanwhile, in another terminal:")
    for event in events.wait(1, PROVISIONED):
        data = event["data"]
        if event["action"] not in ("created", "updated", "patched", "deleted"):
            print(f"  {event['type']:28} {event['subject']:22} {json.dumps(data['details'])}")
            continue
        what = (data.get("metadata") or {}).get("updateType", "spec")
        phase = data.get("resource", {}).get("status", {}).get("phase", "-")
        print(f"  {event['type']:28} {event['subject']:22} {what:6}  phase {phase}")
    step("The reconciler's own event, io.fabrica.rack.provisioned: once, when first Ready")
    announced = [e for e in events.wait(1, PROVISIONED) if e["type"] == PROVISIONED]
    if len(announced) != 1:
        raise DemoFailed(f"rack-01 was announced {len(announced)} times, not once")
    print(f"  {json.dumps(announced[0])}")
    print(f"  status.provisionedAt: {rack['status']['provisionedAt']}  (the record that it "
          "was sent: later reconciles, requeues and restarts do not send it again)")

    want = expected(LARGE)
    config = LARGE["chassisConfig"]
    step(f"A larger template, one BMC per node: {LARGE['chassisCount']} × "
         f"{config['bladeCount']} × {config['bladeConfig']['nodeCount']} → "
         f"{sum(want.values())} resources")
    template = w.curl("POST", "/racktemplates", LARGE)
    w.curl("POST", "/racks", {"name": "rack-02", "templateUID": template["metadata"]["uid"],
                              "location": "datacenter-1", "row": "B"})
    step("Follow the provisioning (list counts every 0.5 s) ... and kill the server midway")
    w.follow("rack-02", want, until=0.4)
    server.kill()
    step("Restart it: the controller reconciles every existing rack at start")
    server.start()
    w.reconnect()
    provisioned = EventTap(f"{w.base}/events?type={PROVISIONED}")
    print(f"$ curl -N '{provisioned.url}'   # in another terminal")
    w.follow("rack-02", want)
    w.check("rack-02", want)

    step("A rack whose template does not exist: phase Error, a clear message, no children")
    w.curl("POST", "/racks", {"name": "rack-03", "templateUID": "rktmpl-00000000"})
    rack = w.wait_for("rack-03", {"Error", "Ready"})
    print(f"$ curl {w.base}/racks/rack-03 | jq .status.message")
    print(f"  {json.dumps(rack['status']['message'])}")
    have = w.counts(rack["metadata"]["uid"])
    if rack["status"]["phase"] != "Error" or any(have.values()):
        raise DemoFailed(f"rack-03: phase {rack['status']['phase']}, children {have}")
    print(f"  OK: phase Error, no children ({have})")

    step("Self-healing: delete a node; the rack reconciler puts it back")
    node = "/nodes/rack-01-c1-b2-n0"
    old = w.http.get(node).json()["metadata"]["uid"]
    w.curl("DELETE", node)
    new = wait_recreated(w, node, old)
    print(f"$ curl {w.base}{node} | jq .metadata.uid")
    print(f"  \"{new}\"   (was \"{old}\")")
    w.check("rack-01", expected(SMALL))

    step("Since the restart: one io.fabrica.rack.provisioned, for rack-02 only")
    time.sleep(1.0)  # let the reconciles of the self-healing settle and their events arrive
    names = [e["data"]["resourceName"] for e in provisioned.wait(1, PROVISIONED)]
    for event in provisioned.seen():
        print(f"  {event['type']} {event['subject']} {json.dumps(event['data']['details'])}")
    if names != ["rack-02"]:
        raise DemoFailed(f"provisioned events since the restart: {names}, not ['rack-02']")
    print("  OK: rack-02 announced once (it became Ready after the restart); rack-01, "
          "reconciled again at start and when its node came back, was not announced again")
    provisioned.close()

    step("Delete a rack: everything it provisioned goes too (owner references, "
         "garbage-collected in the background)")
    uid = w.rack("rack-01")["metadata"]["uid"]
    w.curl("DELETE", "/racks/rack-01")
    deadline = time.monotonic() + 30
    while any((left := w.counts(uid)).values()):
        if time.monotonic() > deadline:
            raise DemoFailed(f"rack-01's children are still there after 30 s: {left}")
        time.sleep(0.2)
    print(f"$ curl '{w.base}/nodes?labelSelector={RACK_UID_LABEL}={uid}' | jq length")
    print(f"  0   (all of them: {left})")

    step("The controller's metrics")
    print(f"$ curl -s {w.base}/metrics | grep '^fabrica_reconcile_total'")
    for line in w.http.get("/metrics").text.splitlines():
        if line.startswith("fabrica_reconcile_total"):
            print(f"  {line}")


class EventTap:
    """`curl -N URL` in the background: the CloudEvents of a server-sent event stream.

    A plain socket speaking HTTP/1.0 (no chunked framing), so `close` can hang up at once.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._events: list[dict[str, Any]] = []
        address = httpx.URL(url)
        self._sock = socket.create_connection((address.host, address.port), timeout=10)
        self._sock.settimeout(None)
        target = address.raw_path.decode()
        self._sock.sendall(f"GET {target} HTTP/1.0\r\n\r\n".encode())
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._connected.wait(10):
            raise DemoFailed(f"no event stream at {url}")

    def _read(self) -> None:
        try:
            with self._sock.makefile("rb") as stream:
                for raw in stream:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith(":"):
                        self._connected.set()
                    elif line.startswith("data:"):
                        self._events.append(json.loads(line[5:]))
        except (OSError, ValueError):
            return  # the server went away (the demo kills it)

    def seen(self) -> list[dict[str, Any]]:
        return list(self._events)

    def wait(self, count: int, type: str = "", timeout: float = 10.0) -> list[dict[str, Any]]:
        """The events once `count` of them (of `type`, if given) arrived, or after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len([e for e in self._events if e["type"].endswith(type)]) >= count:
                break
            time.sleep(0.05)
        return self.seen()

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(5)
        self._sock.close()


def wait_recreated(w: Walkthrough, path: str, old_uid: str, timeout: float = 30.0) -> str:
    """The uid of the resource at `path` once it exists again under a new uid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = w.http.get(path)
        if response.status_code == 200 and response.json()["metadata"]["uid"] != old_uid:
            return str(response.json()["metadata"]["uid"])
        time.sleep(0.1)
    raise DemoFailed(f"{path} was not recreated within {timeout} s")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
