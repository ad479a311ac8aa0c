"""Export: send the run's spans and per-stage metrics where production telemetry goes.

One job: hand a test run's OpenTelemetry data to the tools a team already uses — the spans
over OTLP/HTTP and as an OTLP JSON file (Tempo, Jaeger), and per-stage latency histograms over
OTLP/HTTP, so production can alert on the same p95 the tests gate. The samples arrive as plain
``(stage, metric, value, outcome)`` tuples; nothing here depends on the samples layer's types.

May import: ``spans``, ``stats``, ``clock``, ``errors``.

Modules: ``otlp_json`` (spans → OTLP JSON, the bounded span buffer; SDK only), ``metrics``
(samples → histograms; SDK only), ``otlp`` (the OTLP/HTTP exporters; needs the optional extra
``pip install 'pytest-voicelatency[otlp]'`` — importing it without raises a usage error that says
so). Names are imported lazily, so ``import pytest_voicelatency`` never loads an exporter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_voicelatency._lazy import exports

_EXPORTS = {
    "SpanBuffer": ".otlp_json",
    "encode_spans": ".otlp_json",
    "BOUNDARIES": ".metrics",
    "INSTRUMENT": ".metrics",
    "collect_metrics": ".metrics",
    "Exporting": ".otlp",
    "start": ".otlp",
}
__all__ = ["SpanBuffer", "encode_spans", "BOUNDARIES", "INSTRUMENT", "collect_metrics",
           "Exporting", "start"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from pytest_voicelatency.export.metrics import BOUNDARIES, INSTRUMENT, collect_metrics
    from pytest_voicelatency.export.otlp import Exporting, start
    from pytest_voicelatency.export.otlp_json import SpanBuffer, encode_spans
else:
    __getattr__, __dir__ = exports(__name__, _EXPORTS)
