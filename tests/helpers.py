"""Small builders shared by the tests: synthetic span records, a raw-span exporter, and a
recorder of the spans a framework starts and ends on the global provider."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from pytest_voicelatency.spans.capture import capture_spans
from pytest_voicelatency.spans.record import SpanRecord
from pytest_voicelatency.spans.rows import SpanTable

MS = 1_000_000


def record(stage: str, start_ms: float, end_ms: float, *, session: str = "s", turn: str = "1",
           metrics: dict[str, float] | None = None, bar: bool | None = None,
           name: str | None = None) -> SpanRecord:
    """A span record as the capture would keep it (times in ms for readability)."""
    if bar is None:
        bar = not stage.startswith(("handoff.", "caller.", "gap.")) and stage != "turn"
    items = dict(metrics or {})
    items.setdefault("duration_ms", end_ms - start_ms)
    return SpanRecord(name or f"audio.{stage}", stage, session, turn, int("ab" * 16, 16),
                      int(start_ms * MS), int(end_ms * MS), tuple(items.items()), bar)


def table_of(*records: SpanRecord, test: str = "t") -> SpanTable:
    table = SpanTable()
    for r in records:
        table.add(r, test)
    return table


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def copy_examples(pytester: pytest.Pytester) -> None:
    """Put the example suite, as shipped, into the pytester directory."""
    for path in EXAMPLES.glob("*.py"):
        (pytester.path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")


class Recorder(SpanProcessor):
    """Spans started and ended on the global provider (where the frameworks' tracers write)."""

    def __init__(self) -> None:
        self.started: dict[int, str] = {}
        self.ended: set[int] = set()
        #: each ended span's name, start, end and attributes, in the order they ended
        self.finished: list[tuple[str, int | None, int | None, dict[str, object]]] = []

    def on_start(self, span, parent_context=None):  # type: ignore[no-untyped-def]
        self.started[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.add(span.context.span_id)  # type: ignore[union-attr]
        self.finished.append((span.name, span.start_time, span.end_time,
                              dict(span.attributes or {})))

    def unended(self) -> list[str]:
        return [name for sid, name in self.started.items() if sid not in self.ended]


RECORDER = Recorder()


@contextlib.contextmanager
def recording() -> Iterator[Recorder]:
    """A capture for one call, with :data:`RECORDER` emptied and on the global provider."""
    RECORDER.started.clear()
    RECORDER.ended.clear()
    RECORDER.finished.clear()
    with capture_spans():
        provider = trace.get_tracer_provider()
        if RECORDER not in getattr(provider, "_active_span_processor",
                                   types.SimpleNamespace(_span_processors=()))._span_processors:
            provider.add_span_processor(RECORDER)  # type: ignore[attr-defined]
        yield RECORDER
