"""The pull-request form of a run: a Markdown summary for a PR comment or ``$GITHUB_STEP_SUMMARY``.

One status line, then one table row per stage: n, p50, p95 with its upper confidence bound (at
the confidence :func:`bound_confidence` picks, which the header names), the change of p95
against the baseline, the gate verdict and the comparison verdict. Problems
(failed gates, regressions, warnings, input errors) follow as a list, so a reviewer sees what
turned the build red without opening the logs. Pure: results in, text out.

Names are data: every stage, metric, file name and gate line is a code span nothing can break
out of, and every message is escaped prose (:mod:`~pytest_voicelatency.report.escape`): no raw
HTML, links, mentions or forged table rows reach the PR comment.

>>> import numpy as np
>>> from pytest_voicelatency.results.model import Results
>>> from pytest_voicelatency.stats.distribution import Distribution, Distributions
>>> d = Distribution("asr", "first_byte_ms", np.arange(1.0, 101.0))
>>> print(render(Results(Distributions({d.key: d}))).splitlines()[0])
### Voice latency: passed
"""

from __future__ import annotations

from pytest_voicelatency.report.cells import failing_gate_keys, gate_cells, ms, table_rows
from pytest_voicelatency.report.escape import markdown as code
from pytest_voicelatency.report.escape import markdown_text, terminal
from pytest_voicelatency.results.model import Results
from pytest_voicelatency.stats.distribution import Distribution
from pytest_voicelatency.stats.quantiles import upper_rank

__all__ = ["render", "bound_confidence", "BOUND_CONFIDENCE"]

BOUND_CONFIDENCE = 0.95


def _p95_with_bound(d: Distribution, confidence: float) -> str:
    p95 = ms(d.quantile(0.95))
    if not d.n:
        return p95
    u = upper_rank(d.n, 0.95, confidence)
    bound = "n too small" if u is None else f"≤ {ms(float(d.values[u - 1]))}"
    return f"{p95} ({bound})"


def _count(n: int, noun: str) -> str:
    """``1 regression``, ``2 regressions``, ``0 regressions``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _percent(confidence: float) -> str:
    """``0.99 → '99%'``, ``0.995 → '99.5%'``: never rounded into another confidence."""
    return f"{round(confidence * 100, 6):g}%"


def bound_confidence(results: Results) -> float:
    """The confidence of the p95 bound column: the gates' if they were judged with one, else
    the comparison's, else :data:`BOUND_CONFIDENCE`. The header names it."""
    gates = results.gates
    if gates is not None and gates.results and gates.policy.confidence:
        return gates.policy.confidence
    comparison = results.comparison
    return comparison.policy.confidence if comparison is not None else BOUND_CONFIDENCE


def _status(results: Results) -> list[str]:
    """The title's verdict and the line of facts under it."""
    gates, comparison = results.gates.results if results.gates else (), results.comparison
    facts = [f"{_count(results.spans, 'voice span')} from {_count(results.tests, 'test')}"]
    if gates:
        facts.append(f"{_count(len(gates), 'gate')}, {sum(1 for g in gates if g.failed)} failed")
    if comparison is not None:
        regressions = sum(1 for c in comparison.changes if c.outcome == "regression")
        facts.append(f"compared with {code(comparison.base_source)}: "
                     f"{_count(regressions, 'regression')}")
    commit = results.environment.get("git_commit")
    if commit:
        facts.append(f"commit {code(str(commit)[:12])}")
    if results.partial:
        facts.append(f"**partial run**: {markdown_text('; '.join(results.partial))}")
    status = "error" if results.errors or results.output_errors else \
        ("FAILED" if results.failed else "passed")
    return [status, "; ".join(facts) + "."]


def _table(results: Results) -> list[str]:
    comparison = results.comparison
    changes = {(c.stage, c.metric): c for c in comparison.changes} if comparison else {}
    gates, failing = gate_cells(results), failing_gate_keys(results)
    confidence = bound_confidence(results)
    header = ["stage", "metric", "n", "p50 ms", f"p95 ms (upper {_percent(confidence)} bound)"]
    if comparison is not None:
        header += ["Δ p95 vs baseline"]
    header += ["gate", "verdict"]
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if h in ("n", "p50 ms") or h.startswith(("p95", "Δ")) else "---"
                          for h in header) + "|"]
    for row in table_rows(results):
        key = (row.stage, row.metric)
        change = changes.get(key)
        verdict: str = change.outcome if change is not None else ""
        if change is not None and change.failed:
            verdict = f"**{verdict.upper()}**"
        # gate labels are parsed ("p95 < 120"), never raw names: only a cell break to escape
        gate = terminal(gates.get(key, "")).replace("|", "\\|")
        if key in failing:
            gate = f"**{gate}**"
        cells = [code(row.stage), code(row.metric), str(row.n), ms(row.p50),
                 _p95_with_bound(results.distributions.select(*key), confidence)]
        if comparison is not None:
            cells.append(change.delta_text() if change is not None else "")
        cells += [gate, verdict]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _problems(results: Results) -> list[str]:
    gates, comparison = results.gates.results if results.gates else (), results.comparison
    out = [f"gate {code(g.threshold.line)} on {code(g.stage)}: {g.outcome}"
           + (f" ({markdown_text(g.note)})" if g.note else "") for g in gates
           if g.outcome != "pass"]
    if comparison is not None:
        out += [f"{code(c.stage)} {code(c.metric)}: "
                f"{markdown_text(c.headline(comparison.policy.q))}"
                for c in comparison.changes if c.outcome in ("regression", "improvement")]
    return ([f"**error:** {markdown_text(e)}" for e in (*results.errors, *results.output_errors)]
            + out + [f"warning: {markdown_text(w)}" for w in results.warnings])


def render(results: Results, *, title: str = "Voice latency") -> str:
    """Markdown for ``results``: its table, its verdicts and every problem, error and warning."""
    status, facts = _status(results)
    out = [f"### {title}: {status}", "", facts, "", *_table(results)]
    notes = _problems(results)
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    out += ["", "<sub>Quantiles are nearest-rank; bounds are order statistics; comparisons count "
            "samples above the baseline's quantiles (exact beta-binomial tests, Holm-corrected; "
            "docs/ci.md).</sub>", ""]
    return "\n".join(out)
