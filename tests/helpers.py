"""Small builders shared by the tests: synthetic span records and a raw-span exporter."""

from __future__ import annotations

from pathlib import Path

import pytest

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
