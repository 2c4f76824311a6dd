"""Driving the web console (/ui) of a generated server in headless Chromium.

`Console` wraps a DevTools page: open a route, wait for the page to have drawn what it
loads first (``main[data-ready=true]``), read text, press keys, take screenshots. Every
screenshot goes to `shots` (the test's tmp dir, or ``FABRICA_CONSOLE_SCREENSHOTS`` when set,
to keep and look at them). `external_requests` lists what the page asked of any host but
the server: the console must work without the internet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests._support.cdp import Browser, Page, chromium

READY = "document.querySelector('main')?.dataset.ready === 'true'"

# Every visible text node whose colour against its background is below WCAG AA (4.5:1):
# [tag, class, text, ratio]. The background is the nearest opaque one up the tree.
LOW_CONTRAST = """(() => {
  const channels = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = channels(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c;
    }
    return [255, 255, 255];
  };
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || !el.getClientRects().length || el.closest('[hidden]')) {
      continue;
    }
    const [a, b] = [lum(channels(getComputedStyle(el).color)), lum(background(el))]
      .sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    if (ratio < 4.5) {
      found.push([el.tagName, el.className, n.textContent.trim().slice(0, 40),
                  Math.round(ratio * 100) / 100]);
    }
  }
  return found;
})()"""


@contextmanager
def browser_for(tmp_path: Path) -> Iterator[Browser]:
    if chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    browser = Browser(tmp_path / "profile")
    try:
        yield browser
    finally:
        browser.close()


def screenshot_dir(tmp_path: Path) -> Path:
    chosen = os.environ.get("FABRICA_CONSOLE_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Console:
    def __init__(self, browser: Browser, url: str, shots: Path,
                 size: tuple[int, int] = (1280, 860)) -> None:
        self.page: Page = browser.new_page()
        self.page.set_viewport(*size)
        self.url = url
        self.shots = shots

    def open(self, route: str = "") -> None:
        """Load the console afresh at ``#/route``, and wait until the page is drawn."""
        self.open_url(f"{self.url}/ui/#/{route}")

    def open_url(self, url: str) -> None:
        self.page.goto(url)
        self.wait_ready()

    def go(self, route: str) -> None:
        """Follow a link inside the loaded console (no page load)."""
        self.js(f"location.hash = {json.dumps('#/' + route)}")
        self.wait(f"document.querySelector('main').dataset.route === {json.dumps(route)}")
        self.wait_ready()

    def wait_ready(self, timeout: float = 20) -> None:
        self.wait(READY, timeout)

    def js(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def wait(self, expression: str, timeout: float = 15) -> Any:
        return self.page.wait_for(expression, timeout)

    def text(self, selector: str) -> str:
        return str(self.js(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''"))

    def texts(self, selector: str) -> list[str]:
        return list(self.js(f"[...document.querySelectorAll({json.dumps(selector)})]"
                            ".map(e => e.innerText)"))

    def count(self, selector: str) -> int:
        return int(self.js(f"document.querySelectorAll({json.dumps(selector)}).length"))

    def click(self, selector: str) -> None:
        """A click (for what the keyboard tests do not cover)."""
        found = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                        " if (!e) return false; e.click(); return true; })()")
        assert found, f"nothing matches {selector}"

    def focus(self, selector: str) -> None:
        found = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                        " if (!e) return false; e.focus(); return true; })()")
        assert found, f"nothing matches {selector}"

    def fill(self, selector: str, text: str) -> None:
        """Type `text` into the field, replacing what it held, as a user would."""
        self.focus(selector)
        self.js("document.activeElement.select?.()")
        self.page.type_text(text)

    def press(self, key: str, times: int = 1, *, shift: bool = False) -> None:
        for _ in range(times):
            self.page.press(key, shift=shift)

    def focused(self) -> str:
        """What has the keyboard focus: its text, or its label."""
        return str(self.js("(() => { const e = document.activeElement; if (!e) return '';"
                           " return e.getAttribute('aria-label') || e.innerText || e.value ||"
                           " e.id || e.tagName; })()"))

    def shot(self, name: str, *, full_page: bool = False) -> Path:
        return self.page.screenshot(self.shots / f"{name}.png", full_page=full_page)

    def low_contrast(self) -> list[list[object]]:
        return list(self.js(LOW_CONTRAST))

    def external_requests(self) -> list[str]:
        return [url for url in self.page.requested_urls()
                if not url.startswith((self.url + "/", "data:", "blob:"))]

    def errors(self) -> list[str]:
        return self.page.errors()
