"""The SPEC's Device kind (examples/device/device.py), served in-process over a temp data dir."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from fabrica import ServiceSettings
from fabrica.server import create_app
from fabrica.storage import FileStorage

from .wait import eventually


def _load_example_device():  # type: ignore[no-untyped-def]
    """The Device of examples/device/device.py (the SPEC's), the one the e2e tests copy."""
    path = Path(__file__).resolve().parents[2] / "examples" / "device" / "device.py"
    spec = importlib.util.spec_from_file_location("example_device", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves annotations through it
    spec.loader.exec_module(module)
    return module


_example = _load_example_device()
Device = _example.Device
DeviceSpec = _example.DeviceSpec
DeviceStatus = _example.DeviceStatus


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


@asynccontextmanager
async def serve_on_port(app) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """The app on a real uvicorn server in this event loop (127.0.0.1, a free port), for
    streams a client reads as they come (httpx's ASGI transport buffers whole responses).
    Yields the base URL; stops the server as SIGTERM would."""
    import asyncio

    import uvicorn

    from fabrica.server.process._workers import StreamEndingServer

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None,
                            access_log=False, lifespan="on")
    server = StreamEndingServer(config)
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        if task.done():
            task.result()  # it failed to start: its error, at once
        return bool(server.started)
    await eventually(started)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
