"""Compare a run with a baseline, stage by stage, with distribution-free tests fit for tails. Pure.

For each compared (stage, metric) the test counts head samples above some of the baseline's own
quantiles: its p95 (the compared quantile ``q``) and, by default, its p50, p75 and p90 (the
*upper body*, ini ``voice_latency_compare_body``). With t the baseline's r-th smallest of n_b
samples, the count above t is beta-binomial if nothing changed, whatever the latency
distribution (:func:`~pytest_voicelatency.stats.significance.exceedance_pvalue`): an exact one-sided
p-value for "head exceeds this baseline quantile more often". The four tests share the error
budget α = 1 − confidence by weighted Bonferroni: two thirds for the p95 test, a ninth each for
the body tests, so the stage's p-value is min(p95 / ⅔, p50 / ⅑, p75 / ⅑, p90 / ⅑): valid (if
conservative) for any dependence between the four. The p95 test alone sees only the top 5 % (15
samples of 300); a whole stage slowing down shows in the body, where 2 to 10 times more samples
lie above the threshold. That is what lets 300 samples catch a 20 % slowdown of stages with
p95/p50 up to about 1.8. The price is a little power against a slowdown confined to the top
10 % (``docs/benchmarks.md`` has the figures). Ties count against the verdict either way: as
not above for "more exceedances", as above for "fewer".

Then, with Holm's correction over every compared (stage, metric):

* **regression**: significant after correction *and* material: the p95 grew by at least the
  minimum effect (default ≥ 10 % and ≥ 10 ms), or the upper quarter's typical growth did (the
  median of the growths of p75, p90 and p95, in % and in ms). One p95 of a few hundred samples
  is noisy; the middle of three upper quantiles is less so. A real but negligible change never
  fails a build, nor does a slower median under an upper quarter that held;
* **improvement**: the mirror image (significantly fewer exceedances, materially faster); time
  to refresh the baseline;
* **inconclusive**: material growth without significance, or too few samples for any difference
  to be significant; the result says about how many samples per run would decide if the data
  keep their shape;
* **no change**: otherwise;
* **new** / **gone**: a stage only in this run / only in the baseline (never a verdict).

**Produced nothing** (``first_byte_ms = -1``: a broken LLM answers nothing) is not a latency, so
the latency tests never see it. Its *rate* is tested on its own: an exact one-sided test
(Fisher's, :func:`~pytest_voicelatency.stats.significance.rate_increase_pvalue`) of "this run
produces nothing more often than the baseline", in the same Holm family as the latency tests, and
a regression when significant and at least ``min_nothing_rate`` (5 percentage points) higher. A
stage whose every sample produced nothing is therefore a regression, not a stage "gone".

The default confidence is 0.99: with ten compared stages, Holm keeps the chance that an
unchanged run fails anywhere at or below 1 %. ``ComparePolicy(body=())`` tests the p95 alone.

The environments of both runs are compared too (:func:`environment_differences`): a baseline
measured on another machine or Python makes any verdict suspect, so that is a warning.

>>> import numpy as np
>>> from pytest_voicelatency.stats.distribution import Distribution, Distributions
>>> rng = np.random.default_rng(1)
>>> def run(scale):
...     d = Distribution("asr", "first_byte_ms", np.sort(150 * scale * rng.lognormal(0, 0.2, 300)))
...     return Distributions({d.key: d})
>>> compare(run(1.0), run(1.3)).changes[0].outcome
'regression'
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

import numpy as np

from pytest_voicelatency.gate.policy import ComparePolicy  # re-exported: part of this API
from pytest_voicelatency.stats.distribution import Distributions, Key
from pytest_voicelatency.stats.levels import quantile_label
from pytest_voicelatency.stats.quantiles import rank, smallest_n
from pytest_voicelatency.stats.significance import (
    exceedance_pvalue,
    holm,
    holm_levels,
    rate_increase_pvalue,
)

__all__ = ["ComparePolicy", "Point", "Change", "Comparison", "compare", "environment_differences",
           "COMPARED_ENVIRONMENT", "UPPER_QUARTER"]

UPPER_QUARTER = 0.75  # the quantiles whose median growth can make a change material
DEFAULT_POLICY = ComparePolicy()
#: Environment keys whose difference makes a comparison suspect (git commit is expected to differ);
#: ``clock`` is the caller's time base (a virtual-time run does no real waiting and takes no CPU
#: time, so its numbers are not a real-time run's), added from the results by the callers.
COMPARED_ENVIRONMENT = ("python", "implementation", "system", "machine", "cpu_count", "clock")

ChangeOutcome = Literal["regression", "improvement", "inconclusive", "no change", "new", "gone"]


@dataclass(frozen=True, slots=True)
class Point:
    """One exceedance test: head samples above the baseline's quantile ``q``."""

    q: float
    share: float  # of the error budget α
    base: float  # the baseline's nearest-rank quantile
    head: float  # this run's
    above: int  # head samples above ``base``
    expected: float  # ... expected if nothing changed
    worse: float  # p-value of "more exceedances than chance" (ties counted as not above)
    better: float  # ... "fewer" (ties counted as above: conservative both ways)

    @property
    def delta_ms(self) -> float:
        return self.head - self.base

    @property
    def growth(self) -> float:
        """Relative change (0.2 = 20 % slower); ±inf from a zero baseline."""
        if self.base:
            return self.delta_ms / self.base
        return 0.0 if self.delta_ms == 0 else math.copysign(math.inf, self.delta_ms)

    def text(self) -> str:
        """``p75 +19 %``; ``p75 +3.0 ms`` from a zero baseline; ``p75 missed``."""
        return f"{quantile_label(self.q)} {_change_text(self.delta_ms, self.base, pct_only=True)}"


