"""The run's telemetry export: OTLP/HTTP (``--voice-latency-otlp``) and the OTLP JSON file
(``--voice-latency-spans-json``), as the plugin's hooks drive them.

The plugin starts the exporters at configure time (it imports the optional OTLP extra only when
asked) and hands them here; this module does the rest with plain data:

* per test, a worker :func:`drain`\\ s its finished spans into a string that travels on the
  teardown report (pytest-xdist serialises it), and the controller :func:`receive`\\ s it;
* at the end of the run, :func:`finish` flushes the spans, sends the run-wide samples as
  histograms (controller only: it holds every worker's samples) and writes the JSON file.

Nothing here changes the exit code: an endpoint that is down or a file that cannot be written
is a warning line, and the tests' own results stand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from pytest_voicelatency.export.metrics import outcome
from pytest_voicelatency.export.otlp_json import SpanBuffer
from pytest_voicelatency.spans.rows import SpanTable
from pytest_voicelatency.spans.samples import derive

__all__ = ["Export", "OtlpExport", "drain", "receive", "finish"]


class OtlpExport(Protocol):
    """What :func:`finish` needs of ``export.otlp.Exporting`` (kept structural: the OTLP
    exporter is an optional extra, and this module must import without it)."""

    def finish(self, samples: Iterable[tuple[str, str, float, str]] = (),
               timeout_s: float | None = None) -> list[str]: ...


@dataclass
class Export:
    """The exporters a run asked for; both optional."""

    otlp: OtlpExport | None = None
    spans: SpanBuffer | None = None
    spans_path: str | None = None
    notes: list[str] = field(default_factory=list)  # warnings collected on the controller

    def __bool__(self) -> bool:
        return self.otlp is not None or self.spans is not None


def drain(export: Export) -> str | None:
    """The spans finished since the last call, as compact OTLP JSON (None when none)."""
    return export.spans.drain() if export.spans is not None else None


def receive(export: Export, payload: str) -> None:
    """Merge a test's drained spans into the controller's buffer."""
    if export.spans is not None:
        export.spans.receive(payload)


def finish(export: Export, table: SpanTable | None, *, is_worker: bool) -> list[str]:
    """Flush and write what the run asked for; return warnings, one line each; never raises."""
    notes: list[str] = []
    if export.otlp is not None:
        samples = [] if is_worker or table is None else [
            (s.stage, s.metric, s.value, outcome(missed=s.missed, censored=s.censored,
                                                 unreliable=s.unreliable))
            for s in derive(table)]
        notes += export.otlp.finish(samples)
    if export.spans is not None and export.spans_path and not is_worker:
        notes += export.spans.write(export.spans_path)
    return notes
