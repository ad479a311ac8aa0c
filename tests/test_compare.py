"""Specification of the baseline comparison: the tail test, minimum effect, outcomes, Holm."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pytest_voicelatency.gate.compare import ComparePolicy
from pytest_voicelatency.gate.compare import compare as compare_distributions
from pytest_voicelatency.results.codec import comparison_record as to_record
from pytest_voicelatency.results.model import Results
from pytest_voicelatency.stats.distribution import Distribution, Distributions

KEY = ("asr", "first_byte_ms")


def run(values, stage: str = "asr", clock: str = "", **env) -> Results:
    d = Distribution(stage, "first_byte_ms", np.sort(np.asarray(values, dtype=float)))
    return Results(Distributions({(stage, "first_byte_ms"): d}), environment=env,
                   plugin_version="0.1.0", source=f"{stage}.json", clock=clock)


def compare(base: Results, head: Results, policy: ComparePolicy | None = None):
    """Compare two runs as the plugin does: their distributions, environments (with the
    caller's clock) and names."""
    return compare_distributions(base.distributions, head.distributions, policy or ComparePolicy(),
                                 base_environment=base.compared_environment,
                                 head_environment=head.compared_environment, base_name=base.name)


def lognormal(seed: int, n: int = 300, scale: float = 1.0, sigma: float = 0.2) -> np.ndarray:
    return 150 * scale * np.random.default_rng(seed).lognormal(0, sigma, n)


def only(comparison):
    (change,) = comparison.changes
    return change


def test_an_identical_rerun_is_no_change():
    """A/A with the very same samples: nothing above chance, no change, nothing failed."""
    c = only(compare(run(lognormal(1)), run(lognormal(1))))
    assert (c.outcome, c.failed, c.delta_ms) == ("no change", False, 0.0)
    assert c.above == 15 and c.expected == pytest.approx(15.9, abs=0.1)


def test_a_20_percent_slower_stage_is_a_regression_with_its_figures():
    """Head 1.2× slower: many more samples above the baseline's p95; fails, names the figures."""
    cmp = compare(run(lognormal(1)), run(lognormal(2, scale=1.2)))
    c = only(cmp)
    assert (c.outcome, c.failed) == ("regression", True) and cmp.failed
    assert c.pvalue < 1e-6 and c.above > 3 * c.expected and 10 < c.delta_pct < 35
    assert "REGRESSION" in c.cell and "asr first_byte_ms p95" in c.headline(0.95)


def test_a_significant_but_small_change_is_not_a_regression():
    """5 % slower with 20 000 samples: significant, below the 10 % minimum effect: no change."""
    c = only(compare(run(lognormal(1, n=20000)), run(lognormal(2, n=20000, scale=1.05))))
    assert c.outcome == "no change" and c.pvalue < 1e-6
    assert "not material: p95 +" in c.note and "the minimum effect is" in c.note


def test_the_minimum_effect_needs_both_the_relative_and_the_absolute_floor():
    """A 50 % jump of a 10 ms stage is only 5 ms: under the 10 ms floor, so no regression."""
    base, head = lognormal(1) / 15, lognormal(2, scale=1.5) / 15  # p95 ≈ 14 ms
    c = only(compare(run(base), run(head)))
    assert c.delta_ms < 10 and c.outcome == "no change"
    looser = only(compare(run(base), run(head), ComparePolicy(min_ms=1.0)))
    assert looser.outcome == "regression"


def test_a_faster_run_is_an_improvement_with_a_hint_to_refresh():
    """30 % faster: improvement (never a failure), and the note says to refresh the baseline."""
    c = only(compare(run(lognormal(1)), run(lognormal(2, scale=0.7))))
    assert (c.outcome, c.failed) == ("improvement", False) and "refresh the baseline" in c.note


def test_a_big_but_unproven_slowdown_is_inconclusive_with_the_n_that_would_decide():
    """p95 290 → 400 ms, but only 3 of 30 samples above the baseline's p95 (p ≈ 0.3): the
    effect is large, the evidence is not; the result names about how many samples would do."""
    base = np.arange(10.0, 301.0, 10.0)
    head = np.concatenate([base[:27], [400.0] * 3])
    cmp = compare(run(base), run(head))
    c = only(cmp)
    assert (c.outcome, c.failed, c.above) == ("inconclusive", False, 3)
    assert c.delta_ms == 110 and 0.2 < c.points[-1].worse < 0.5
    assert c.pvalue == pytest.approx(1.5 * c.points[-1].worse)  # the p95 test holds ⅔ of α
    assert c.needed is not None and c.needed > 30 and f"n≈{c.needed}" in c.cell
    assert any("inconclusive" in w and f"n={c.needed}" in w for w in cmp.warnings)
    strict = only(compare(run(base), run(head), ComparePolicy(inconclusive="fail")))
    assert strict.failed and "INCONCLUSIVE" in strict.cell


def test_too_few_samples_for_any_verdict_is_inconclusive_not_no_change():
    """Three samples a side can never reach 99 %: even a tripling is only inconclusive."""
    c = only(compare(run([10.0, 20.0, 30.0]), run([100.0, 200.0, 300.0])))
    assert c.outcome == "inconclusive" and "too few samples" in c.note and c.needed > 3
    tiny = only(compare(run([10.0, 20.0, 30.0]), run([10.0, 20.0, 30.0])))
    assert tiny.outcome == "inconclusive"  # "no change" would claim more than 3 samples show


def test_a_heavy_tailed_stage_slowing_down_is_caught_through_its_upper_body():
    """A stage with p95/p50 ≈ 1.8 gets 20 % slower, 300 samples a side. Its top 5 % are only 15
    samples: here the p95 test alone leaves it inconclusive. The counts above the baseline's p50,
    p75 and p90 carry far more evidence, so the default family calls it a regression; and when the
    noisy p95 itself grew by less than the minimum effect, the upper quarter's growth decides.
    Confidence 0.999 = one of ten stages compared at 0.99 (Holm's first step)."""
    one_of_ten = ComparePolicy(confidence=0.999)
    base, head = lognormal(11, sigma=0.35), lognormal(20, sigma=0.35, scale=1.2)
    alone = only(compare(run(base), run(head), replace(one_of_ten, body=())))
    assert alone.outcome == "inconclusive" and [p.q for p in alone.points] == [0.95]
    c = only(compare(run(base), run(head), one_of_ten))
    assert (c.outcome, c.failed) == ("regression", True)
    assert [p.q for p in c.points] == [0.5, 0.75, 0.9, 0.95]
    assert c.pvalue < 1e-3 and 0.1 < c.upper_growth < 0.3
    assert "upper quarter +" in c.headline(0.95) and "p50 +" in c.headline(0.95)
    # seeds picked for a p95 that grew only 7 % (its noise at n = 300) while the body grew 14 %
    c = only(compare(run(lognormal(13, sigma=0.35)), run(lognormal(115, sigma=0.35, scale=1.2)),
                     one_of_ten))
    assert c.delta_pct < 8 and c.outcome == "regression" and c.by_upper
    assert "(upper quarter +" in c.cell


def test_a_slower_median_under_a_p95_that_held_is_not_a_regression():
    """p50 +30 % and p75 +18 %, but p90 +4 % and p95 exactly where it was: the exceedances over
    p50 are significant, yet the upper quarter's middle growth (p75, p90, p95) is 4 %, under
    the minimum effect: no regression, and the note says why."""
    base = np.arange(100.0, 400.0)
    head = base.copy()
    head[:284] = np.minimum(base[:284] * 1.3, 383.0)  # p95 (the 285th) untouched at 384
    c = only(compare(run(base), run(head)))
    assert c.delta_ms == 0 and c.points[0].worse < 1e-6 and c.points[0].growth > 0.29
    assert c.outcome == "no change" and not c.failed
    assert "not material: p95 +0.0 ms (+0 %)" in c.note and "upper quarter +4 %" in c.note
    tail_compressed = np.exp(0.6 * np.log(lognormal(2, n=2000, sigma=0.35) / 150)
                             + np.log(1.2)) * 150
    c = only(compare(run(lognormal(1, n=2000, sigma=0.35)), run(tail_compressed)))
    assert c.points[0].worse < 1e-6 and c.delta_ms < 0  # p50 +20 %, p95 -8 %
    assert c.outcome == "no change" and "not material" in c.note


def test_ties_do_not_make_unchanged_runs_look_faster():
    """Latencies quantised to 30 ms steps tie at every baseline quantile. Counting ties as not
    above would make "fewer exceedances" look likely in unchanged runs (about one run in five
    was an 'improvement'); counted as above, the test stays conservative in both directions."""
    rng = np.random.default_rng(7)
    values, weights = [60.0, 90.0, 120.0, 150.0], [0.5, 0.25, 0.15, 0.10]
    changes = [only(compare(run(rng.choice(values, 300, p=weights)),
                            run(rng.choice(values, 300, p=weights)))) for _ in range(60)]
    assert sum(c.improvement_pvalue <= 0.01 for c in changes) <= 1
    assert sum(c.pvalue <= 0.01 for c in changes) <= 1
    assert not any(c.outcome in ("improvement", "regression") for c in changes)


def test_a_zero_baseline_is_shown_in_ms_not_as_missed():
    """Gap stages are 0 ms when stages touch: growth from 0 reads in ms, never "missed"."""
    base, head = np.zeros(300), np.concatenate([np.zeros(150), np.full(150, 30.0)])
    c = only(compare(run(base), run(head)))
    assert c.outcome == "regression" and "missed" not in c.cell + c.headline(0.95)
    assert c.delta_text() == "+30.0 ms" and "p75 +30.0 ms" in c.body_text()
    missed = only(compare(run(lognormal(1)), run(np.full(300, np.inf))))
    assert missed.outcome == "regression" and missed.delta_text() == "missed"


def test_the_policy_refuses_shares_that_do_not_add_up():
    """tail_share outside (0, 1) or body quantiles not below q: a clear error, not a crash later."""
    from pytest_voicelatency.errors import VoiceLatencyUsageError

    for bad in ({"tail_share": 1.0}, {"tail_share": 0.0}, {"tail_share": 1.5},
                {"body": (0.9, 0.5)}, {"body": (0.5, 0.99)}):
        with pytest.raises(VoiceLatencyUsageError, match="ComparePolicy: "):
            ComparePolicy(**bad)
    assert ComparePolicy(body=(), tail_share=1.0).shares() == ((0.95, 1.0),)


def test_the_upper_body_needs_both_floors_too():
    """A 10 ms stage 30 % slower everywhere: 3 ms of growth is under the 10 ms floor."""
    base, head = lognormal(1) / 15, lognormal(2, scale=1.3) / 15
    c = only(compare(run(base), run(head)))
    assert c.upper_delta_ms < 10 and c.outcome == "no change"


def test_holm_spreads_the_error_budget_over_every_compared_stage():
    """28 of 300 above the baseline's p95 (15 expected; p ≈ 0.03) is a regression when it is the
    only comparison at 95 %, but not among 20 compared stages (it would need p ≤ 0.0025)."""
    policy = ComparePolicy(confidence=0.95, min_relative=0.0, min_ms=0.0, body=())
    base = np.arange(1.0, 301.0)
    head = base.copy()
    head[100:113] = 1000.0  # 13 more samples above 285
    alone = only(compare(run(base), run(head), policy))
    assert alone.outcome == "regression" and alone.above == 28
    dists = {KEY: Distribution(*KEY, base)}
    heads = {KEY: Distribution(*KEY, np.sort(head))}
    for i in range(19):
        dists[(f"s{i}", "first_byte_ms")] = heads[(f"s{i}", "first_byte_ms")] = \
            Distribution(f"s{i}", "first_byte_ms", base)
    many = compare(Results(Distributions(dists)), Results(Distributions(heads)), policy)
    assert many.family == 20
    assert next(c for c in many.changes if c.stage == "asr").outcome == "inconclusive"


def test_stages_on_one_side_only_are_listed_not_judged():
    """A stage only in the baseline is 'gone', only in this run 'new'; a warning names both."""
    base, head = run(lognormal(1), stage="asr"), run(lognormal(1), stage="tts")
    cmp = compare(base, head)
    assert {(c.stage, c.outcome) for c in cmp.changes} == {("asr", "gone"), ("tts", "new")}
    assert not cmp.failed and cmp.family == 0
    assert any("different stages" in w and "only in the baseline: asr" in w
               and "only in this run: tts" in w for w in cmp.warnings)


def test_an_environment_mismatch_warns_naming_the_difference():
    """A different CPU count is named in a warning; the comparison still happens."""
    cmp = compare(run(lognormal(1), cpu_count=4), run(lognormal(1), cpu_count=2))
    assert only(cmp).outcome == "no change"
    assert any("cpu_count 4 in the baseline, 2 in this run" in w for w in cmp.warnings)


def test_a_virtual_time_run_against_a_real_time_baseline_warns_naming_the_clocks():
    cmp = compare(run(lognormal(1), clock="real"), run(lognormal(1), clock="virtual"))
    assert any("clock real in the baseline, virtual in this run" in w for w in cmp.warnings)
    same = compare(run(lognormal(1), clock="virtual"), run(lognormal(1), clock="virtual"))
    unknown = compare(run(lognormal(1)), run(lognormal(1), clock="virtual"))  # an older file
    mixed = compare(run(lognormal(1), clock="mixed (3 calls virtual, 1 real)"),
                    run(lognormal(1), clock="mixed (4 calls virtual, 1 real)"))  # a test more
    assert not any("clock" in w for w in (*same.warnings, *unknown.warnings, *mixed.warnings))


def test_the_record_keeps_policy_and_figures():
    """The JSON form of a comparison has the policy, family and each change's numbers."""
    rec = to_record(compare(run(lognormal(1)), run(lognormal(2, scale=1.2))))
    assert rec["confidence"] == 0.99 and rec["family"] == 1 and rec["quantile"] == 0.95
    (change,) = rec["changes"]
    assert change["outcome"] == "regression" and change["base_n"] == 300 and change["pvalue"] < 1e-6
    assert rec["body"] == [0.5, 0.75, 0.9] and rec["tail_share"] == pytest.approx(2 / 3)
    assert [p["quantile"] for p in change["points"]] == [0.5, 0.75, 0.9, 0.95]
    assert all(p["above"] > p["expected"] for p in change["points"])
