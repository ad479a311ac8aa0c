"""Judge a quantile against a limit: pass, fail, inconclusive, or missing; and explain it. Pure.

Used by the in-test assertions and by the run-wide CI gates, so both decide, and explain their
decision, identically.

* Without ``confidence`` the verdict compares the point estimate (as k6 thresholds do).
* With ``confidence=c`` it uses the one-sided order-statistic bounds of
  :mod:`pytest_voicelatency.stats.quantiles`: *pass* when the upper bound is within the limit,
  *fail* when the lower bound is beyond it, otherwise *inconclusive*, with the number of samples
  that would decide if the data keep their shape.
* No samples at all is *missing*: a missing measurement never passes.

>>> import numpy as np
>>> judge(np.arange(100.0), 0.95, Limit("<", 200)).outcome
'pass'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from pytest_voicelatency.spans.samples import Sample
from pytest_voicelatency.stats.levels import check_confidence, quantile_label
from pytest_voicelatency.stats.limit import Limit
from pytest_voicelatency.stats.quantiles import Estimate, estimate, samples_needed

__all__ = ["Verdict", "judge", "format_verdict", "verdict_lines", "Measured", "small_n_caveat",
           "invalid_note"]

Outcome = Literal["pass", "fail", "inconclusive", "missing"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one quantile check, with the evidence behind it."""

    outcome: Outcome
    estimate: Estimate
    limit: Limit
    needed: int | None = None  # samples that would decide an inconclusive verdict

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


def judge(values: np.ndarray, q: float, limit: Limit, confidence: float | None = None) -> Verdict:
    """Decide whether the q-quantile of ``values`` is within ``limit``."""
    __tracebackhide__ = True
    if confidence is not None:
        check_confidence(confidence)
    est = estimate(values, q, confidence)
    if est.n == 0:
        return Verdict("missing", est, limit)
    if confidence is None:
        return Verdict("pass" if limit.holds(est.value) else "fail", est, limit)
    if est.upper is not None and limit.holds(est.upper):
        return Verdict("pass", est, limit)
    if est.lower is not None and not limit.holds(est.lower):
        return Verdict("fail", est, limit)
    x = np.asarray(values, dtype=np.float64)
    within = x < limit.value if limit.op == "<" else x <= limit.value
    below = float(np.count_nonzero(within)) / x.size
    return Verdict("inconclusive", est, limit, samples_needed(q, confidence, below))


class Measured(Protocol):
    """What a verdict is explained with: the counts of the stage and metric it judged (a
    :class:`~pytest_voicelatency.spans.samples.Selection` or a
    :class:`~pytest_voicelatency.stats.distribution.Distribution`)."""

    @property
    def stage(self) -> str: ...

    @property
    def metric(self) -> str: ...

    @property
    def nothing(self) -> int: ...

    @property
    def missed(self) -> int: ...

    @property
    def censored(self) -> int: ...

    @property
    def unreliable(self) -> int: ...

    @property
    def invalid(self) -> int: ...


def small_n_caveat(n: int, q: float) -> str | None:
    """The caveat of a quantile over too few samples to be anything but the maximum, or None.

    >>> small_n_caveat(1, 0.95)[:59]
    'n = 1: a p95 over fewer than 20 samples is the maximum, so '
    """
    enough = math.ceil(1 / (1 - q) - 1e-9) if q < 1 else 1
    if n <= 0 or n >= enough:
        return None
    return (f"n = {n}: a {quantile_label(q)} over fewer than {enough} samples is the maximum, so "
            "it says little; run more turns, or pass confidence= to get an inconclusive verdict "
            "instead")


def invalid_note(measured: Measured) -> str:
    """Why a verdict on a metric with invalid samples is not a latency verdict."""
    total = measured.invalid + getattr(measured, "n", 0) + measured.nothing
    return (f"{measured.invalid} of {total} samples of {measured.stage} {measured.metric} are "
            "invalid (negative, NaN, a string or a bool, not milliseconds): the agent's spans "
            "set this metric wrongly, so no verdict on it can be trusted; fix the attribute (the "
            "span problems name the span)")


def _describe(sample: Sample) -> str:
    if sample.missed:
        return f"missed (waited {sample.value:.1f} ms)"
    if sample.censored:
        return f">= {sample.value:.1f} ms (censored)"
    return f"{sample.value:.1f} ms"


def format_verdict(measured: Measured, verdict: Verdict, worst: Sequence[Sample] = ()) -> str:
    """The multi-line explanation of a verdict, for assertion failures and CI gate reports.

    ``worst`` are the slowest samples with their session, turn and trace ids, when known: a run
    read back from a file keeps numbers, not turns.
    """
    return "\n".join(verdict_lines(measured, verdict, worst))


def verdict_lines(measured: Measured, verdict: Verdict, worst: Sequence[Sample] = ()) -> list[str]:
    """The lines of :func:`format_verdict` (the first is the verdict line)."""
    est, lim = verdict.estimate, verdict.limit
    name = quantile_label(est.q)
    value = "+inf (missed or censored)" if est.value == float("inf") else f"{est.value:.1f} ms"
    head = (f"{measured.stage} {measured.metric} {name} = {value}, limit {lim} ms "
            f"(n={est.n}, produced nothing: {measured.nothing}) -> {verdict.outcome.upper()}")
    lines = [head]
    if est.confidence is not None:
        c = f"{est.confidence:.0%}"
        upper = "none (too few samples)" if est.upper is None else \
            f"{est.upper:.1f} ms (order statistic {est.upper_rank} of {est.n})"
        lower = "none (too few samples)" if est.lower is None else \
            f"{est.lower:.1f} ms (order statistic {est.lower_rank} of {est.n})"
        lines.append(f"  {c} bounds on {name}: lower {lower}; upper {upper}")
    if verdict.outcome == "inconclusive":
        more = ("more samples will not help: the observed fraction within the limit is not above "
                f"{est.q:g}" if verdict.needed is None else
                f"about n={verdict.needed} samples would decide if the data keep their shape")
        lines.append(f"  inconclusive: the bounds straddle the limit; {more}")
    flagged = [f"{k}: {getattr(measured, k)}" for k in ("missed", "censored", "unreliable")
               if getattr(measured, k)]
    if flagged:
        lines.append(f"  {', '.join(flagged)} (missed and censored count as +inf: unknown is "
                     f"never fast; unreliable = the harness could not keep time)")
    if worst:
        lines.append("  worst: " + "; ".join(
            f"{_describe(s)} (session={s.session_id or '?'} turn={s.turn_id or '?'} "
            f"trace={s.trace_id[:16] or '?'})" for s in worst))
    caveat = small_n_caveat(est.n, est.q) if est.confidence is None else None
    if caveat:
        lines.append(f"  caveat: {caveat}")
    if measured.invalid:
        lines.append(f"  INVALID: {invalid_note(measured)}")
    return lines
