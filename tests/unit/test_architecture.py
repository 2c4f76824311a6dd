"""The package layers (pyproject's [tool.importlinter]) hold: CI fails on a violation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    assert lint_imports.exists(), "import-linter is in the test extras: pip install -e .[test]"
    result = subprocess.run([str(lint_imports), "--config", str(REPO / "pyproject.toml"),
                             "--no-cache"], capture_output=True, text=True, timeout=120,
                            cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
