"""Shared fixtures: the SPEC's Device kind, served in-process over a temp data dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import httpx
import pytest
from pydantic import Field

from fabrica import Model, Resource, ServiceSettings
from fabrica.server import create_app
from fabrica.storage import FileStorage


class DeviceSpec(Model):
    type: Literal["server", "switch", "router", "storage"]
    ip_address: str = Field(alias="ipAddress")
    port: int = Field(443, ge=1, le=65535)
    tags: dict[str, str] = {}


class DeviceStatus(Model):
    health: str = "unknown"
    error_count: int = Field(0, ge=0)


class Device(Resource[DeviceSpec, DeviceStatus], prefix="dev"):
    """A network device."""


@asynccontextmanager
async def serve_in_process(app) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client: httpx talks ASGI to the app (lifespan included), no sockets."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://fabrica.test") as c:
            yield c


def make_client(tmp_path, mode="strict", kinds=(Device,), **kwargs):
    settings = ServiceSettings(project="device-api", package="device_api", validation_mode=mode)
    app = create_app(list(kinds), FileStorage(tmp_path / "data"), settings=settings, **kwargs)
    return serve_in_process(app)


@pytest.fixture
async def client(tmp_path):
    async with make_client(tmp_path) as c:
        yield c
