"""The run-wide text report and the per-test JUnit properties. Pure.

The plugin's terminal summary and ``python -m pytest_voicelatency compare`` print the same
table, because both render a :class:`~pytest_voicelatency.results.model.RunResult`: one row per
stage (its default metric) plus every gated metric, with a ``gate`` column (the gate verdicts
recorded in the run) and a ``vs baseline`` column when a comparison was made. Whatever goes wrong
with gates or baselines is printed *below* the table, never instead of it.

>>> terminal_lines(None)[0].startswith("no voice spans were captured")
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_voicelatency.results.model import RunResult
    from pytest_voicelatency.gate.compare import Comparison
    from pytest_voicelatency.gate.evaluate import GateReport
    from pytest_voicelatency.spans.samples import SampleSet

__all__ = ["terminal_lines", "table_text", "gate_cells", "junit_properties",
           "MAX_PROBLEMS_SHOWN"]

MAX_PROBLEMS_SHOWN = 5
NO_SPANS = ("no voice spans were captured: instrument the agent with stage_span() and check "
            "that its spans reach the global OpenTelemetry tracer provider")


def gate_cells(run: RunResult) -> dict[tuple[str, str], str]:
    """The ``gate`` column's cells from the gate records stored in ``run``."""
    out: dict[tuple[str, str], list[str]] = {}
    for g in run.gates:
        out.setdefault((str(g["stage"]), str(g["metric"])), []).append(str(g.get("cell", "")))
    return {k: "; ".join(v) for k, v in out.items()}


def table_text(run: RunResult, comparison: Comparison | None = None) -> str:
    """The per-stage table with its verdict columns (see the module docstring)."""
    from pytest_voicelatency.report.table import render

    gates = gate_cells(run)
    changes = comparison.cells() if comparison is not None else {}
    rows = run.rows(extra=[*gates, *changes])
    extra = []
    if gates:
        extra.append(("gate", [gates.get((r.stage, r.metric), "") for r in rows]))
    if comparison is not None:
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
    from pytest_voicelatency.gate.thresholds import quantile_label

    p = comparison.policy
    counts = ", ".join(f"{v} {k}" for k, v in sorted(comparison.counts().items())) or "nothing compared"
    tested = "/".join(quantile_label(q) for q, _ in p.shares())
    lines = [f"baseline {comparison.base_source}: {counts} ({tested} exceedances, "
             f"{p.confidence:.0%} confidence, Holm over {comparison.family}, minimum effect "
             f"{p.min_relative:.0%} and {p.min_ms:g} ms){': FAILED' if comparison.failed else ''}"]
    for c in comparison.changes:
        if c.outcome in ("regression", "improvement", "inconclusive"):
            lines.append(f"  {c.headline(p.q)}")
    return lines


def terminal_lines(run: RunResult | None, errors: Sequence[str] = (), *,
                   gates: GateReport | None = None, comparison: Comparison | None = None,
                   warnings: Sequence[str] = (), notes: Sequence[str] = ()) -> list[str]:
    """Lines of the terminal summary: table, footer, gates, comparison, warnings, errors."""
    lines: list[str] = []
    if run is None or (not run.distributions and not run.gates):
        lines.append(NO_SPANS)
    else:
        lines.append(table_text(run, comparison))
        samples = sum(d.n + d.nothing for d in run.distributions.values())
        lines.append(f"{run.spans} voice spans, {samples} samples from {run.tests} test{'' if run.tests == 1 else 's'}; "
                     "quantiles are nearest-rank; 'nothing' = first_byte_ms -1, excluded")
        if run.problem_count:
            lines.append(f"{run.problem_count} span problems (first "
                         f"{min(MAX_PROBLEMS_SHOWN, len(run.problems))}):")
            lines.extend(f"  {p}" for p in run.problems[:MAX_PROBLEMS_SHOWN])
        if not run.distributions:
            lines.append(NO_SPANS)
    if gates is not None and gates.results:
        lines.extend(_gate_lines(gates))
    if comparison is not None:
        lines.extend(_comparison_lines(comparison))
    lines.extend(f"warning: {w}" for w in warnings)
    lines.extend(notes)
    lines.extend(f"error: {e}" for e in errors)
    return lines


def junit_properties(samples: SampleSet, prefix: str = "voice_latency") -> list[tuple[str, str]]:
    """``(name, value)`` pairs of each stage's p50, p95 and n for a test's JUnit XML entry."""
    from pytest_voicelatency.stats.summary import summarize

    out: list[tuple[str, str]] = []
    for row in summarize(samples):
        base = f"{prefix}.{row.stage}.{row.metric}"
        out += [(f"{base}.p50", _ms(row.p50)), (f"{base}.p95", _ms(row.p95)), (f"{base}.n", str(row.n))]
    return out


def _ms(x: float) -> str:
    return "missed" if x == float("inf") else ("" if x != x else f"{x:.1f}")

