"""HTTP handling: the routes of a `Service`'s kinds and its own (``/health``, ``/ready``,
``/metrics``, ``/events``, ``/docs``, ``/ui``), request bodies, patches, conditional requests,
watches, errors and the middleware. Nothing here runs a process or reads a command line
(`fabrica.server.process` does)."""

from ._app import DEFAULT_MAX_BODY_SIZE, DEFAULT_STORAGE_TIMEOUT, create_app, service_for

__all__ = ["DEFAULT_MAX_BODY_SIZE", "DEFAULT_STORAGE_TIMEOUT", "create_app", "service_for"]