@dataclass(frozen=True, slots=True)
class Change:
    """The comparison of one stage and metric."""

    stage: str
    metric: str
    outcome: ChangeOutcome
    base_n: int = 0
    head_n: int = 0
    base_value: float = math.nan
    head_value: float = math.nan
    above: int = 0  # head samples above the baseline's quantile
    expected: float = math.nan  # ... expected if nothing changed
    pvalue: float = math.nan
    improvement_pvalue: float = math.nan
    needed: int | None = None
    note: str = ""
    failed: bool = False
    points: tuple[Point, ...] = ()  # every exceedance test, body first, the compared quantile last
    by_upper: bool = False  # the minimum effect was met by the upper quarter, not by p95 alone
    base_nothing: int = 0  # samples that produced nothing (first_byte_ms = -1), baseline
    head_nothing: int = 0  # ... this run
    nothing_pvalue: float = math.nan  # exact test of "this run produces nothing more often"
    nothing_regression: bool = False  # the nothing-rate grew significantly and materially

    @property
    def base_total(self) -> int:
        return self.base_n + self.base_nothing

    @property
    def head_total(self) -> int:
        return self.head_n + self.head_nothing

    def nothing_text(self) -> str:
        """``produced nothing in 60 of 60 samples (100 %), 0 of 60 (0 %) in the baseline``."""
        def pct(k: int, n: int) -> str:
            return f"{100 * k / n:.0f} %" if n else "-"
        return (f"produced nothing in {self.head_nothing} of {self.head_total} samples "
                f"({pct(self.head_nothing, self.head_total)}), {self.base_nothing} of "
                f"{self.base_total} ({pct(self.base_nothing, self.base_total)}) in the baseline")

    @property
    def delta_ms(self) -> float:
        return self.head_value - self.base_value

    @property
    def delta_pct(self) -> float:
        return 100 * self.delta_ms / self.base_value if self.base_value else math.nan

    @property
    def upper(self) -> tuple[Point, ...]:
        """The tested quantiles from p75 up (p75, p90, p95 by default): the upper quarter."""
        return tuple(p for p in self.points if p.q >= UPPER_QUARTER)

    @property
    def upper_growth(self) -> float:
        """The upper quarter's typical growth: the median relative growth over :attr:`upper`."""
        return statistics.median(p.growth for p in self.upper) if self.upper else math.nan

    @property
    def upper_delta_ms(self) -> float:
        """The median growth in ms over :attr:`upper`."""
        return statistics.median(p.delta_ms for p in self.upper) if self.upper else math.nan

    def body_text(self) -> str:
        """``p50 +20 %, p75 +19 %, p90 +21 %, p95 +8 %``."""
        return ", ".join(p.text() for p in self.points)

    def upper_summary(self) -> str:
        """The upper quarter's typical growth: ``+14 %`` (``+3.0 ms`` from zero bases)."""
        g, d = self.upper_growth, self.upper_delta_ms
        if math.isnan(g) or d == -math.inf:
            return "-"
        if d == math.inf:
            return "missed"
        return f"{d:+.1f} ms" if math.isinf(g) else f"{100 * g:+.0f} %"

    def delta_text(self) -> str:
        """``+31.0 ms (+21 %)``; ``missed`` when this run's quantile is a missed sample."""
        return _change_text(self.delta_ms, self.base_value)

    @property
    def cell(self) -> str:
        """Table cell: ``+31.0 ms (+21 %) REGRESSION``; capitals when it fails the run."""
        word = self.outcome.upper() if self.failed else self.outcome
        if self.outcome in ("new", "gone"):
            return word
        if self.nothing_regression:
            return f"nothing {self.head_nothing}/{self.head_total} {word}"
        extra = f" (n≈{self.needed})" if self.outcome == "inconclusive" and self.needed else ""
        body = f" (upper quarter {self.upper_summary()})" if self.by_upper else ""
        return f"{self.delta_text()} {word}{body}{extra}"

    def headline(self, q: float) -> str:
        if self.nothing_regression:
            return (f"{self.outcome.upper()}: {self.stage} {self.metric} {self.nothing_text()}; "
                    f"p={self.nothing_pvalue:.2g} (exact test on the nothing-rate, "
                    "Holm-corrected with the rest)" + (f"; {self.note}" if self.note else ""))
        label = quantile_label(q)
        text = (f"{self.outcome.upper()}: {self.stage} {self.metric} {label} "
                f"{self.base_value:.1f} -> {self.head_value:.1f} ms ({self.delta_text()})")
        if len(self.points) > 1:
            text += f"; upper quarter {self.upper_summary()} ({self.body_text()})"
        labels = "/".join(quantile_label(p.q) for p in self.points) or label
        above = "/".join(str(p.above) for p in self.points) or str(self.above)
        expected = "/".join(f"{p.expected:.1f}" for p in self.points) or f"{self.expected:.1f}"
        pvalue = self.improvement_pvalue if self.outcome == "improvement" else self.pvalue
        text += (f"; {above} of {self.head_n} samples above the baseline {labels} "
                 f"({expected} expected if unchanged), p={pvalue:.2g}")
        return text + (f"; {self.note}" if self.note else "")


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every (stage, metric) compared, the environment differences and what they mean."""

    changes: tuple[Change, ...]
    policy: ComparePolicy
    family: int
    base_source: str = ""
    environment: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> bool:
        return any(c.failed for c in self.changes)

    def cells(self) -> dict[Key, str]:
        return {(c.stage, c.metric): c.cell for c in self.changes}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            out[c.outcome] = out.get(c.outcome, 0) + 1
        return out


def _major_minor(version: Any) -> Any:
    return ".".join(str(version).split(".")[:2]) if version else version


def environment_differences(base: Mapping[str, Any], head: Mapping[str, Any]) -> list[str]:
    """The fingerprint keys that differ, as readable phrases (python compared as major.minor).

    >>> environment_differences({"cpu_count": 4, "python": "3.12.1"},
    ...                         {"cpu_count": 2, "python": "3.12.7"})
    ['cpu_count 4 in the baseline, 2 in this run']
    """
    out = []
    for key in COMPARED_ENVIRONMENT:
        a, b = base.get(key), head.get(key)
        if key == "python":
            a, b = _major_minor(a), _major_minor(b)
        if a not in (None, "") and b not in (None, "") and a != b:
            out.append(f"{key} {a} in the baseline, {b} in this run")
    return out


def _change_text(delta_ms: float, base: float, pct_only: bool = False) -> str:
    """``+31.0 ms (+21 %)`` (``+21 %`` with ``pct_only``); ``+3.0 ms`` from a zero baseline;
    ``missed`` when this run's value is a missed sample; ``-`` when there is nothing to say."""
    if math.isnan(delta_ms) or delta_ms == -math.inf or math.isinf(base):
        return "-"
    if delta_ms == math.inf:
        return "missed"
    if not base or math.isnan(base):
        return f"{delta_ms:+.1f} ms"
    pct = f"{100 * delta_ms / base:+.0f} %"
    return pct if pct_only else f"{delta_ms:+.1f} ms ({pct})"


