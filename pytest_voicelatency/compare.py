"""Compare a run with a baseline, stage by stage, with a test fit for tails. Pure.

For each compared (stage, metric), with t the baseline's nearest-rank p95 (its r-th smallest
of n_b samples), count the head samples above t. If nothing changed, that count is
beta-binomial whatever the latency distribution (:func:`~pytest_voicelatency.significance.exceedance_pvalue`),
which gives an exact one-sided p-value for "head exceeds the baseline's p95 more often".
Then, with α = 1 − confidence and Holm's correction over every compared (stage, metric):

* **regression**: significant after correction *and* the p95 grew by at least the minimum effect
  (default ≥ 10 % and ≥ 10 ms): a real but negligible change never fails a build;
* **improvement**: significantly fewer exceedances and p95 lower by the minimum effect (time to
  refresh the baseline);
* **inconclusive**: the p95 grew by the minimum effect but the evidence is not significant, or
  there are too few samples for any difference to be significant; the result says about how
  many samples per run would decide if the data keep their shape;
* **no change**: otherwise;
* **new** / **gone**: a stage only in this run / only in the baseline (never a verdict).

The default confidence is 0.99: with ten compared stages, Holm keeps the chance that an
unchanged run fails anywhere at or below 1 %.

>>> import numpy as np
>>> from pytest_voicelatency.baseline import Distribution, RunResult
>>> rng = np.random.default_rng(1)
>>> def run(scale):
...     d = Distribution("asr", "first_byte_ms", np.sort(150 * scale * rng.lognormal(0, 0.2, 300)))
...     return RunResult({("asr", "first_byte_ms"): d})
>>> compare(run(1.0), run(1.3)).changes[0].outcome
'regression'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from .baseline import RunResult, environment_differences
from .policy import ComparePolicy  # re-exported: part of this API
from .significance import exceedance_pvalue, holm
from .stats import rank, smallest_n
from .thresholds import quantile_label

__all__ = ["ComparePolicy", "Change", "Comparison", "compare", "to_record"]

ChangeOutcome = Literal["regression", "improvement", "inconclusive", "no change", "new", "gone"]


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

    @property
    def delta_ms(self) -> float:
        return self.head_value - self.base_value

    @property
    def delta_pct(self) -> float:
        return 100 * self.delta_ms / self.base_value if self.base_value else math.nan

    def delta_text(self) -> str:
        if math.isnan(self.delta_ms):
            return "-"
        if math.isinf(self.delta_ms) or math.isnan(self.delta_pct):
            return "missed" if self.delta_ms > 0 else "-"
        return f"{self.delta_ms:+.1f} ms ({self.delta_pct:+.0f} %)"

    @property
    def cell(self) -> str:
        """Table cell: ``+31.0 ms (+21 %) REGRESSION``; capitals when it fails the run."""
        word = self.outcome.upper() if self.failed else self.outcome
        if self.outcome in ("new", "gone"):
            return word
        extra = f" (n≈{self.needed})" if self.outcome == "inconclusive" and self.needed else ""
        return f"{self.delta_text()} {word}{extra}"

    def headline(self, q: float) -> str:
        label = quantile_label(q)
        text = (f"{self.outcome.upper()}: {self.stage} {self.metric} {label} "
                f"{self.base_value:.1f} -> {self.head_value:.1f} ms ({self.delta_text()}); "
                f"{self.above} of {self.head_n} samples above the baseline {label}, "
                f"{self.expected:.1f} expected if unchanged, p={self.pvalue:.2g}")
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

    def cells(self) -> dict[tuple[str, str], str]:
        return {(c.stage, c.metric): c.cell for c in self.changes}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            out[c.outcome] = out.get(c.outcome, 0) + 1
        return out


def _test(stage: str, metric: str, base: np.ndarray, head: np.ndarray, q: float) -> Change:
    n_b, n_h = base.size, head.size
    r = rank(n_b, q)
    t = float(base[r - 1])
    above = int(np.count_nonzero(head > t))
    return Change(stage, metric, "no change", n_b, n_h, t, float(head[rank(n_h, q) - 1]), above,
                  n_h * (n_b - r + 1) / (n_b + 1), exceedance_pvalue(above, n_h, n_b, r),
                  exceedance_pvalue(above, n_h, n_b, r, direction="less"))


def _needed(c: Change, q: float, alpha: float) -> int | None:
    """Samples per run at which the observed share above the baseline's p95 would be significant."""
    share = c.above / c.head_n
    if share <= 1 - q:
        return None

    def decides(n: int) -> bool:
        return exceedance_pvalue(math.ceil(share * n - 1e-9), n, n, rank(n, q)) <= alpha
    return smallest_n(decides, start=max(c.base_n, c.head_n))


