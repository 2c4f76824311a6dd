"""A real OTLP/HTTP trace receiver for tests: it decodes each export's protobuf body
(``ExportTraceServiceRequest``) into plain `Span` records, and answers as a collector does."""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    service: str
    kind: int
    links: tuple[str, ...] = ()  # linked spans' trace ids
    attributes: dict[str, Any] = field(default_factory=dict)
    instance: str = ""  # the resource's service.instance.id: which process
    status: int = 0  # the status code: 0 unset, 1 ok, 2 error


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None


class Receiver:
    """``with Receiver() as otlp``: ``otlp.url`` is the base URL to give an exporter."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.paths: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver._take(self.path, body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _take(self, path: str, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    found.append(Span(
                        s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(),
                        resource.get("service.name", ""), s.kind,
                        tuple(link.trace_id.hex() for link in s.links),
                        {a.key: _value(a.value) for a in s.attributes},
                        resource.get("service.instance.id", ""), s.status.code))
        with self._lock:
            self.paths.add(path)
            self.spans.extend(found)

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> list[Span]:
        """The spans once `predicate(spans)` holds (exports arrive in batches)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"no such spans within {timeout}s: "
                                     f"{sorted({s.name for s in spans})}")
            time.sleep(0.05)
