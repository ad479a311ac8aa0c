"""The run's samples as OpenTelemetry histograms: one series per stage, metric and outcome.

One instrument, :data:`INSTRUMENT` (``voice.latency``, unit ``ms``), with explicit bucket
boundaries fit for 10 ms – 5 s (:data:`BOUNDARIES`) and exactly three attributes: ``stage``
(``asr``, ``gap.asr_to_llm``, ``caller.barge_in`` …), ``metric`` (``first_byte_ms``,
``silence_ms``, ``duration_ms`` …) and ``outcome``. The session id is never an attribute: it is
high-cardinality and stays on the traces. Emit the same instrument from production with the same
attributes, and one alert rule serves both (``docs/export.md``).

``outcome`` is ``ok``, ``unreliable`` (the harness could not keep time), ``missed`` or
``censored`` (the value is a lower bound: the event never came, or the call ended first). A
sample that is not a finite, non-negative number — ``first_byte_ms = -1``, *produced nothing* —
has no latency to put in a bucket and is not recorded.

Samples come in as plain ``(stage, metric, value, outcome)`` tuples; this module knows nothing of
the samples layer. SDK only: exporting the result is ``otlp``'s job.

>>> data = collect_metrics([("asr", "first_byte_ms", 120.0, "ok"),
...                         ("asr", "first_byte_ms", 30.0, "ok"),
...                         ("asr", "first_byte_ms", -1.0, "ok")])
>>> metric = data.resource_metrics[0].scope_metrics[0].metrics[0]
>>> point = metric.data.data_points[0]
>>> metric.name, metric.unit, dict(point.attributes), point.count
('voice.latency', 'ms', {'stage': 'asr', 'metric': 'first_byte_ms', 'outcome': 'ok'}, 2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from pytest_voicelatency._version import __version__

__all__ = ["BOUNDARIES", "INSTRUMENT", "OUTCOMES", "collect_metrics", "outcome"]

#: The histogram's name, unit ``ms``.
INSTRUMENT = "voice.latency"
#: Explicit bucket upper bounds in ms: fine where voice budgets sit (100–500 ms), up to 5 s.
BOUNDARIES: tuple[float, ...] = (10, 25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000,
                                 1500, 2000, 3000, 5000)
OUTCOMES = ("ok", "unreliable", "missed", "censored")
#: The meter's instrumentation scope name.
SCOPE = "pytest_voicelatency"


def outcome(*, missed: bool = False, censored: bool = False, unreliable: bool = False) -> str:
    """The ``outcome`` attribute for a sample's flags (missed, then censored, then unreliable)."""
    return ("missed" if missed else "censored" if censored
            else "unreliable" if unreliable else "ok")


def collect_metrics(samples: Iterable[tuple[str, str, float, str]],
                    resource: Resource | None = None) -> MetricsData:
    """Record every sample into a private ``MeterProvider`` and read the result once.

    A private provider, never the global one (a user's own metrics pipeline is left alone);
    cumulative temporality, one collection. ``resource`` should be the tracer provider's, so the
    metrics carry the same ``service.name`` as the spans.
    """
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader], resource=resource or Resource.create(),
        views=[View(instrument_name=INSTRUMENT,
                    aggregation=ExplicitBucketHistogramAggregation(list(BOUNDARIES)))])
    try:
        histogram = provider.get_meter(SCOPE, __version__).create_histogram(
            INSTRUMENT, unit="ms",
            description="voice agent latency per stage and metric, from pytest-voicelatency")
        for stage, metric, value, kind in samples:
            if not (math.isfinite(value) and value >= 0):
                continue
            histogram.record(value, {"stage": stage, "metric": metric, "outcome": kind})
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
    if data is None:  # nothing recorded
        return MetricsData(resource_metrics=[])
    return data
