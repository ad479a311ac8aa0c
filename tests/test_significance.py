"""Specification of the exact p-values and Holm's correction behind the CI gates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import betabinom, binom

from pytest_voicelatency.stats.quantiles import lower_rank, smallest_n
from pytest_voicelatency.stats.significance import (
    betabinomial_cdf_at,
    betabinomial_sf,
    binomial_cdf_at,
    binomial_sf,
    exceedance_pvalue,
    gate_pvalue,
    holm,
    holm_levels,
)


@given(st.integers(1, 3000), st.floats(0.001, 0.999), st.data())
def test_binomial_tails_match_scipy(n, p, data):
    """P(B ≥ k) and P(B ≤ k) agree with scipy to 1e-9 (absolute) or 1e-6 (relative)."""
    k = data.draw(st.integers(-1, n + 1))
    assert binomial_sf(k, n, p) == pytest.approx(binom.sf(k - 1, n, p), rel=1e-6, abs=1e-9)
    assert binomial_cdf_at(k, n, p) == pytest.approx(binom.cdf(k, n, p), rel=1e-6, abs=1e-9)


@given(st.integers(1, 2000), st.floats(0.5, 500), st.floats(0.5, 500), st.data())
def test_betabinomial_tails_match_scipy(n, a, b, data):
    """The beta-binomial tails agree with scipy.stats.betabinom."""
    k = data.draw(st.integers(-1, n + 1))
    assert betabinomial_sf(k, n, a, b) == pytest.approx(betabinom.sf(k - 1, n, a, b),
                                                        rel=1e-6, abs=1e-9)
    assert betabinomial_cdf_at(k, n, a, b) == pytest.approx(betabinom.cdf(k, n, a, b),
                                                            rel=1e-6, abs=1e-9)


def test_tiny_tail_probabilities_keep_their_precision():
    """Summing in log space keeps p-values far below 1e-16 (no 1 − cdf cancellation)."""
    assert binomial_sf(200, 300, 0.05) == pytest.approx(binom.sf(199, 300, 0.05), rel=1e-6)
    assert 0 < binomial_sf(200, 300, 0.05) < 1e-100


@settings(max_examples=200)
@given(st.integers(1, 600), st.sampled_from([0.5, 0.9, 0.95, 0.99]),
       st.sampled_from([0.9, 0.95, 0.99]))
def test_gate_pvalue_agrees_with_the_lower_order_statistic_bound(n, q, c):
    """p ≤ 1 − c exactly when the lower bound at confidence c lies beyond the limit.

    With `beyond` samples at or over the limit, the lower bound x₍ₗ₎ is beyond it iff
    beyond ≥ n − l + 1; so the gate's fail test and `judge(..., confidence=c)` never disagree.
    """
    low = lower_rank(n, q, c)
    for beyond in range(n + 1):
        bound_beyond = low is not None and beyond >= n - low + 1
        p = gate_pvalue(beyond, n, q)
        if abs(p - (1 - c)) > 1e-9:  # exactly on the boundary, float rounding may go either way
            assert (p <= 1 - c) == bound_beyond


def test_exceedance_test_is_exact_under_no_change():
    """Simulated A/A runs: the false-alarm rate at α matches the exact null distribution."""
    rng = np.random.default_rng(5)
    n, r, alpha = 100, 95, 0.05
    hits = 0
    for _ in range(4000):
        base, head = np.sort(rng.lognormal(0, 0.5, n)), rng.lognormal(0, 0.5, n)
        hits += exceedance_pvalue(int(np.sum(head > base[r - 1])), n, n, r) <= alpha
    assert hits / 4000 <= alpha + 0.01  # discrete, so at most α (plus simulation noise)
    assert hits / 4000 >= 0.02  # ...and not uselessly conservative


def test_exceedance_pvalue_directions_and_bad_rank():
    """'greater' flags more exceedances, 'less' fewer; a rank outside 1..n is refused."""
    assert exceedance_pvalue(40, 300, 300, 285) < 1e-3 < exceedance_pvalue(20, 300, 300, 285)
    assert exceedance_pvalue(0, 300, 300, 285, direction="less") < 1e-4
    with pytest.raises(ValueError, match="rank"):
        exceedance_pvalue(1, 10, 10, 11)
    with pytest.raises(ValueError, match="direction"):
        exceedance_pvalue(1, 10, 10, 5, direction="both")


def test_holm_steps_down_from_the_smallest_p_value():
    """Smallest p vs α/m, next vs α/(m−1), …; the first miss stops the procedure."""
    assert holm([0.01, 0.03, 0.04], 0.05).tolist() == [True, False, False]  # 0.03 > 0.05/2
    assert holm([0.01, 0.02, 0.04], 0.06).tolist() == [True, True, True]
    assert holm([0.5, 0.001, 0.02], 0.05).tolist() == [False, True, True]
    assert holm([], 0.05).tolist() == []
    assert holm_levels([0.5, 0.001, 0.02], 0.06).tolist() == pytest.approx([0.06, 0.02, 0.03])


def test_holm_keeps_the_family_wise_error_rate():
    """Ten true null hypotheses: P(any rejection) stays at or below α."""
    rng = np.random.default_rng(9)
    rejections = sum(holm(rng.random(10), 0.05).any() for _ in range(20000))
    assert rejections / 20000 <= 0.055


def test_smallest_n_finds_the_first_n_that_decides():
    """Doubling then bisection returns the least n for a monotone condition, or None."""
    assert smallest_n(lambda n: n >= 59, start=1) == 59
    assert smallest_n(lambda n: n >= 1000, start=300) == 1000
    assert smallest_n(lambda n: False, start=1, limit=1000) is None
