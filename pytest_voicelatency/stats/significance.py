"""Exact, distribution-free p-values for the CI gates, and Holm's step-down correction. Pure.

Latency tails are skewed, multi-modal and full of ties, so every test here counts samples
beyond a threshold and never assumes a distribution:

* **Threshold gate** (``p95 < 200``). If the true q-quantile is within the limit, each sample lies
  beyond the limit with probability at most 1 − q, so the count K beyond it is at most
  Binomial(n, 1 − q): the p-value of "the gate fails" is P(Binomial(n, 1 − q) ≥ K). This is the
  same order-statistic argument as the bounds in :mod:`pytest_voicelatency.stats.quantiles`, so
  ``p ≤ 1 − c`` exactly when the lower bound at confidence c is beyond the limit.
* **Baseline comparison** (:func:`exceedance_pvalue`). Take t, the baseline's r-th smallest
  sample (its nearest-rank p95), and count the K head samples above t. If both runs come from
  one continuous distribution, the probability that a head sample exceeds t is Beta(n_b − r + 1,
  r) distributed, so K is **beta-binomial**(n_h, n_b − r + 1, r), whatever the distribution.
  It is Fisher's exact test's question (are exceedances over the baseline's p95 more frequent
  in head?) with the randomness of the threshold itself accounted for, which a plain 2 × 2 Fisher
  test on a data-chosen threshold ignores. Ties only make it conservative.
* **Holm** (:func:`holm`): with m gates at level α each, P(some false alarm) grows to
  1 − (1 − α)^m (40 % for ten gates at 5 %). Holm's step-down procedure keeps it at α for any
  dependence between the gates and rejects everything Bonferroni would, and more.

Sums run over log-probabilities built with the pmf ratio recurrence: exact to float precision and
vectorised (a million samples cost milliseconds).

>>> round(binomial_sf(3, 59, 0.05), 4)
0.5711
>>> holm([0.001, 0.04, 0.03], alpha=0.05).tolist()
[True, False, False]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["binomial_logpmf", "binomial_sf", "binomial_cdf_at", "betabinomial_sf",
           "betabinomial_cdf_at", "gate_pvalue", "exceedance_pvalue", "holm", "holm_levels",
           "rate_increase_pvalue"]


def _logsumexp(x: np.ndarray) -> float:
    if x.size == 0:
        return -math.inf
    top = float(np.max(x))
    if top == -math.inf:
        return -math.inf
    return top + math.log(float(np.sum(np.exp(x - top))))


def binomial_logpmf(n: int, p: float, lo: int, hi: int) -> np.ndarray:
    """log P(Binomial(n, p) = j) for j = lo..hi (0 ≤ lo ≤ hi ≤ n, 0 < p < 1).

    The first term from log-gamma, the rest by the pmf ratio recurrence
    log pmf(j+1) − log pmf(j) = log((n−j)/(j+1)) + log(p/(1−p)): one vectorised cumulative sum.
    The order-statistic bounds of :mod:`~pytest_voicelatency.stats.quantiles` use it too.
    """
    j = np.arange(lo, hi + 1, dtype=np.float64)
    first = (math.lgamma(n + 1) - math.lgamma(lo + 1) - math.lgamma(n - lo + 1)
             + lo * math.log(p) + (n - lo) * math.log1p(-p))
    step = np.log((n - j[:-1]) / (j[:-1] + 1)) + math.log(p) - math.log1p(-p)
    return np.concatenate([[first], first + np.cumsum(step)])


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) ≥ k)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    return min(1.0, math.exp(_logsumexp(binomial_logpmf(n, p, k, n))))


def binomial_cdf_at(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) ≤ k)."""
    if k < 0:
        return 0.0
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    return min(1.0, math.exp(_logsumexp(binomial_logpmf(n, p, 0, min(k, n)))))


