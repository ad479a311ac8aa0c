"""Seeded simulation of the CI gates: false fails on unchanged runs, detection of a regression.

Run it from the repository root (well under a minute on one core)::

    python benchmarks/gate_simulation.py --seed 20261121

A run has ten stages, each a log-normal latency distribution with a realistic spread (p95/p50
from 1.3 to 2.3). Everything below goes through the plugin's own code paths
(``gates.evaluate`` and ``compare.compare`` on ``Distributions`` objects), side by side with the
naive point-estimate gates on the very same samples:

* **Threshold gates** (``stage: p95 < limit``), every limit 10 % above the stage's true p95.
  *Naive* = k6 style, point estimate vs limit. *Ours* = ``voice_latency_confidence = 0.95``:
  order-statistic bounds, exact binomial p-values, Holm over the ten gates.
* **Baseline comparison** of two runs. *Naive* = "p95 grew by ≥ 10 % and ≥ 10 ms" on point
  estimates (pytest-benchmark style). *Ours* = the default: exceedances over the baseline's
  p50, p75, p90 and p95, exact beta-binomial tests sharing α by weighted Bonferroni (⅔ for
  p95), Holm over ten stages at confidence 0.99, plus the minimum effect (p95, or the upper
  body's median growth). *p95 alone* = the same with ``ComparePolicy(body=())``.
  *Ceiling* = the power of the most powerful test at the same level for this very
  alternative, one that *knows* the stage is log-normal with this spread (Neyman–Pearson:
  a one-sided z-test on log latencies at α/10 = 0.001): no test of any kind can do better.

Scenarios: **A/A** (nothing changed; any failure is false), a **20 % regression** of one stage
(its whole distribution 1.2× slower, so its p95 grows by 20 %) for stages of different spread,
a **tail-only** 20 % regression (only the turns above the stage's p90 get 1.2× slower: p95
+20 %, median unchanged), and a **body-only** slowdown (the turns below p90 get 1.2× slower,
capped at p90: p50 and p75 +20 %, p90 and p95 held; a p95 gate should let it pass), for
n = 300 and n = 1000 samples per stage.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

from pytest_voicelatency.gate.compare import ComparePolicy, compare
from pytest_voicelatency.gate.evaluate import GatePolicy, evaluate
from pytest_voicelatency.gate.thresholds import parse_threshold
from pytest_voicelatency.stats.distribution import Distribution, Distributions

Z95 = 1.6448536269514722
Z90 = 1.2815515655446004


@dataclass(frozen=True)
class Stage:
    name: str
    median_ms: float
    sigma: float  # log-normal shape: p95/p50 = exp(1.645 sigma)

    @property
    def p95(self) -> float:
        return self.median_ms * math.exp(Z95 * self.sigma)


STAGES = (Stage("vad", 250, 0.15), Stage("asr", 120, 0.25), Stage("llm", 400, 0.35),
          Stage("tts", 150, 0.30), Stage("barge_in", 150, 0.20), Stage("gap.asr_to_llm", 40, 0.50),
          Stage("gap.llm_to_tts", 30, 0.40), Stage("handoff.vad_to_asr", 60, 0.30),
          Stage("caller.response", 900, 0.20), Stage("turn", 1600, 0.25))
THRESHOLDS = [parse_threshold(f"{s.name}: p95 < {s.p95 / 0.9:.1f}") for s in STAGES]


def draw(rng: np.random.Generator, n: int, slow: int | None, factor: float = 1.2,
         shape: str = "whole") -> Distributions:
    """One run: n samples per stage; stage index ``slow`` is ``factor`` times slower: all of
    it (``whole``), only its samples above the true p90 (``tail``), or only below the true p90,
    capped there so that p90 and p95 hold (``body``)."""
    dists = {}
    for i, s in enumerate(STAGES):
        z = rng.standard_normal(n)
        x = s.median_ms * np.exp(s.sigma * z)
        if i == slow:
            p90 = s.median_ms * math.exp(s.sigma * Z90)
            x = {"whole": x * factor, "tail": np.where(z > Z90, x * factor, x),
                 "body": np.where(z < Z90, np.minimum(x * factor, p90), x)}[shape]
        dists[(s.name, "duration_ms")] = Distribution(s.name, "duration_ms", np.sort(x))
    return Distributions(dists)


def naive_gates(run: Distributions) -> np.ndarray:
    return np.array([not t.limit.holds(run.select(t.pattern, "duration_ms").quantile(t.q))
                     for t in THRESHOLDS])


def naive_compare(base: Distributions, head: Distributions, policy: ComparePolicy) -> np.ndarray:
    out = []
    for s in STAGES:
        b, h = (base.select(s.name, "duration_ms").quantile(0.95),
                head.select(s.name, "duration_ms").quantile(0.95))
        out.append(h - b >= policy.min_effect(b))
    return np.array(out)


def threshold_trial(rng: np.random.Generator, n: int, slow: int | None) -> tuple[np.ndarray, ...]:
    run = draw(rng, n, slow)
    report = evaluate(run, [replace_metric(t) for t in THRESHOLDS], GatePolicy(confidence=0.95))
    ours_fail = np.array([r.outcome == "fail" for r in report.results])
    ours_flag = np.array([r.outcome in ("fail", "inconclusive") for r in report.results])
    return naive_gates(run), ours_fail, ours_flag


def replace_metric(t: object) -> object:
    from dataclasses import replace

    return replace(t, metric="duration_ms")  # type: ignore[type-var]


def compare_trial(rng: np.random.Generator, n: int, slow: int | None,
                  shape: str = "whole") -> tuple[np.ndarray, ...]:
    policy = ComparePolicy()
    base, head = draw(rng, n, None), draw(rng, n, slow, shape=shape)
    keys = [(s.name, "duration_ms") for s in STAGES]
    result = compare(base, head, policy, keys=keys)
    ours_fail = np.array([c.outcome == "regression" for c in result.changes])
    ours_flag = np.array([c.outcome in ("regression", "inconclusive") for c in result.changes])
    alone = compare(base, head, replace(policy, body=()), keys=keys)
    alone_fail = np.array([c.outcome == "regression" for c in alone.changes])
    return naive_compare(base, head, policy), ours_fail, ours_flag, alone_fail


def ceiling(stage: Stage, n: int, factor: float = 1.2, alpha: float = 0.001) -> float:
    """Power of the Neyman–Pearson test for a log-normal scale shift (σ known) at level alpha."""
    effect = math.log(factor) / stage.sigma * math.sqrt(n / 2)
    return NormalDist().cdf(effect - NormalDist().inv_cdf(1 - alpha))


def rate(hits: int, total: int) -> str:
    return f"{100 * hits / total:5.1f} %"


def spread(s: Stage) -> str:
    return f"p95/p50 {math.exp(Z95 * s.sigma):.2f}"


def thresholds(rng: np.random.Generator, args: argparse.Namespace) -> None:
    print("threshold gates (limit 10 % above true p95)")
    print(f"{'scenario':<50} {'n':>5}  {'naive fails':>11}  {'ours fails':>10}  "
          f"{'ours fail+inconcl.':>18}")
    for n in (30, 100, 300):
        naive = ours = flag = 0
        for _ in range(args.aa_reruns):
            a, b, c = threshold_trial(rng, n, None)
            naive, ours, flag = naive + a.any(), ours + b.any(), flag + c.any()
        print(f"{'  A/A: any of 10 gates fails (false fail)':<50} {n:>5}  "
              f"{rate(naive, args.aa_reruns):>11}  {rate(ours, args.aa_reruns):>10}  "
              f"{rate(flag, args.aa_reruns):>18}")
    for n in (300, 1000):
        for index in (0, 4, 1, 2, 5):
            s = STAGES[index]
            naive = ours = flag = 0
            for _ in range(args.reruns):
                a, b, c = threshold_trial(rng, n, index)
                naive, ours, flag = naive + a[index], ours + b[index], flag + c[index]
            label = f"  +20 % on {s.name} ({spread(s)}): caught"
            print(f"{label:<50} {n:>5}  {rate(naive, args.reruns):>11}  "
                  f"{rate(ours, args.reruns):>10}  {rate(flag, args.reruns):>18}")
    print()


def comparisons(rng: np.random.Generator, args: argparse.Namespace) -> None:
    print("baseline comparison")
    print(f"{'scenario':<50} {'n':>5}  {'naive fails':>11}  {'ours fails':>10}  "
          f"{'ours fail+inconcl.':>18}  {'p95 alone':>9}  {'ceiling':>7}")
    for n in (100, 300):
        naive = ours = flag = alone = 0
        for _ in range(args.aa_reruns):
            a, b, c, d = compare_trial(rng, n, None)
            naive, ours, flag, alone = (naive + a.any(), ours + b.any(), flag + c.any(),
                                        alone + d.any())
        print(f"{'  A/A: any of 10 gates fails (false fail)':<50} {n:>5}  "
              f"{rate(naive, args.aa_reruns):>11}  {rate(ours, args.aa_reruns):>10}  "
              f"{rate(flag, args.aa_reruns):>18}  {rate(alone, args.aa_reruns):>9}  {'-':>7}")
    for n in (300, 1000):
        rows = ([(i, "whole") for i in (0, 4, 1, 3, 2, 6, 5)] + [(i, "tail") for i in (1, 2)]
                + [(i, "body") for i in (1, 2)])
        for index, shape in rows:
            s = STAGES[index]
            naive = ours = flag = alone = 0
            for _ in range(args.reruns):
                a, b, c, d = compare_trial(rng, n, index, shape)
                naive, ours, flag, alone = (naive + a[index], ours + b[index], flag + c[index],
                                            alone + d[index])
            what = {"whole": "+20 %", "tail": "+20 % above p90 only",
                    "body": "+20 % below p90 only"}[shape]
            verb = "failed (p95 held)" if shape == "body" else "caught"
            label = f"  {what} on {s.name} ({spread(s)}): {verb}"
            best = f"{100 * ceiling(s, n):5.1f} %" if shape == "whole" else "-"
            print(f"{label:<50} {n:>5}  {rate(naive, args.reruns):>11}  "
                  f"{rate(ours, args.reruns):>10}  {rate(flag, args.reruns):>18}  "
                  f"{rate(alone, args.reruns):>9}  {best:>7}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--aa-reruns", type=int, default=1000, help="A/A reruns (>= 200)")
    parser.add_argument("--reruns", type=int, default=400, help="reruns per regression scenario")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print(f"seed {args.seed}; 10 stages; A/A reruns {args.aa_reruns}; regression reruns "
          f"{args.reruns} per row")
    print("stages: " + ", ".join(f"{s.name} ({spread(s)})" for s in STAGES))
    print()
    thresholds(rng, args)
    comparisons(rng, args)
    print(f"elapsed {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