def _point(base: np.ndarray, head: np.ndarray, q: float, share: float) -> Point:
    n_b, n_h = base.size, head.size
    r = rank(n_b, q)
    t = float(base[r - 1])
    above = int(np.count_nonzero(head > t))
    at_or_above = int(np.count_nonzero(head >= t))  # ties make "fewer" look likelier: count them
    return Point(q, share, t, float(head[rank(n_h, q) - 1]), above,
                 n_h * (n_b - r + 1) / (n_b + 1), exceedance_pvalue(above, n_h, n_b, r),
                 exceedance_pvalue(at_or_above, n_h, n_b, r, direction="less"))


def _combined(pvalues: Iterable[tuple[float, float]]) -> float:
    """Weighted Bonferroni: the family is significant at α when some p ≤ share·α."""
    return min(1.0, min(p / share for p, share in pvalues))


def _test(stage: str, metric: str, base: np.ndarray, head: np.ndarray,
          policy: ComparePolicy) -> Change:
    points = tuple(_point(base, head, q, share) for q, share in policy.shares())
    top = points[-1]
    return Change(stage, metric, "no change", base.size, head.size, top.base, top.head, top.above,
                  top.expected, _combined((p.worse, p.share) for p in points),
                  _combined((p.better, p.share) for p in points), points=points)


