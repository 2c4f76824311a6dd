"""The Device walkthrough, end to end, as a user would type it.

fabrica init → add resource → (edit device.py) → generate → serve → curl, in a temporary
directory, printing every step. Run it with `make demo`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
FABRICA = [sys.executable, "-m", "fabrica.cli"]


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


def show(method: str, url: str, response: httpx.Response, body: object = None) -> None:
    sent = f" -d '{json.dumps(body)}'" if body is not None else ""
    print(f"$ curl -X {method} {url}{sent}")
    print(f"  HTTP {response.status_code}  {response.text[:400]}")


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="fabrica-demo-"))
    project = workdir / "device-api"
    server: subprocess.Popen[bytes] | None = None
    try:
        step(f"Create a project in {workdir}")
        run([*FABRICA, "init", "device-api", "--description", "Network device inventory"],
            workdir)
        step("Add the Device resource and give it the fields of SPEC.md")
        run([*FABRICA, "add", "resource", "Device", "--prefix", "dev"], project)
        shutil.copy(HERE / "device.py", project / "device_api" / "resources" / "device.py")
        print("$ cp examples/device/device.py device_api/resources/device.py")
        step("Generate the service")
        run([*FABRICA, "generate"], project)

        port = free_port()
        step(f"Serve it on 127.0.0.1:{port} with file storage in ./data")
        cmd = [sys.executable, "-m", "device_api.server", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--data-dir", "./data", "--no-access-log"]
        print("$ python -m device_api.server serve --port", port, "--data-dir ./data")
        server = subprocess.Popen(cmd, cwd=project)
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, server)
        talk(base)

        step("What is on disk")
        for path in sorted((project / "data").rglob("*.json")):
            print(f"  {path.relative_to(project)}  ({path.stat().st_size} bytes)")
        print("\nDemo finished: the generated service created, read, updated and deleted "
              "resources over HTTP, persisted as JSON files.")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def wait_until_healthy(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("the server did not become healthy within 30 s")


def talk(base: str) -> None:
    with httpx.Client(base_url=base) as http:
        step("Create a device (flat body, as Fabrica)")
        body = {"name": "web-01", "type": "server", "ipAddress": "10.0.0.1",
                "labels": {"rack": "r1"}}
        created = http.post("/devices", json=body)
        show("POST", f"{base}/devices", created, body)
        uid = created.json()["metadata"]["uid"]

        step("Validation: a bad port and an unknown type are refused with field paths")
        bad = {"name": "bad-01", "type": "toaster", "ipAddress": "10.0.0.9", "port": 0}
        show("POST", f"{base}/devices", http.post("/devices", json=bad), bad)

        step("A second device with the same name is a conflict")
        show("POST", f"{base}/devices", http.post("/devices", json=body), body)

        step("Get it by name and by uid")
        show("GET", f"{base}/devices/web-01", http.get("/devices/web-01"))
        show("GET", f"{base}/devices/{uid}", http.get(f"/devices/{uid}"))

        step("Replace the spec (generation grows) and then the status (generation stays)")
        new_spec = {"spec": {"type": "server", "ipAddress": "10.0.0.1", "port": 8443}}
        show("PUT", f"{base}/devices/{uid}", http.put(f"/devices/{uid}", json=new_spec),
             new_spec)
        status = {"health": "ok", "errorCount": 0}
        show("PUT", f"{base}/devices/{uid}/status",
             http.put(f"/devices/{uid}/status", json=status), status)

        step("List, then delete")
        http.post("/devices", json={"name": "sw-01", "type": "switch", "ipAddress": "10.0.0.2"})
        listed = http.get("/devices")
        print(f"$ curl {base}/devices")
        for item in listed.json():
            meta = item["metadata"]
            print(f"  {meta['name']:8} {meta['uid']}  generation={meta['generation']} "
                  f"resourceVersion={meta['resourceVersion']} health={item['status']['health']}")
        show("DELETE", f"{base}/devices/sw-01", http.delete("/devices/sw-01"))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
