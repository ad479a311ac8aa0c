"""The run-wide text report: the table, then what the gates and the baseline comparison said.
Pure and numpy-free.

The plugin's terminal summary and ``python -m pytest_voicelatency compare|merge`` print the same
report, because both render :class:`~pytest_voicelatency.results.model.Results`: one row per
stage (its default metric) plus every gated or compared metric, with a ``gate`` column and a
``vs baseline`` column when there is something to put in them. Whatever goes wrong with gates
or baselines is printed *below* the table, never instead of it. Numpy-free because the plugin
prints this report at the end of every run, including runs that captured nothing.

Every line is escaped for the terminal (:func:`~pytest_voicelatency.report.escape.terminal`):
names come from spans and files, and a newline or an ESC in one must not forge a row or a
verdict. A partial run (:mod:`pytest_voicelatency.run.facts`) says so under the table.

>>> terminal_lines(None)[0].startswith("no voice spans were captured")
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_voicelatency.report.cells import gate_cells, table_rows
from pytest_voicelatency.report.escape import terminal
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
            lines.extend(f"    {d.strip()}" for d in r.detail_lines[1:]
                         if r.outcome != "missing")
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
    none = NO_SPANS if not results.spans else (
        f"{results.spans} voice spans were captured but gave no samples (see the span problems "
        "and errors below)")
    if not results.distributions and not gated:
        return [none, *(f"  {p}" for p in results.problems[:MAX_PROBLEMS_SHOWN])]
    samples = sum(d.n + d.nothing + d.invalid for d in results.distributions.values())
    tests = f"{results.tests} test{'' if results.tests == 1 else 's'}"
    lines = [*table_text(results).split("\n"),
             f"{results.spans} voice spans, {samples} samples from {tests}; quantiles are "
             "nearest-rank; 'nothing' = first_byte_ms -1, excluded"]
    if results.clock:
        lines.append(f"clock: {results.clock}" + (
            " — the caller's pacing checks and the unreliable flag do not apply"
            if results.clock == "virtual" else ""))
    if results.problem_count:
        lines.append(f"{results.problem_count} span problems (first "
                     f"{min(MAX_PROBLEMS_SHOWN, len(results.problems))}):")
        lines.extend(f"  {p}" for p in results.problems[:MAX_PROBLEMS_SHOWN])
    if not results.distributions:
        lines.append(none)
    return lines


def _partial_lines(results: Results) -> list[str]:
    if not results.partial:
        return []
    lost = " (SAMPLES LOST)" if results.lost_samples else ""
    return [f"PARTIAL RUN{lost}: {'; '.join(results.partial)}"]


def terminal_lines(results: Results | None, errors: Sequence[str] = (), *,
                   spans: int = 0) -> list[str]:
    """Lines of the terminal summary: table, footer, gates, comparison, warnings, notes, errors;
    each one line, escaped for the terminal.

    ``errors`` are printed after the results' own: what went wrong outside them (with no
    results at all, when the end of the run itself failed; ``spans`` then says how many were
    captured, so the summary never claims there were none when there were).
    """
    if results is None:
        head = NO_SPANS if not spans else (
            f"{spans} voice spans were captured, but the report could not be made (see the "
            "errors below)")
        return [terminal(line) for line in [head, *(f"error: {e}" for e in errors)]]
    lines = _table_lines(results) + _partial_lines(results)
    if results.gates is not None and results.gates.results:
        lines.extend(_gate_lines(results.gates))
    if results.comparison is not None:
        lines.extend(_comparison_lines(results.comparison))
    lines.extend(f"warning: {w}" for w in results.warnings)
    lines.extend(results.notes)
    lines.extend(f"error: {e}" for e in [*results.errors, *results.output_errors, *errors])
    return [terminal(line) for line in lines]  # idempotent on the table's escaped cells
