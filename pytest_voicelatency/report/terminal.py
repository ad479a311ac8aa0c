"""The run-wide text report: the table, then what the gates and the baseline comparison said.
Pure and numpy-free.

The plugin's terminal summary and ``python -m pytest_voicelatency compare|merge`` print the same
report, because both render :class:`~pytest_voicelatency.results.model.Results`: one row per
stage (its default metric) plus every gated or compared metric, with a ``gate`` column and a
``vs baseline`` column when there is something to put in them. Whatever goes wrong with gates
or baselines is printed *below* the table, never instead of it. Numpy-free because the plugin
prints this report at the end of every run, including runs that captured nothing.

>>> terminal_lines(None)[0].startswith("no voice spans were captured")
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_voicelatency.report.cells import gate_cells, table_rows
from pytest_voicelatency.report.table import render
from pytest_voicelatency.stats.levels import quantile_label

if TYPE_CHECKING:
    from pytest_voicelatency.gate.compare import Comparison
    from pytest_voicelatency.gate.evaluate import GateReport
    from pytest_voicelatency.results.model import Results

__all__ = ["terminal_lines", "table_text", "MAX_PROBLEMS_SHOWN", "NO_SPANS"]

MAX_PROBLEMS_SHOWN = 5
NO_SPANS = ("no voice spans were captured: instrument the agent with stage_span() and check "
            "that its spans reach the global OpenTelemetry tracer provider")


def table_text(results: Results) -> str:
    """The per-stage table with its verdict columns (see the module docstring)."""
    gates = gate_cells(results)
    changes = results.comparison.cells() if results.comparison is not None else {}
    rows = table_rows(results)
    extra = []
    if gates:
        extra.append(("gate", [gates.get((r.stage, r.metric), "") for r in rows]))
    if results.comparison is not None:
        extra.append(("vs baseline", [changes.get((r.stage, r.metric), "") for r in rows]))
    return render(rows, extra)


def _gate_lines(report: GateReport) -> list[str]:
    counts = report.counts()
    how = ("point estimates" if report.policy.confidence is None else
           f"{report.policy.confidence:.0%} bounds, Holm over {report.family} gates")
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    lines = [f"gates: {summary} ({how}){': FAILED' if report.failed else ''}"]
    for r in report.results:
        if r.outcome != "pass" or r.failed:
            lines.append(f"  {r.headline()}")
            lines.extend(f"    {d}" for d in r.detail.splitlines()[1:] if r.outcome != "missing")
    return lines


def _comparison_lines(comparison: Comparison) -> list[str]:
    p = comparison.policy
    counts = ", ".join(f"{v} {k}" for k, v in sorted(comparison.counts().items())) \
        or "nothing compared"
    tested = "/".join(quantile_label(q) for q, _ in p.shares())
    lines = [f"baseline {comparison.base_source}: {counts} ({tested} exceedances, "
             f"{p.confidence:.0%} confidence, Holm over {comparison.family}, minimum effect "
             f"{p.min_relative:.0%} and {p.min_ms:g} ms){': FAILED' if comparison.failed else ''}"]
    for c in comparison.changes:
        if c.outcome in ("regression", "improvement", "inconclusive"):
            lines.append(f"  {c.headline(p.q)}")
    return lines


def _table_lines(results: Results) -> list[str]:
    gated = results.gates is not None and bool(results.gates.results)
    if not results.distributions and not gated:
        return [NO_SPANS]
    samples = sum(d.n + d.nothing for d in results.distributions.values())
    tests = f"{results.tests} test{'' if results.tests == 1 else 's'}"
    lines = [table_text(results),
             f"{results.spans} voice spans, {samples} samples from {tests}; quantiles are "
             "nearest-rank; 'nothing' = first_byte_ms -1, excluded"]
    if results.problem_count:
        lines.append(f"{results.problem_count} span problems (first "
                     f"{min(MAX_PROBLEMS_SHOWN, len(results.problems))}):")
        lines.extend(f"  {p}" for p in results.problems[:MAX_PROBLEMS_SHOWN])
    if not results.distributions:
        lines.append(NO_SPANS)
    return lines


def terminal_lines(results: Results | None, errors: Sequence[str] = ()) -> list[str]:
    """Lines of the terminal summary: table, footer, gates, comparison, warnings, notes, errors.

    ``errors`` are printed after the results' own: what went wrong outside them (with no
    results at all, when the end of the run itself failed).
    """
    if results is None:
        return [NO_SPANS, *(f"error: {e}" for e in errors)]
    lines = _table_lines(results)
    if results.gates is not None and results.gates.results:
        lines.extend(_gate_lines(results.gates))
    if results.comparison is not None:
        lines.extend(_comparison_lines(results.comparison))
    lines.extend(f"warning: {w}" for w in results.warnings)
    lines.extend(results.notes)
    lines.extend(f"error: {e}" for e in [*results.errors, *errors])
    return lines
