"""Specification of the quantile definition and its order-statistic confidence bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.stats.quantiles import (
    binomial_cdf,
    estimate,
    lower_rank,
    nearest_rank,
    rank,
    samples_needed,
    upper_rank,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=300)
levels = st.floats(min_value=0.001, max_value=0.999)


@given(samples, levels)
def test_nearest_rank_equals_numpy_inverted_cdf(values, q):
    """The documented definition is numpy's 'inverted_cdf' percentile, to the last bit."""
    assert nearest_rank(np.array(values), q) == np.percentile(values, 100 * q,
                                                              method="inverted_cdf")


@given(samples, levels, st.randoms())
def test_quantile_is_order_invariant(values, q, rnd):
    """Shuffling the samples never changes a quantile."""
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert nearest_rank(np.array(values), q) == nearest_rank(np.array(shuffled), q)


@given(samples, levels, levels)
def test_quantile_is_monotone_in_q(values, q1, q2):
    """A higher quantile level never gives a smaller value."""
    lo, hi = sorted((q1, q2))
    assert nearest_rank(np.array(values), lo) <= nearest_rank(np.array(values), hi)


@given(samples, levels)
def test_quantile_is_an_observed_value_within_min_and_max(values, q):
    """The quantile is one of the samples, so it lies between min and max."""
    value = nearest_rank(np.array(values), q)
    assert value in values and min(values) <= value <= max(values)


@given(samples, levels, st.integers(min_value=-1000, max_value=1000))
def test_quantile_is_shift_equivariant(values, q, shift):
    """Adding a constant to every sample adds it to the quantile."""
    x = np.array(values)
    assert nearest_rank(x + shift, q) == nearest_rank(x, q) + shift


def test_p95_of_one_to_hundred_is_ninety_five():
    """⌈0.95·100⌉ = 95: the 95th smallest of 1..100."""
    assert nearest_rank(np.arange(1.0, 101.0), 0.95) == 95.0
    assert rank(20, 0.95) == 19 and rank(1, 0.5) == 1


def test_empty_sample_quantile_is_nan():
    """No samples gives NaN, never 0."""
    assert math.isnan(nearest_rank(np.array([]), 0.95))


@pytest.mark.parametrize("n", [1, 7, 20, 59, 100, 301, 2000])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.95, 0.99])
def test_binomial_cdf_matches_scipy(n, p):
    """The windowed log-space binomial CDF agrees with scipy wherever it is evaluated."""
    lo, cdf = binomial_cdf(n, p)
    assert np.allclose(cdf, binom.cdf(np.arange(lo, lo + cdf.size), n, p), atol=1e-12)


@pytest.mark.parametrize("n", [5, 20, 58, 59, 100, 300, 1000])
@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_bound_ranks_are_the_tightest_with_the_promised_coverage(n, q):
    """u is the smallest rank with P(B ≤ u-1) ≥ c; l the largest with P(B ≥ l) ≥ c."""
    c = 0.95
    u, low = upper_rank(n, q, c), lower_rank(n, q, c)
    if u is None:
        assert binom.cdf(n - 1, n, q) < c
    else:
        assert binom.cdf(u - 1, n, q) >= c and (u == 1 or binom.cdf(u - 2, n, q) < c)
    if low is None:
        assert binom.sf(0, n, q) < c
    else:
        assert binom.sf(low - 1, n, q) >= c and (low == n or binom.sf(low, n, q) < c)


def test_upper_bound_on_p95_needs_59_samples_and_p99_needs_299():
    """The order-statistic rule n ≥ ln(α)/ln(q) from the field notes."""
    assert upper_rank(58, 0.95, 0.95) is None and upper_rank(59, 0.95, 0.95) == 59
    assert upper_rank(298, 0.99, 0.95) is None and upper_rank(299, 0.99, 0.95) == 299


def test_upper_bound_covers_the_true_p95_at_least_95_percent_of_the_time():
    """Seeded simulation: the bound's coverage is what the binomial argument promises."""
    rng = np.random.default_rng(7)
    true_p95 = math.exp(5 + 0.5 * 1.6448536269514722)  # lognormal(5, 0.5)
    trials = 2000
    covered = sum(estimate(rng.lognormal(5, 0.5, 100), 0.95, 0.95).upper >= true_p95
                  for _ in range(trials))
    lower_ok = sum(estimate(rng.lognormal(5, 0.5, 100), 0.95, 0.95).lower <= true_p95
                   for _ in range(trials))
    # exact coverage for n=100 is ≥ 0.95; allow 3 binomial standard errors of simulation noise
    assert covered / trials >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / trials)
    assert lower_ok / trials >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / trials)


def test_estimate_reports_bounds_around_the_point_estimate():
    """lower ≤ value ≤ upper, with the ranks that produced them."""
    x = np.random.default_rng(1).normal(100, 10, 500)
    est = estimate(x, 0.95, 0.95)
    assert est.lower <= est.value <= est.upper
    assert np.sort(x)[est.upper_rank - 1] == est.upper and est.n == 500


@given(st.floats(min_value=0.951, max_value=0.9999))
@settings(max_examples=30)
def test_samples_needed_is_the_first_n_that_clears(fraction):
    """At the returned n the upper bound's rank fits inside the fraction below; one less does
    not."""
    n = samples_needed(0.95, 0.95, fraction)
    assert n is not None
    assert upper_rank(n, 0.95, 0.95) <= math.floor(fraction * n + 1e-9)


def test_samples_needed_is_none_when_the_data_contradict_the_limit():
    """If only 94 % of samples are under the limit, more samples cannot prove p95 is."""
    assert samples_needed(0.95, 0.95, 0.94) is None


@pytest.mark.parametrize("q", [0, 1, -0.1, 1.5, float("nan"), True, "0.95"])
def test_bad_quantile_level_is_a_usage_error(q):
    """q outside (0, 1) names q and gives an example."""
    with pytest.raises(VoiceLatencyUsageError, match="quantile q must be"):
        estimate(np.array([1.0]), q)


def test_the_sample_size_table_in_the_docs_matches_the_code():
    """docs/statistics.md: each n is the first with an upper bound (n-1 has none)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "statistics.md").read_text()
    rows = re.findall(r"^\| p(\d+) \| (\d+) \| (\d+) \| (\d+) \|$", doc, flags=re.M)
    assert len(rows) == 4
    for pct, *ns in rows:
        for c, n in zip((0.90, 0.95, 0.99), map(int, ns)):
            q = int(pct) / 100
            assert upper_rank(n, q, c) == n and upper_rank(n - 1, q, c) is None, (pct, c, n)
