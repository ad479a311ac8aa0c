"""OTLP/HTTP export of a run's spans and per-stage metrics (``--voice-latency-otlp ENDPOINT``).

:func:`start` adds a ``BatchSpanProcessor(OTLPSpanExporter)`` to the SDK tracer provider the
plugin attaches to, so every span finished during the run — the agent's and the simulated
caller's (``caller.*``) — is sent as it goes, in batches, off the agent's thread.
:meth:`Exporting.finish` flushes it, sends the run's samples as histograms (``metrics``), shuts
both down and returns one-line warnings for what could not be delivered.

``ENDPOINT`` is the collector's base URL (``http://127.0.0.1:4318``); the signal paths
``/v1/traces`` and ``/v1/metrics`` are appended, as with ``OTEL_EXPORTER_OTLP_ENDPOINT``.

Failure behaviour: an endpoint that is down or slow costs at most ``timeout_s`` at the end of
the run (flush and metric export run concurrently against one deadline; a thread still stuck past
it is abandoned, it is a daemon) and yields a warning naming the endpoint. Nothing here raises
into the run or changes its exit code.

Needs the optional extra: ``pip install 'pytest-voicelatency[otlp]'``. Importing this module
without it raises :class:`~pytest_voicelatency.errors.VoiceLatencyUsageError` saying so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.export.metrics import collect_metrics
from pytest_voicelatency.spans.capture import attach

try:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
except ImportError as _missing:  # the optional extra is not installed
    raise VoiceLatencyUsageError(
        f"--voice-latency-otlp needs the OTLP exporter ({_missing.name or _missing}): "
        f"pip install 'pytest-voicelatency[otlp]'") from _missing

__all__ = ["Exporting", "start", "DEFAULT_TIMEOUT_S", "signal_url"]

#: Seconds the end of the run may spend delivering spans and metrics.
DEFAULT_TIMEOUT_S = 10.0


def signal_url(endpoint: str, signal: str) -> str:
    """``endpoint`` (a collector's base URL) with the OTLP/HTTP path of ``signal`` appended."""
    endpoint = endpoint.strip()
    if "://" not in endpoint:
        raise VoiceLatencyUsageError(
            f"--voice-latency-otlp: {endpoint!r} is not a URL; give the collector's OTLP/HTTP base "
            f"URL, e.g. http://127.0.0.1:4318")
    base = endpoint.rstrip("/")
    for known in ("/v1/traces", "/v1/metrics"):
        if base.endswith(known):
            base = base[: -len(known)]
    return f"{base}/v1/{signal}"


class _Spans(SpanExporter):
    """The OTLP span exporter, counting what it could not deliver."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.inner = OTLPSpanExporter(endpoint=url, timeout=timeout_s)
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception:  # a transport bug must not kill the batch thread silently
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _Gate(SpanProcessor):
    """Forwards to the batch processor until closed: a provider cannot remove a processor, so
    after :meth:`Exporting.finish` (or in a second in-process run) the old one goes inert."""

    def __init__(self, inner: BatchSpanProcessor) -> None:
        self.inner = inner
        self.open = True
        self.seen = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self.open:
            self.seen += 1
            self.inner.on_end(span)

    def shutdown(self) -> None:
        self.open = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True if not self.open else self.inner.force_flush(timeout_millis)


class Exporting:
    """A run's OTLP export in progress; made by :func:`start`, ended by :meth:`finish`."""

    def __init__(self, endpoint: str, provider: TracerProvider, timeout_s: float) -> None:
        self.endpoint = endpoint
        self.traces_url = signal_url(endpoint, "traces")
        self.metrics_url = signal_url(endpoint, "metrics")
        self.timeout_s = timeout_s
        self.provider = provider
        self._exporter = _Spans(self.traces_url, timeout_s)
        self._batch = BatchSpanProcessor(self._exporter, export_timeout_millis=timeout_s * 1000)
        self._gate = _Gate(self._batch)
        self.finished = False
        provider.add_span_processor(self._gate)

    @property
    def spans_seen(self) -> int:
        """Spans handed to the exporter so far."""
        return self._gate.seen

    def finish(self, samples: Iterable[tuple[str, str, float, str]] = (),
               timeout_s: float | None = None) -> list[str]:
        """Flush the spans, export ``samples`` as histograms, shut down; at most ``timeout_s``.

        ``samples`` are ``(stage, metric, value, outcome)`` tuples (see ``metrics``); pass none
        in a pytest-xdist worker (the controller holds the run-wide samples). Returns one-line
        warnings naming the endpoint for whatever was not delivered; never raises.
        """
        if self.finished:
            return []
        self.finished = True
        budget = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        self._gate.open = False
        outcome: dict[str, Any] = {}

        def flush_spans() -> None:
            outcome["spans_flushed"] = self._batch.force_flush(int(budget * 1000))
            self._batch.shutdown()  # type: ignore[no-untyped-call]

        def send_metrics() -> None:
            data = collect_metrics(samples, self.provider.resource)
            if not data.resource_metrics:
                return
            exporter = OTLPMetricExporter(endpoint=self.metrics_url, timeout=budget)
            try:
                outcome["points"] = sum(len(m.data.data_points) for rm in data.resource_metrics
                                        for sm in rm.scope_metrics for m in sm.metrics)
                outcome["metrics"] = exporter.export(data, timeout_millis=budget * 1000)
            finally:
                exporter.shutdown()

        warnings: list[str] = []
        threads = [threading.Thread(target=_guarded(work, outcome, name), daemon=True,
                                    name=f"voicelatency-otlp-{name}")
                   for name, work in (("spans", flush_spans), ("metrics", send_metrics))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        late = [t.name.rsplit("-", 1)[1] for t in threads if t.is_alive()]
        if late:
            warnings.append(f"voice latency: OTLP export to {self.endpoint} did not finish within "
                            f"{budget:g} s ({', '.join(late)} abandoned); test results are "
                            f"unaffected")
        for name in ("spans", "metrics"):
            if f"{name}_error" in outcome:
                warnings.append(f"voice latency: OTLP {name} export to {self.endpoint} failed: "
                                f"{outcome[f'{name}_error']}")
        undelivered = self._exporter.failed
        if "spans" not in late and (undelivered or outcome.get("spans_flushed") is False):
            lost = f"{undelivered} of {self.spans_seen}" if undelivered else "some"
            warnings.append(f"voice latency: could not export spans to {self.traces_url}: {lost} "
                            f"not delivered (is an OTLP/HTTP collector listening there?)")
        result = outcome.get("metrics")
        if ("metrics" not in late and result is not None
                and result is not MetricExportResult.SUCCESS):
            warnings.append(f"voice latency: could not export metrics to {self.metrics_url}: "
                            f"{outcome.get('points', 0)} histogram series not delivered (is an "
                            f"OTLP/HTTP collector listening there?)")
        return warnings


def _guarded(work: Any, outcome: dict[str, Any], name: str) -> Any:
    def run() -> None:
        try:
            work()
        except Exception as exc:  # reported as a warning; the run goes on
            outcome[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
    return run


def start(endpoint: str, provider: TracerProvider | None = None, *,
          timeout_s: float = DEFAULT_TIMEOUT_S) -> Exporting:
    """Start exporting every span ``provider`` finishes to ``endpoint`` over OTLP/HTTP.

    ``provider`` defaults to the one the plugin captures from (``spans.capture.attach()``: the
    global SDK provider, installed once if none is). Call once per process that runs tests
    (under pytest-xdist each worker sends its own spans), then :meth:`Exporting.finish`.
    """
    if timeout_s <= 0:
        raise VoiceLatencyUsageError(f"OTLP export timeout must be > 0 s, got {timeout_s}")
    return Exporting(endpoint, attach() if provider is None else provider, timeout_s)
