"""The server process: the ``serve``, ``token`` and ``migrate`` command line of a generated
service, uvicorn and its workers, and what a ``controller`` process serves (`probe_app`)."""

from ._cli import main, service_cli
from ._probes import probe_app
from ._workers import StreamEndingServer, run_app, serve_workers

__all__ = ["StreamEndingServer", "main", "probe_app", "run_app", "serve_workers",
           "service_cli"]