def _material(c: Change, policy: ComparePolicy, sign: int) -> tuple[bool, bool]:
    """(material, by the upper quarter alone) for growth (sign 1) or shrinkage (sign −1).

    Material: p95 moved by the minimum effect, or the median of the moves of p75, p90 and p95
    did, both in % and in ms (so two of the three moved about that much). A slower median
    under an upper quarter that held is never material.
    """
    by_top = sign * c.delta_ms >= policy.min_effect(c.base_value)
    by_upper = (len(c.upper) > 1 and sign * c.upper_growth >= policy.min_relative
               and sign * c.upper_delta_ms >= policy.min_ms)
    return by_top or by_upper, by_upper and not by_top


def _immaterial_note(c: Change, policy: ComparePolicy) -> str:
    label, effect = quantile_label(policy.q), policy.min_effect(c.base_value)
    note = (f"significant, but not material: {label} {c.delta_text()} (the minimum effect is "
            f"{effect:.1f} ms)")
    if len(c.upper) > 1:
        note += (f", upper quarter {c.upper_summary()} (the minimum is {policy.min_relative:.0%} "
                 f"and {policy.min_ms:g} ms)")
    return note


def _best(n_base: int, n_head: int, policy: ComparePolicy) -> float:
    """The smallest p-value any head of ``n_head`` samples could reach (all above everything)."""
    return _combined((exceedance_pvalue(n_head, n_head, n_base, rank(n_base, q)), share)
                     for q, share in policy.shares())


def _decidable(n: int, policy: ComparePolicy, level: float) -> bool:
    """Whether runs of ``n`` samples each could reach significance at ``level`` at all."""
    return _best(n, n, policy) <= level


def _needed(c: Change, alpha: float) -> int | None:
    """Samples per run at which the observed shares above the baseline's quantiles would be
    significant (the smallest n over the tests), if the data keep their shape."""
    found = []
    for p in c.points:
        share = p.above / c.head_n
        if share <= 1 - p.q:
            continue

        def decides(n: int, share: float = share, p: Point = p) -> bool:
            above = math.ceil(share * n - 1e-9)
            return exceedance_pvalue(above, n, n, rank(n, p.q)) <= p.share * alpha
        n = smallest_n(decides, start=max(c.base_n, c.head_n))
        if n is not None:
            found.append(n)
    return min(found) if found else None


