"""A real OTLP/HTTP receiver for the export tests: oteltest's ``otelsink`` (its own request
parsing), bound to 127.0.0.1 on a free port. The ``receiver`` fixture in conftest.py serves it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import HTTPServer
from typing import Any

import pytest

EXTRA = "the [otlp] extra and oteltest (pip install -e '.[test]'; CI installs them)"


class Received:
    """What the receiver got: the decoded OTLP requests, as protobuf messages."""

    def __init__(self) -> None:
        self.traces: list[Any] = []
        self.metrics: list[Any] = []
        self.url = ""

    def handle_trace(self, request: Any, headers: Any) -> None:
        self.traces.append(request)

    def handle_metrics(self, request: Any, headers: Any) -> None:
        self.metrics.append(request)

    def handle_logs(self, request: Any, headers: Any) -> None:
        return None

    def spans(self) -> list[Any]:
        return [s for r in self.traces for rs in r.resource_spans for ss in rs.scope_spans
                for s in ss.spans]

    def span_names(self) -> list[str]:
        return [s.name for s in self.spans()]

    def points(self) -> list[tuple[Any, Any]]:
        return [(m, p) for r in self.metrics for rm in r.resource_metrics
                for sm in rm.scope_metrics for m in sm.metrics for p in m.histogram.data_points]

    def series(self) -> set[tuple[str, ...]]:
        return {tuple(kv.value.string_value for kv in p.attributes) for _, p in self.points()}


@contextmanager
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Received]:
    """Start otelsink on 127.0.0.1 (it binds every interface by itself), stop it afterwards."""
    sink_module = pytest.importorskip("oteltest.sink", reason=f"needs {EXTRA}")
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason=f"needs {EXTRA}")

    class LocalServer(HTTPServer):
        def __init__(self, address: Any, handler: Any) -> None:
            super().__init__(("127.0.0.1", 0), handler)

    monkeypatch.setattr(sink_module, "HTTPServer", LocalServer)
    received = Received()
    sink = sink_module.HttpSink(received, sink_module.logging.getLogger("otelsink"), port=0)
    sink.start()
    deadline = time.monotonic() + 10
    while sink.httpd is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.httpd is not None, "otelsink did not start within 10 s"
    received.url = f"http://127.0.0.1:{sink.httpd.server_address[1]}"
    try:
        yield received
    finally:
        sink.stop()
