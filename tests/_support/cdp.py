"""A headless Chromium driven over the Chrome DevTools Protocol, just enough for page tests.

No browser is downloaded: this starts the system's ``chromium`` (Debian's package) with
``--remote-debugging-port=0``, reads the port it chose from ``DevToolsActivePort``, and
speaks CDP over one websocket (the ``websockets`` package, which uvicorn brings along).
Pages are flat sessions of that one connection.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests._support.e2e import stop_process
from tests._support.wait import eventually_sync

# key: (code, windowsVirtualKeyCode, text it types)
_KEYS = {"Enter": ("Enter", 13, "\r"), "Tab": ("Tab", 9, ""), " ": ("Space", 32, " "),
         "Escape": ("Escape", 27, ""), "ArrowDown": ("ArrowDown", 40, ""),
         "ArrowUp": ("ArrowUp", 38, ""), "ArrowLeft": ("ArrowLeft", 37, ""),
         "ArrowRight": ("ArrowRight", 39, ""), "Home": ("Home", 36, ""),
         "End": ("End", 35, ""), "PageDown": ("PageDown", 34, ""),
         "PageUp": ("PageUp", 33, "")}

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--mute-audio")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, profile: Path, timeout: float = 20.0) -> None:
        executable = chromium()
        if executable is None:
            raise RuntimeError("chromium is not installed")
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._taken: set[int] = set()  # indexes of events wait_event returned
        self._next_id = 0
        self.process = subprocess.Popen(
            [executable, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._stack = contextlib.ExitStack()
        self._stack.callback(stop_process, self.process)
        try:
            port, path = self._endpoint(profile / "DevToolsActivePort")
            self.ws: ClientConnection = self._stack.enter_context(connect(
                f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=timeout))
        except BaseException:
            self._stack.close()
            raise

    def _endpoint(self, port_file: Path) -> tuple[str, str]:
        def written() -> tuple[str, str] | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}")
            lines = port_file.read_text().split() if port_file.exists() else []
            return (lines[0], lines[1]) if len(lines) == 2 else None
        try:
            return eventually_sync(written, timeout=self.timeout, interval=0.05)
        except AssertionError as exc:
            raise RuntimeError("chromium did not open its DevTools port") from exc

    def close(self) -> None:
        self._stack.close()

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        """One CDP command; events that arrive meanwhile are kept in `events`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv(timeout=self.timeout))
            if reply.get("id") != self._next_id:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return dict(reply.get("result", {}))

    def wait_event(self, method: str, session: str | None = None,
                   predicate: Callable[[dict[str, Any]], bool] = lambda params: True,
                   timeout: float | None = None) -> dict[str, Any]:
        """The params of the first event `method` (of `session`) matching `predicate` that no
        earlier call returned, waiting for it to come."""
        deadline = time.monotonic() + (timeout or self.timeout)
        checked = 0
        while True:
            for index in range(checked, len(self.events)):
                event = self.events[index]
                if (index not in self._taken and event.get("method") == method
                        and (session is None or event.get("sessionId") == session)
                        and predicate(event.get("params", {}))):
                    self._taken.add(index)
                    return dict(event.get("params", {}))
            checked = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {method} event within the timeout")
            try:
                self.events.append(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                continue

    def new_page(self) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        return Page(self, session["sessionId"], target)


class Page:
    def __init__(self, browser: Browser, session: str, target: str = "") -> None:
        self.browser = browser
        self.session = session
        self.target = target

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, self.session)

    def wait_event(self, method: str, predicate: Callable[[dict[str, Any]], bool]
                   = lambda params: True, timeout: float | None = None) -> dict[str, Any]:
        return self.browser.wait_event(method, self.session, predicate, timeout)

    def requests(self) -> list[dict[str, Any]]:
        """Every request the page sent since ``Network.enable`` (url, method, headers)."""
        return [event["params"]["request"] for event in self.browser.events
                if event.get("sessionId") == self.session
                and event.get("method") == "Network.requestWillBeSent"]

    def requested_urls(self) -> list[str]:
        """URLs the page asked for since ``Network.enable``."""
        return [event["params"]["request"]["url"] for event in self.browser.events
                if event.get("sessionId") == self.session
                and event.get("method") == "Network.requestWillBeSent"]

    def goto(self, url: str) -> None:
        self.send("Page.enable")
        self.send("Network.enable")
        self.send("Runtime.enable")
        self.send("Page.navigate", {"url": url})

    def errors(self) -> list[str]:
        """Uncaught exceptions and console.error messages of the page since ``goto``."""
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            params = event.get("params", {})
            if event.get("method") == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(details.get("exception", {}).get("description")
                             or details.get("text", ""))
            elif (event.get("method") == "Runtime.consoleAPICalled"
                  and params.get("type") == "error"):
                found.append(" ".join(str(a.get("value", a.get("description", "")))
                                      for a in params.get("args", [])))
        return found

    def set_viewport(self, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        """A PNG of the viewport, or of the whole page."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        data = self.send("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def press(self, key: str, *, shift: bool = False) -> None:
        """One key as the keyboard sends it (keyDown, then keyUp) to the focused element."""
        code, vk, text = _KEYS[key] if key in _KEYS else (f"Key{key.upper()}", ord(key.upper()),
                                                          key)
        base = {"key": key, "code": code, "windowsVirtualKeyCode": vk,
                "nativeVirtualKeyCode": vk, "modifiers": 8 if shift else 0}
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", **base,
                                             **({"text": text} if text else {})})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **base})

    def type_text(self, text: str) -> None:
        """Text into the focused input, as typing would put it there."""
        self.send("Input.insertText", {"text": text})

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        def truthy() -> Any:
            value = self.evaluate(expression)
            assert value, f"not true: {expression}"
            return value
        return eventually_sync(truthy, timeout=timeout, interval=0.05)