def compare(base: Distributions, head: Distributions, policy: ComparePolicy = DEFAULT_POLICY,
            keys: Iterable[Key] | None = None, *, extra: Iterable[Key] = (),
            base_environment: Mapping[str, Any] | None = None,
            head_environment: Mapping[str, Any] | None = None, base_name: str = "") -> Comparison:
    """Compare ``head`` with ``base`` on ``keys``.

    By default the keys are every table row of either run plus ``extra`` keys of ``head`` (its
    gated metrics). ``base_name`` (the baseline's file) names the baseline in warnings.
    """
    if keys is None:
        keys = [*head.default_keys(), *(k for k in extra if k in head), *base.default_keys()]
    alpha = 1 - policy.confidence
    changes: list[Change] = []
    latency: set[int] = set()
    for stage, metric in dict.fromkeys(keys):
        b, h = base.select(stage, metric), head.select(stage, metric)
        b_total, h_total = b.n + b.nothing + b.invalid, h.n + h.nothing + h.invalid
        if not b.n or not h.n:
            if b_total and h_total:  # on both sides, but one produced nothing: rate test only
                changes.append(Change(stage, metric, "no change", b.n, h.n,
                                      base_nothing=b.nothing, head_nothing=h.nothing))
            elif b_total or h_total:
                changes.append(Change(stage, metric, "gone" if b_total else "new", b.n, h.n,
                                      base_nothing=b.nothing, head_nothing=h.nothing))
            continue
        latency.add(len(changes))
        changes.append(replace(_test(stage, metric, b.values, h.values, policy),
                               base_nothing=b.nothing, head_nothing=h.nothing))
    tested = sorted(latency)
    rated = [i for i, c in enumerate(changes) if c.outcome == "no change"
             and (c.base_nothing or c.head_nothing)]
    for i in rated:
        c = changes[i]
        changes[i] = replace(c, nothing_pvalue=rate_increase_pvalue(
            c.base_nothing, c.base_total, c.head_nothing, c.head_total))
    family = len(tested) + len(rated)
    every = [changes[i].pvalue for i in tested] + [changes[i].nothing_pvalue for i in rated]
    worse_all, levels_all = holm(every, alpha), holm_levels(every, alpha)
    worse, levels = worse_all[:len(tested)], levels_all[:len(tested)]
    better = holm([changes[i].improvement_pvalue for i in tested], alpha)
    for i, w, bt, level in zip(tested, worse, better, levels):
        c = changes[i]
        if math.isinf(c.base_value):
            changes[i] = replace(c, outcome="inconclusive", note=(
                f"the baseline's {quantile_label(policy.q)} is a missed or censored sample, so "
                "its change cannot be measured: refresh the baseline once fewer turns miss"))
            continue
        up, up_by_upper = _material(c, policy, 1)
        down, down_by_upper = _material(c, policy, -1)
        hopeless = _best(c.base_n, c.head_n, policy) > level
        by_upper = False
        if w and up:
            outcome: ChangeOutcome = "regression"
            by_upper = up_by_upper
        elif bt and down:
            outcome, by_upper = "improvement", down_by_upper
        elif up or hopeless:
            outcome, by_upper = "inconclusive", up_by_upper
        else:
            outcome = "no change"
        note = ""
        if outcome == "improvement":
            note = "refresh the baseline to lock it in (docs/ci.md)"
        elif outcome == "inconclusive" and hopeless:
            note = "too few samples for any difference to be significant"
        elif (w or bt) and outcome == "no change":
            note = _immaterial_note(c, policy)
        needed = _needed(c, level) if outcome == "inconclusive" else None
        if outcome == "inconclusive" and hopeless:
            needed = smallest_n(partial(_decidable, policy=policy, level=level),
                                start=max(c.base_n, c.head_n, 1))
        failed = outcome == "regression" or (outcome == "inconclusive"
                                             and policy.inconclusive == "fail")
        changes[i] = replace(c, outcome=outcome, note=note, needed=needed, failed=failed,
                             by_upper=by_upper)
    for i, rejected in zip(rated, worse_all[len(tested):]):
        c = changes[i]
        growth = c.head_nothing / c.head_total - c.base_nothing / c.base_total
        if rejected and growth >= policy.min_nothing_rate:
            changes[i] = replace(c, outcome="regression", failed=True, nothing_regression=True,
                                 note=(c.note + "; " if c.note else "") + "the stage stopped "
                                 "producing output: fix the stage (a refreshed baseline would "
                                 "hide it)")
        elif i not in latency and c.outcome == "no change":
            changes[i] = replace(c, note=c.nothing_text())
    base_env, head_env = base_environment or {}, head_environment or {}
    env = environment_differences(base_env, head_env)
    baseline = f"the baseline {base_name}" if base_name else "the baseline"
    warnings = []
    if env:
        warnings.append(f"the environment differs from {baseline}: "
                        f"{'; '.join(env)}; latencies may differ for that reason alone: "
                        "refresh the baseline on the same runner type (docs/ci.md)")
    only_base = sorted({c.stage for c in changes if c.outcome == "gone"})
    only_head = sorted({c.stage for c in changes if c.outcome == "new"})
    if only_base or only_head:
        parts = ([f"only in the baseline: {', '.join(only_base)}"] if only_base else []) + \
                ([f"only in this run: {', '.join(only_head)}"] if only_head else [])
        warnings.append(f"{baseline} is for different stages ({'; '.join(parts)}): "
                        "those are not compared; refresh the baseline if the suite changed")
    base_version, head_version = base_env.get("plugin_version"), head_env.get("plugin_version")
    if base_version and head_version and base_version != head_version:
        warnings.append(f"{baseline} was written by pytest-voicelatency {base_version}, this "
                        f"run by {head_version}")
    for c in changes:
        if c.outcome == "inconclusive" and not c.failed:
            more = f"about n={c.needed} samples per run would decide" if c.needed else \
                "more samples are unlikely to decide"
            warnings.append(f"{c.stage} {c.metric}: comparison inconclusive ({more})")
    return Comparison(tuple(changes), policy, family, base_name, tuple(env), tuple(warnings))
