"""Shared fixtures: the SPEC's Device kind, served in-process over a temp data dir."""

from __future__ import annotations

import pytest

from tests._support.app import make_client


@pytest.fixture
async def client(tmp_path):
    async with make_client(tmp_path) as c:
        yield c
