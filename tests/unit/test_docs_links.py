"""README.md sends readers to docs/ for the details: every relative link there must resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: `[text](target)` and `![alt](target)`; the fragment is not checked.
LINK = re.compile(r"\]\(([^)#\s]+)")


def _relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    missing = [t for t in _relative_links(page) if not (page.parent / t).exists()]
    assert missing == []


def test_the_readme_links_every_doc():
    linked = set(_relative_links(ROOT / "README.md"))
    assert [p.name for p in PAGES[1:] if f"docs/{p.name}" not in linked] == []
