"""The run-wide text report: the per-stage table and what the reader must know beside it. Pure.

>>> terminal_lines(None, 0, [])[0].startswith("no voice spans were captured")
True
"""

from __future__ import annotations

from collections.abc import Sequence

from .store import SpanTable

__all__ = ["terminal_lines"]

MAX_PROBLEMS_SHOWN = 5


def terminal_lines(table: SpanTable | None, tests: int, errors: Sequence[str]) -> list[str]:
    """Lines of the terminal summary for a run's merged span table."""
    lines: list[str] = []
    if table is None or len(table) == 0:
        lines.append("no voice spans were captured: instrument the agent with stage_span() and "
                     "check that its spans reach the global OpenTelemetry tracer provider")
    else:
        from .samples import derive
        from .summary import summarize
        from .table import render

        samples = derive(table)
        lines.append(render(summarize(samples)))
        lines.append(f"{len(table)} voice spans, {len(samples)} samples from {tests} tests; "
                     "quantiles are nearest-rank; 'nothing' = first_byte_ms -1, excluded")
        if table.problem_count:
            lines.append(f"{table.problem_count} span problems (first {min(MAX_PROBLEMS_SHOWN, len(table.problems))}):")
            lines.extend(f"  {p}" for p in table.problems[:MAX_PROBLEMS_SHOWN])
    lines.extend(f"error: {e}" for e in errors)
    return lines