def compare(base: RunResult, head: RunResult, policy: ComparePolicy = ComparePolicy(),
            keys: Iterable[tuple[str, str]] | None = None) -> Comparison:
    """Compare ``head`` with ``base`` on ``keys`` (default: every table row and gated metric)."""
    if keys is None:
        keys = [*head.default_keys(), *head.gated_keys(), *base.default_keys()]
    q, alpha = policy.q, 1 - policy.confidence
    changes: list[Change] = []
    for stage, metric in dict.fromkeys(keys):
        b, h = base.select(stage, metric), head.select(stage, metric)
        if not b.n or not h.n:
            if b.n or h.n:
                changes.append(Change(stage, metric, "gone" if b.n else "new", b.n, h.n))
            continue
        changes.append(_test(stage, metric, b.values, h.values, q))
    tested = [i for i, c in enumerate(changes) if c.outcome == "no change"]
    family = len(tested)
    worse = holm([changes[i].pvalue for i in tested], alpha)
    better = holm([changes[i].improvement_pvalue for i in tested], alpha)
    for i, w, bt in zip(tested, worse, better):
        c = changes[i]
        if math.isinf(c.base_value):
            changes[i] = replace(c, outcome="inconclusive", note="the baseline's quantile is a "
                                 "missed or censored sample: nothing to compare against")
            continue
        effect = policy.min_effect(c.base_value)
        best_p = exceedance_pvalue(c.head_n, c.head_n, c.base_n, rank(c.base_n, q))
        if w and c.delta_ms >= effect:
            outcome: ChangeOutcome = "regression"
        elif bt and -c.delta_ms >= effect:
            outcome = "improvement"
        elif c.delta_ms >= effect or best_p > alpha / family:
            outcome = "inconclusive"
        else:
            outcome = "no change"
        note = ""
        if outcome == "improvement":
            note = "refresh the baseline to lock it in (docs/ci.md)"
        elif outcome == "inconclusive" and best_p > alpha / family:
            note = "too few samples for any difference to be significant"
        elif w and outcome == "no change":
            note = f"significant but below the minimum effect of {effect:.1f} ms"
        needed = _needed(c, q, alpha / family) if outcome == "inconclusive" else None
        if outcome == "inconclusive" and best_p > alpha / family:
            needed = smallest_n(lambda n: exceedance_pvalue(n, n, n, rank(n, q)) <= alpha / family,
                                start=max(c.base_n, c.head_n, 1))
        failed = outcome == "regression" or (outcome == "inconclusive"
                                             and policy.inconclusive == "fail")
        changes[i] = replace(c, outcome=outcome, note=note, needed=needed, failed=failed)
    env = environment_differences(base.environment, head.environment)
    warnings = []
    if env:
        warnings.append(f"the environment differs from the baseline {base.name}: "
                        f"{'; '.join(env)}; latencies may differ for that reason alone: "
                        "refresh the baseline on the same runner type (docs/ci.md)")
    only_base = sorted({c.stage for c in changes if c.outcome == "gone"})
    only_head = sorted({c.stage for c in changes if c.outcome == "new"})
    if only_base or only_head:
        parts = ([f"only in the baseline: {', '.join(only_base)}"] if only_base else []) + \
                ([f"only in this run: {', '.join(only_head)}"] if only_head else [])
        warnings.append(f"the baseline {base.name} is for different stages ({'; '.join(parts)}): "
                        "those are not compared; refresh the baseline if the suite changed")
    if base.plugin_version and head.plugin_version and base.plugin_version != head.plugin_version:
        warnings.append(f"the baseline {base.name} was written by pytest-voicelatency "
                        f"{base.plugin_version}, this run by {head.plugin_version}")
    for c in changes:
        if c.outcome == "inconclusive" and not c.failed:
            more = f"about n={c.needed} samples per run would decide" if c.needed else \
                "more samples are unlikely to decide"
            warnings.append(f"{c.stage} {c.metric}: comparison inconclusive ({more})")
    return Comparison(tuple(changes), policy, family, base.name, tuple(env), tuple(warnings))


def to_record(comparison: Comparison) -> dict[str, object]:
    """Plain data for the results file."""
    p = comparison.policy
    return {"baseline": comparison.base_source, "quantile": p.q, "confidence": p.confidence,
            "min_relative": p.min_relative, "min_ms": p.min_ms, "family": comparison.family,
            "environment_differences": list(comparison.environment),
            "warnings": list(comparison.warnings),
            "changes": [{"stage": c.stage, "metric": c.metric, "outcome": c.outcome,
                         "failed": c.failed, "base_n": c.base_n, "head_n": c.head_n,
                         "base": _plain(c.base_value), "head": _plain(c.head_value),
                         "above": c.above, "expected": _plain(c.expected),
                         "pvalue": _plain(c.pvalue), "needed": c.needed, "note": c.note,
                         "cell": c.cell} for c in comparison.changes]}


def _plain(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else round(x, 6)
