"""Helpers for end-to-end tests: run the real `fabrica` CLI and generated servers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests._support.wait import eventually_sync

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def fabrica(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "fabrica.cli", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"fabrica {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def make_device_project(root: Path) -> Path:
    fabrica("init", "device-api", cwd=root)
    project = root / "device-api"
    fabrica("add", "resource", "Device", "--prefix", "dev", cwd=project)
    shutil.copy(EXAMPLES / "device" / "device.py", project / "device_api/resources/device.py")
    fabrica("generate", cwd=project)
    return project


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A generated server running as a child process on a free port."""

    def __init__(self, project: Path, package: str, *args: str, env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self.port = port or free_port()  # a port of its own, or a stopped server's again
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = project / f"server-{self.port}.log"
        command = [sys.executable, "-m", f"{package}.server", "serve", "--host", "127.0.0.1",
                   "--port", str(self.port), "--no-access-log", *args]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, cwd=project, stdout=log,
                                            stderr=subprocess.STDOUT,
                                            env={**os.environ, **(env or {})})
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 30) -> None:
        def healthy() -> bool:
            if self.process.poll() is not None:  # fails at once: no use waiting
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.output()}")
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        try:
            eventually_sync(healthy, timeout=timeout, interval=0.1,
                            retry_on=(httpx.TransportError,))
        except AssertionError as exc:
            raise AssertionError(f"server not healthy in {timeout}s:\n{self.output()}") from exc

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it has not ended in 10 seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def takes_ctrl_c() -> None:
    """A child's `preexec_fn`: SIGINT ends it as Ctrl-C in a terminal would, however this
    suite was started (a shell's background job, ``make test &``, passes SIGINT on ignored,
    and Python then never turns it into KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


RACK_KINDS = ("RackTemplate", "Rack", "Chassis", "Blade", "BMC", "Node")
RACK_FILES = ("racktemplate", "rack", "chassis", "blade", "bmc", "node")


def make_rack_project(root: Path) -> Path:
    """The seed walkthrough, as its README says: init, add six kinds, copy, generate."""
    fabrica("init", "rack-inventory", "--module", "github.com/example/rack-inventory",
            "--storage-type", "file", "--events", "--events-bus", "memory", "--reconcile",
            cwd=root)
    project = root / "rack-inventory"
    for kind in RACK_KINDS:
        fabrica("add", "resource", kind, cwd=project)
    example = EXAMPLES / "rack-reconciliation"
    for name in RACK_FILES:
        shutil.copy(example / f"{name}.py", project / "rack_inventory" / "resources")
    shutil.copy(example / "rack_reconciler.py", project / "rack_inventory" / "reconcilers")
    (project / "rack_inventory" / "hooks").mkdir(exist_ok=True)
    shutil.copy(example / "node_hooks.py", project / "rack_inventory" / "hooks" / "node.py")
    fabrica("generate", cwd=project)
    return project


CONFIG_KIND = '''"""A versioned kind: every spec change keeps a snapshot."""

from pydantic import Field

from fabrica import Model, Resource


class ConfigSpec(Model):
    value: str = Field("", max_length=64)
    replicas: int = Field(1, ge=0, le=100)


class ConfigStatus(Model):
    phase: str = ""
    version: str = ""


class Config(Resource[ConfigSpec, ConfigStatus], prefix="cfg", versioning=True):
    """A versioned configuration."""
'''


def make_api_project(root: Path) -> Path:
    """A project with events on and two kinds, one versioned: the example Device and Config."""
    fabrica("init", "api-svc", "--events", cwd=root)
    project = root / "api-svc"
    fabrica("add", "resource", "Device", "--prefix", "dev", cwd=project)
    fabrica("add", "resource", "Config", "--prefix", "cfg", "--with-versioning", cwd=project)
    shutil.copy(EXAMPLES / "device" / "device.py", project / "api_svc/resources/device.py")
    (project / "api_svc/resources/config.py").write_text(CONFIG_KIND)
    fabrica("generate", cwd=project)
    return project
