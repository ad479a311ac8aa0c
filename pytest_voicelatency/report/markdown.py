"""The pull-request form of a run: a Markdown summary for a PR comment or ``$GITHUB_STEP_SUMMARY``.

One status line, then one table row per stage: n, p50, p95 with its upper confidence bound (at
the confidence :func:`bound_confidence` picks, which the header names), the change of p95
against the baseline, the gate verdict and the comparison verdict. Problems
(failed gates, regressions, warnings, input errors) follow as a list, so a reviewer sees what
turned the build red without opening the logs. Pure: data in, text out.

>>> import numpy as np
>>> from pytest_voicelatency.results.model import Distribution, RunResult
>>> run = RunResult({("asr", "first_byte_ms"): Distribution("asr", "first_byte_ms", np.arange(1.0, 101.0))})
>>> print(render(run).splitlines()[0])
### Voice latency: passed
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_voicelatency.stats.quantiles import upper_rank

if TYPE_CHECKING:
    from pytest_voicelatency.results.model import Distribution, RunResult
    from pytest_voicelatency.gate.compare import Comparison

__all__ = ["render", "bound_confidence", "BOUND_CONFIDENCE"]

BOUND_CONFIDENCE = 0.95


def _ms(x: float) -> str:
    if math.isnan(x):
        return "–"
    return "missed" if math.isinf(x) else f"{x:.1f}"


def _p95_with_bound(d: Distribution, confidence: float) -> str:
    if not d.n:
        return "–"
    u = upper_rank(d.n, 0.95, confidence)
    bound = "n too small" if u is None else f"≤ {_ms(float(d.values[u - 1]))}"
    return f"{_ms(d.quantile(0.95))} ({bound})"


def _count(n: int, noun: str) -> str:
    """``1 regression``, ``2 regressions``, ``0 regressions``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _percent(confidence: float) -> str:
    """``0.99 → '99%'``, ``0.995 → '99.5%'``: never rounded into another confidence."""
    return f"{round(confidence * 100, 6):g}%"


def bound_confidence(run: RunResult, comparison: Comparison | None = None) -> float:
    """The confidence of the p95 bound column: the gates' if they were judged with one, else
    the comparison's, else :data:`BOUND_CONFIDENCE`. The header names it."""
    gated = next((float(g["confidence"]) for g in run.gates if g.get("confidence")), None)
    if gated is not None:
        return gated
    return comparison.policy.confidence if comparison is not None else BOUND_CONFIDENCE


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(run: RunResult, comparison: Comparison | None = None, *, errors: Sequence[str] = (),
           warnings: Sequence[str] = (), title: str = "Voice latency") -> str:
    """Markdown for ``run`` (gate records inside it) and an optional baseline comparison."""
    from pytest_voicelatency.report.terminal import gate_cells

    gates = gate_cells(run)
    changes = {(c.stage, c.metric): c for c in comparison.changes} if comparison else {}
    failing = {(str(g["stage"]), str(g["metric"])) for g in run.gates if g.get("failed")}
    gate_failed = bool(failing)
    regressed = comparison is not None and comparison.failed
    status = "error" if errors else ("FAILED" if gate_failed or regressed else "passed")
    confidence = bound_confidence(run, comparison)
    out = [f"### {title}: {status}", ""]
    facts = [f"{_count(run.spans, 'voice span')} from {_count(run.tests, 'test')}"]
    if run.gates:
        facts.append(f"{_count(len(run.gates), 'gate')}, "
                     f"{sum(1 for g in run.gates if g.get('failed'))} failed")
    if comparison is not None:
        regressions = sum(1 for c in comparison.changes if c.outcome == "regression")
        facts.append(f"compared with `{comparison.base_source}`: {_count(regressions, 'regression')}")
    commit = run.environment.get("git_commit")
    if commit:
        facts.append(f"commit `{str(commit)[:12]}`")
    out += ["; ".join(facts) + ".", ""]
    header = ["stage", "metric", "n", "p50 ms", f"p95 ms (upper {_percent(confidence)} bound)"]
    if comparison is not None:
        header += ["Δ p95 vs baseline"]
    header += ["gate", "verdict"]
    out += ["| " + " | ".join(header) + " |",
            "|" + "|".join("---:" if h in ("n", "p50 ms") or h.startswith(("p95", "Δ")) else "---"
                           for h in header) + "|"]
    for row in run.rows(extra=[*gates, *changes]):
        key = (row.stage, row.metric)
        d = run.select(*key)
        change = changes.get(key)
        verdict: str = change.outcome if change is not None else ""
        if change is not None and change.failed:
            verdict = f"**{verdict.upper()}**"
        gate = gates.get(key, "")
        if key in failing:
            gate = f"**{gate}**"
        cells = [f"`{row.stage}`", row.metric, str(row.n), _ms(row.p50), _p95_with_bound(d, confidence)]
        if comparison is not None:
            cells.append(change.delta_text() if change is not None else "")
        cells += [gate, verdict]
        out.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    problems = [f"gate `{g['line']}` on `{g['stage']}`: {g['outcome']}"
                + (f" ({g['note']})" if g.get("note") else "")
                for g in run.gates if g.get("outcome") != "pass"]
    if comparison is not None:
        problems += [f"`{c.stage}` {c.metric}: {c.headline(comparison.policy.q)}"
                     for c in comparison.changes if c.outcome in ("regression", "improvement")]
    notes = [f"**error:** {e}" for e in errors] + problems + [f"warning: {w}" for w in warnings]
    if notes:
        out += [""] + [f"- {_escape(n)}" for n in notes]
    out += ["", "<sub>Quantiles are nearest-rank; bounds are order statistics; comparisons count "
            "samples above the baseline's quantiles (exact beta-binomial tests, Holm-corrected; "
            "docs/ci.md).</sub>", ""]
    return "\n".join(out)
