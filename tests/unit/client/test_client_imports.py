"""``from PKG.client import Client`` loads no command line: click, rich and PyYAML come with
the CLI (`fabrica.client.main`), loaded on first use.

httpx's own ``__init__`` imports its command line (``httpx._main``: click, rich, pygments)
whenever those are installed, so what ``import fabrica.client`` may not add is measured
against what ``import httpx`` loads alone."""

from __future__ import annotations

import json
import subprocess
import sys

CLI_MODULES = ("click", "rich", "yaml", "fabrica.client._cli")


def loaded_by(statement: str) -> set[str]:
    code = (f"import json, sys; {statement}; "
            f"print(json.dumps([m for m in {CLI_MODULES!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return set(json.loads(out))


def test_importing_the_client_loads_no_command_line():
    added = loaded_by("import fabrica.client") - loaded_by("import httpx")
    assert added == set()
    assert "yaml" not in loaded_by("from fabrica.client import Client, AsyncClient")


def test_the_command_line_loads_when_asked_for():
    assert {"yaml", "fabrica.client._cli"} <= loaded_by("from fabrica.client import main")
