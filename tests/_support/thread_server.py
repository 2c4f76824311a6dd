"""uvicorn serving an app from a daemon thread, for synchronous code to call over HTTP."""

from __future__ import annotations

import threading
from typing import Any

import uvicorn

from tests._support.wait import eventually_sync


class ThreadServer:
    """``with ThreadServer(app) as url:`` serves `app` on a free port of 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error",
                                loop="asyncio", http="h11", ws="none", lifespan="on",
                                timeout_graceful_shutdown=1)  # SSE readers stay open
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        eventually_sync(lambda: self.server.started, timeout=5, interval=0.005)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)
