"""Quantiles and their confidence bounds, distribution-free. Pure numpy.

**Quantile definition (nearest rank).** For n samples sorted ascending x₍₁₎ ≤ … ≤ x₍ₙ₎ and
0 < q < 1, the q-quantile is x₍ₖ₎ with k = ⌈q·n⌉: the smallest sample such that at least a
fraction q of the samples are ≤ it. No interpolation, so the result is always an observed value
(a real turn you can look up), it is order-invariant, monotone in q, lies within [min, max] and
shifts with the data. It equals ``numpy.percentile(x, 100*q, method="inverted_cdf")``.

**Confidence bounds (order statistics).** Whatever the distribution, the number of samples below
the true q-quantile ξ is Binomial(n, q). So the upper bound U = x₍ᵤ₎ with u the smallest rank for
which P(Binomial(n, q) ≤ u−1) ≥ c satisfies P(ξ ≤ U) ≥ c, and the lower bound L = x₍ₗ₎ with l the
largest rank for which P(Binomial(n, q) ≥ l) ≥ c satisfies P(L ≤ ξ) ≥ c. Each bound is one-sided
at confidence c. With too few samples a bound does not exist: an upper 95 % bound on p95 needs
n ≥ ⌈ln(0.05)/ln(0.95)⌉ = 59, on p99 n ≥ 299.

>>> import numpy as np
>>> x = np.arange(1, 101, dtype=float)
>>> nearest_rank(x, 0.95)
95.0
>>> upper_rank(59, 0.95, 0.95), upper_rank(58, 0.95, 0.95)
(59, None)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pytest_voicelatency.stats.levels import check_confidence, check_q
from pytest_voicelatency.stats.significance import binomial_logpmf

__all__ = ["nearest_rank", "rank", "upper_rank", "lower_rank", "binomial_cdf", "Estimate",
           "estimate", "samples_needed", "smallest_n"]


def rank(n: int, q: float) -> int:
    """The 1-based nearest rank ⌈q·n⌉ (at least 1), guarded against float round-up."""
    k = math.ceil(q * n - 1e-9 * n)
    return min(max(k, 1), n)


def nearest_rank(values: np.ndarray, q: float) -> float:
    """The nearest-rank q-quantile of ``values`` (see the module docstring); NaN when empty."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan
    k = rank(x.size, q)
    return float(np.partition(x, k - 1)[k - 1])


def binomial_cdf(n: int, p: float) -> tuple[int, np.ndarray]:
    """P(Binomial(n, p) ≤ k) for k in a window that holds all but ~1e-30 of the mass.

    Returns ``(k0, cdf)`` where ``cdf[i]`` is P(B ≤ k0 + i). The window spans 12 standard
    deviations each side of the mode, so it costs O(√n) rather than O(n): fast for a million
    samples; the pmf is :func:`~pytest_voicelatency.stats.significance.binomial_logpmf`'s.
    """
    if n <= 0:
        return 0, np.ones(1)
    sd = math.sqrt(n * p * (1 - p))
    mode = min(n, int((n + 1) * p))
    width = int(12 * sd) + 12
    lo, hi = max(0, mode - width), min(n, mode + width)
    cdf = np.cumsum(np.exp(binomial_logpmf(n, p, lo, hi)))
    return lo, np.minimum(cdf, 1.0)


def upper_rank(n: int, q: float, confidence: float) -> int | None:
    """Smallest rank u with P(ξ_q ≤ x₍ᵤ₎) ≥ confidence, or None when n is too small."""
    lo, cdf = binomial_cdf(n, q)
    # need P(B ≤ u-1) ≥ c  →  u-1 = first k with cdf ≥ c
    hits = np.nonzero(cdf >= confidence)[0]
    if hits.size == 0:
        return None
    u = lo + int(hits[0]) + 1
    return u if u <= n else None


def lower_rank(n: int, q: float, confidence: float) -> int | None:
    """Largest rank l with P(x₍ₗ₎ ≤ ξ_q) ≥ confidence, or None when n is too small."""
    lo, cdf = binomial_cdf(n, q)
    # P(B ≥ l) = 1 - P(B ≤ l-1) ≥ c  →  P(B ≤ l-1) ≤ 1-c; largest such l-1
    ok = np.nonzero(cdf <= 1 - confidence)[0]
    if ok.size == 0:
        return None if lo == 0 else lo  # all of the window exceeds: l-1 < lo (mass below ~0)
    low = lo + int(ok[-1]) + 1
    return low if low >= 1 else None


@dataclass(frozen=True, slots=True)
class Estimate:
    """A quantile of n samples with its one-sided order-statistic bounds (None if none exist)."""

    q: float
    n: int
    value: float
    minimum: float
    maximum: float
    confidence: float | None = None
    lower: float | None = None
    upper: float | None = None
    lower_rank: int | None = None
    upper_rank: int | None = None


def estimate(values: np.ndarray, q: float, confidence: float | None = None) -> Estimate:
    """Point estimate of the q-quantile and, with ``confidence``, its lower and upper bounds."""
    __tracebackhide__ = True
    q = check_q(q)
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return Estimate(q, 0, math.nan, math.nan, math.nan, confidence)
    k = rank(n, q)
    ranks = {k - 1, 0, n - 1}
    lr = ur = None
    if confidence is not None:
        check_confidence(confidence)
        lr, ur = lower_rank(n, q, confidence), upper_rank(n, q, confidence)
        ranks |= {r - 1 for r in (lr, ur) if r is not None}
    part = np.partition(x, sorted(ranks))
    return Estimate(q, n, float(part[k - 1]), float(part[0]), float(part[n - 1]), confidence,
                    None if lr is None else float(part[lr - 1]),
                    None if ur is None else float(part[ur - 1]), lr, ur)


def smallest_n(decides: Callable[[int], bool], start: int, limit: int = 10_000_000) -> int | None:
    """The smallest n ≥ ``start`` for which ``decides(n)``, assuming it stays true once true.

    Doubling then bisection; None when even ``limit`` does not decide.
    """
    lo, hi = start, max(start, 2)
    while not decides(hi):
        lo, hi = hi + 1, hi * 2
        if hi > limit:
            return None
    while lo < hi:
        mid = (lo + hi) // 2
        if decides(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def samples_needed(q: float, confidence: float, fraction_below: float,
                   limit_n: int = 10_000_000) -> int | None:
    """Samples needed for the upper bound to fall under a limit, if the data keep their shape.

    ``fraction_below`` is the observed fraction of samples under the limit. The bound clears the
    limit once its rank u(n) ≤ fraction_below·n. Returns None when that never happens (the
    observed fraction is not above q: more samples cannot prove what the data contradict).
    """
    if fraction_below <= q:
        return None
    def clears(n: int) -> bool:
        u = upper_rank(n, q, confidence)
        return u is not None and u <= math.floor(fraction_below * n + 1e-9)

    return smallest_n(clears, max(1, math.ceil(math.log(1 - confidence) / math.log(q))), limit_n)
