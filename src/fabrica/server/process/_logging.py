"""The process's log lines: text (``serve --log-format text``) or one JSON object per line
(``json``, SPEC section 13) for every logger, uvicorn's access log included.

A JSON line has ``time``, ``level``, ``logger``, ``message``, ``instance``, and the
``trace_id`` and ``span_id`` of the span current where the line was logged (null outside
one), so a log search and a trace point at each other. OpenTelemetry is only asked when a
service traces, and so has loaded it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

__all__ = ["JsonFormatter", "configure_logging"]


class JsonFormatter(logging.Formatter):
    def __init__(self, instance: str) -> None:
        super().__init__()
        self.instance = instance

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = _current_ids()
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "instance": self.instance,
            "trace_id": trace_id,
            "span_id": span_id,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _current_ids() -> tuple[str | None, str | None]:
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:  # no service in this process traces
        return None, None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def configure_logging(instance: str, level: str, log_format: str = "text") -> None:
    """Every logger (uvicorn's propagate to the root: it runs with ``log_config=None``)."""
    if log_format != "json":
        logging.basicConfig(level=level.upper(), force=True,
                            format=f"%(asctime)s %(levelname)-7s [{instance}] %(name)s: "
                                   "%(message)s")
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(instance))
    logging.basicConfig(level=level.upper(), force=True, handlers=[handler])
