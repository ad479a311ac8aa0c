"""Evaluate the run-wide CI gates over every sample of a run. Pure: samples in, verdicts out.

Each :class:`~pytest_voicelatency.gate.thresholds.Threshold` is expanded over the stages it
matches (a glob may match several) and judged with :func:`pytest_voicelatency.stats.verdict.judge`,
the same function the in-test assertions use, so a gate and ``assert_p95`` never disagree. The
samples are a live run's, or the distributions of a run read back from a file or merged from CI
shards: the verdict is the same, only the slowest turns go unnamed.

* **Point estimate** (no ``confidence``): pass when the nearest-rank quantile is within the limit,
  as k6 does. Simple, but a gate whose true p95 sits 10 % under its limit flakes often at small n.
* **With confidence c**: pass when the upper order-statistic bound is within the limit. A fail
  needs the exact binomial p-value of "the quantile is beyond the limit" to survive **Holm's
  correction** over all m judged gates at family-wise level 1 − c
  (:mod:`pytest_voicelatency.stats.significance`). A gate that fails alone but not after
  correction is *inconclusive*, like one whose bounds straddle the limit; both say how many
  samples would decide.
* **Policies** say which non-verdicts fail the session:

  - ``inconclusive`` = ``warn`` (default) or ``fail``;
  - ``missing`` = ``fail`` (default) or ``warn``: a gate whose stage (or glob) matched nothing,
    whose metric does not exist, or whose samples all produced nothing;
  - a gate on a metric with *invalid* samples (negative, NaN, a string or a bool where the
    agent should have set milliseconds) is *invalid* and always fails: its numbers are not
    latencies, and judging another metric instead would be a silent switch;
  - a point-estimate pass over fewer samples than the quantile needs to be more than the
    maximum (n < 20 for p95) passes with a warning that says ``n = …``;
  - ``unreliable`` = ``warn`` (default), ``fail`` or ``retry``: a gate computed on samples the
    harness flagged unreliable (it could not keep time). ``fail`` makes such a gate fail as
    *unreliable* whatever its numbers; ``warn`` keeps the verdict and says so beside it;
    ``retry`` asks the caller to re-run unreliable calls, and at this level acts as ``warn`` for
    whatever is still unreliable afterwards.

>>> from pytest_voicelatency.spans.samples import derive
>>> from pytest_voicelatency.spans.rows import SpanTable
>>> from pytest_voicelatency.gate.thresholds import parse_thresholds
>>> report = evaluate(derive(SpanTable()), parse_thresholds(["asr: p95 < 150"]), GatePolicy())
>>> report.results[0].outcome, report.failed
('missing', True)
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np

from pytest_voicelatency.gate.policy import (  # re-exported: part of this API
    GatePolicy,
    policy_from_strings,
)
from pytest_voicelatency.gate.thresholds import Threshold, selector_hint
from pytest_voicelatency.spans.samples import Sample, Selection, default_metric
from pytest_voicelatency.stats.distribution import Key
from pytest_voicelatency.stats.quantiles import smallest_n
from pytest_voicelatency.stats.significance import gate_pvalue, holm
from pytest_voicelatency.stats.verdict import (
    Measured,
    Verdict,
    format_verdict,
    invalid_note,
    judge,
    small_n_caveat,
    verdict_lines,
)

__all__ = ["GatePolicy", "GateResult", "GateReport", "evaluate", "policy_from_strings"]


class Judged(Measured, Protocol):
    """The samples of one stage and metric, as a gate reads them."""

    @property
    def values(self) -> np.ndarray: ...

    @property
    def n(self) -> int: ...


class SampleSource(Protocol):
    """What gates read: a run's :class:`~pytest_voicelatency.spans.samples.SampleSet` or its
    :class:`~pytest_voicelatency.stats.distribution.Distributions` (so a run read back from a
    file, or merged from shards, is judged the same way)."""

    def metrics_by_stage(self) -> dict[str, list[str]]: ...

    def select(self, stage: str, metric: str | None = None) -> Judged: ...


GateOutcome = Literal["pass", "fail", "inconclusive", "missing", "unreliable", "invalid"]


@dataclass(frozen=True, slots=True)
class GateResult:
    """One threshold judged on one stage (a glob yields one result per matched stage)."""

    threshold: Threshold
    stage: str
    metric: str
    outcome: GateOutcome
    failed: bool = False
    verdict: Verdict | None = None
    n: int = 0
    unreliable: int = 0
    beyond: int = 0  # samples beyond the limit (missed and censored count)
    pvalue: float | None = None
    needed: int | None = None
    note: str = ""
    detail: str = ""
    detail_lines: tuple[str, ...] = ()

    @property
    def cell(self) -> str:
        """Table cell: ``p95 < 200 pass``; the outcome is in capitals when it fails the run."""
        word = self.outcome.upper() if self.failed else self.outcome
        extra = []
        if self.outcome == "inconclusive" and self.needed is not None:
            extra.append(f"n≈{self.needed}")
        if self.unreliable and self.outcome != "unreliable":
            extra.append(f"{self.unreliable} unreliable")
        return f"{self.threshold.label} {word}" + (f" ({', '.join(extra)})" if extra else "")

    def headline(self) -> str:
        """One line for the terminal: the gate line, where it applied and what came out."""
        where = self.stage if self.stage == self.threshold.pattern else \
            f"{self.stage} (from {self.threshold.pattern})"
        text = f"{self.outcome.upper()}: {self.threshold.line!r} on {where} {self.metric}".rstrip()
        return text + (f": {self.note}" if self.note else "")


@dataclass(frozen=True, slots=True)
class GateReport:
    """All gate results of a run and what they mean for its exit status."""

    results: tuple[GateResult, ...]
    policy: GatePolicy
    family: int = 0  # gates corrected together (Holm), 0 without confidence
    warnings: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.results)

    def keys(self) -> list[Key]:
        """(stage, metric) of every result, in order, once each: the rows gates add to a table."""
        return list(dict.fromkeys((r.stage, r.metric) for r in self.results))

    def cells(self) -> dict[Key, str]:
        """Table cells keyed by (stage, metric), several gates on one row joined by '; '."""
        out: dict[Key, list[str]] = {}
        for r in self.results:
            out.setdefault((r.stage, r.metric), []).append(r.cell)
        return {k: "; ".join(v) for k, v in out.items()}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.outcome] = out.get(r.outcome, 0) + 1
        return out


def _missing(t: Threshold, stage: str, metric: str, note: str, policy: GatePolicy) -> GateResult:
    return GateResult(t, stage, metric, "missing", policy.missing == "fail", note=note)


def _listing(stages: dict[str, list[str]], limit: int = 8) -> str:
    names = list(stages)
    shown = ", ".join(names[:limit]) + (f", … ({len(names)} in all)" if len(names) > limit else "")
    return shown or "none"


def _judge_one(samples: SampleSource, t: Threshold, stage: str, available: list[str],
               policy: GatePolicy) -> GateResult:
    metric = t.metric or default_metric(stage, set(available))
    if metric not in available:
        return _missing(t, stage, metric, f"stage {stage!r} has no metric {metric!r} (it has "
                        f"{', '.join(available)}); fix the metric after the last dot", policy)
    selection = samples.select(stage, metric)
    verdict = judge(selection.values, t.q, t.limit, policy.confidence)
    if selection.invalid:
        return GateResult(t, stage, metric, "invalid", True, n=selection.n,
                          note=invalid_note(selection))
    if verdict.outcome == "missing":
        return _missing(t, stage, metric, f"all {selection.nothing} samples produced nothing "
                        "(first_byte_ms = -1): the stage never called first_byte()", policy)
    x = selection.values
    within = x < t.limit.value if t.limit.op == "<" else x <= t.limit.value
    beyond = int(np.count_nonzero(~within))
    pvalue = None if policy.confidence is None else gate_pvalue(beyond, selection.n, t.q)
    return GateResult(t, stage, metric, verdict.outcome, verdict=verdict, n=selection.n,
                      unreliable=selection.unreliable, beyond=beyond, pvalue=pvalue,
                      needed=verdict.needed,
                      detail=format_verdict(selection, verdict, _worst(selection)),
                      detail_lines=tuple(verdict_lines(selection, verdict, _worst(selection))))


def _worst(selection: Judged) -> list[Sample]:
    """The slowest samples with their turns; only live samples know them (a distribution read
    back from a file keeps numbers, not turns)."""
    return selection.worst(3) if isinstance(selection, Selection) else []


def _expand(samples: SampleSource, thresholds: Sequence[Threshold], policy: GatePolicy
            ) -> list[GateResult]:
    stages = samples.metrics_by_stage()
    out: list[GateResult] = []
    for t in thresholds:
        matched = [s for s in stages if fnmatch.fnmatchcase(s, t.pattern)]
        if not matched:
            hint = selector_hint(t.pattern, stages)
            if hint:
                note = f"no stage is named {t.pattern!r}: {hint}"
            else:
                what = "matched no stage" if t.is_glob else f"stage {t.pattern!r} has no samples"
                note = (f"{what}; stages seen: {_listing(stages)}; fix the line or instrument "
                        "the stage")
            out.append(_missing(t, t.pattern, t.metric or "", note, policy))
            continue
        out.extend(_judge_one(samples, t, s, stages[s], policy) for s in matched)
    return out


def evaluate(samples: SampleSource, thresholds: Sequence[Threshold],
             policy: GatePolicy) -> GateReport:
    """Judge every gate over ``samples`` (a whole run's), apply Holm and the policies."""
    results = _expand(samples, thresholds, policy)
    judged = [i for i, r in enumerate(results) if r.verdict is not None]
    family = 0
    if policy.confidence is not None and judged:
        alpha = 1 - policy.confidence
        family = len(judged)
        pvalues = [results[i].pvalue for i in judged]
        reject = holm([1.0 if p is None else p for p in pvalues], alpha)
        for i, rejected in zip(judged, reject):
            r = results[i]
            if r.outcome == "fail" and not rejected:
                results[i] = replace(r, outcome="inconclusive", note=(
                    f"beyond the limit at {policy.confidence:.0%} for this gate alone "
                    f"(p={r.pvalue:.2g}) but not after Holm's correction over {family} gates"))
            if results[i].outcome == "inconclusive":
                results[i] = replace(results[i], needed=results[i].needed or
                                     _needed_to_fail(results[i], alpha / family))
    warnings: list[str] = []
    final: list[GateResult] = []
    for r in results:
        if r.unreliable:
            share = (f"{r.unreliable} of {r.n} samples are unreliable (the harness could not "
                     "keep time)")
            if policy.unreliable == "fail":
                r = replace(r, outcome="unreliable",
                            note=f"{share}; voice_latency_unreliable = fail")
            else:
                warnings.append(f"gate {r.threshold.line!r} on {r.stage}: {r.outcome} but {share}; "
                                "do not trust this verdict (voice_latency_unreliable = fail "
                                "makes it fail)")
        failed = (r.outcome in ("fail", "unreliable", "invalid")
                  or (r.outcome == "inconclusive" and policy.inconclusive == "fail")
                  or (r.outcome == "missing" and policy.missing == "fail"))
        r = replace(r, failed=failed)
        if r.outcome == "inconclusive" and not failed:
            more = f"about n={r.needed} samples would decide" if r.needed else \
                "more samples are unlikely to decide"
            warnings.append(f"gate {r.threshold.line!r} on {r.stage} is inconclusive: {more}")
        if r.outcome == "missing" and not failed:
            warnings.append(f"gate {r.threshold.line!r}: {r.note}")
        caveat = small_n_caveat(r.n, r.threshold.q) if policy.confidence is None else None
        if r.outcome == "pass" and caveat:
            warnings.append(f"gate {r.threshold.line!r} on {r.stage} passed over {caveat}")
        final.append(r)
    return GateReport(tuple(final), policy, family, tuple(warnings))


def _needed_to_fail(r: GateResult, alpha: float) -> int | None:
    """n at which the observed share beyond the limit would make a failure significant."""
    frac = r.beyond / r.n if r.n else 0.0
    q = r.threshold.q
    if frac <= 1 - q:
        return None
    return smallest_n(lambda n: gate_pvalue(math.ceil(frac * n - 1e-9), n, q) <= alpha, start=r.n)