def _betabinomial_logpmf(n: int, a: float, b: float, lo: int, hi: int) -> np.ndarray:
    """log P(BetaBinomial(n, a, b) = j) for j = lo..hi."""
    j = np.arange(lo, hi + 1, dtype=np.float64)
    first = (math.lgamma(n + 1) - math.lgamma(lo + 1) - math.lgamma(n - lo + 1)
             + math.lgamma(lo + a) + math.lgamma(n - lo + b) - math.lgamma(n + a + b)
             - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)))
    jj = j[:-1]
    step = np.log((n - jj) / (jj + 1)) + np.log((jj + a) / (n - jj - 1 + b))
    return np.concatenate([[first], first + np.cumsum(step)])


def betabinomial_sf(k: int, n: int, a: float, b: float) -> float:
    """P(BetaBinomial(n, a, b) ≥ k)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return min(1.0, math.exp(_logsumexp(_betabinomial_logpmf(n, a, b, k, n))))


def betabinomial_cdf_at(k: int, n: int, a: float, b: float) -> float:
    """P(BetaBinomial(n, a, b) ≤ k)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(1.0, math.exp(_logsumexp(_betabinomial_logpmf(n, a, b, 0, k))))


def gate_pvalue(beyond: int, n: int, q: float) -> float:
    """p-value of "the q-quantile is beyond the limit" when ``beyond`` of ``n`` samples are."""
    return binomial_sf(beyond, n, 1.0 - q)


def exceedance_pvalue(above: int, n_head: int, n_base: int, r: int, *,
                      direction: str = "greater") -> float:
    """p-value of ``above`` head samples exceeding the baseline's r-th smallest sample.

    ``direction="greater"`` tests for a regression (more exceedances than chance),
    ``"less"`` for an improvement (fewer).
    """
    if not 1 <= r <= n_base:
        raise ValueError(f"rank r={r} must lie in 1..{n_base}")
    a, b = n_base - r + 1, r
    if direction == "greater":
        return betabinomial_sf(above, n_head, a, b)
    if direction == "less":
        return betabinomial_cdf_at(above, n_head, a, b)
    raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")


def holm_levels(pvalues: Sequence[float], alpha: float) -> np.ndarray:
    """The level each p-value is held to by Holm's procedure (α/m for the smallest, …, α)."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    levels = np.empty_like(p)
    levels[order] = alpha / (p.size - np.arange(p.size))
    return levels


def holm(pvalues: Sequence[float], alpha: float) -> np.ndarray:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level ``alpha``."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    reject = np.zeros(p.size, dtype=bool)
    for i, index in enumerate(order):
        if p[index] > alpha / (p.size - i):
            break
        reject[index] = True
    return reject



def rate_increase_pvalue(k_base: int, n_base: int, k_head: int, n_head: int) -> float:
    """One-sided Fisher exact p-value of "head's rate k_head/n_head is higher than the base's".

    Given the K = k_base + k_head events among n_base + n_head trials, the head's count is
    hypergeometric if the rate did not change: p = P(X ≥ k_head). Used for the rate of
    "produced nothing" samples (``first_byte_ms = -1``).

    >>> round(rate_increase_pvalue(0, 100, 100, 100), 12) < 1e-50
    True
    >>> rate_increase_pvalue(5, 100, 5, 100) > 0.5
    True
    """
    total, events = n_base + n_head, k_base + k_head
    if not n_head or not events or k_head == 0:
        return 1.0

    def log_pmf(x: int) -> float:
        return (math.lgamma(events + 1) - math.lgamma(x + 1) - math.lgamma(events - x + 1)
                + math.lgamma(total - events + 1) - math.lgamma(n_head - x + 1)
                - math.lgamma(total - events - n_head + x + 1)
                - (math.lgamma(total + 1) - math.lgamma(n_head + 1)
                   - math.lgamma(total - n_head + 1)))
    hi = min(events, n_head)
    logs = np.array([log_pmf(x) for x in range(k_head, hi + 1)])
    return float(min(1.0, math.exp(_logsumexp(logs)))) if logs.size else 1.0
