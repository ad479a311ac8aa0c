"""Specification of the run-wide CI gates: verdicts, globs, Holm, and the three policies."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import record, table_of
from hypothesis import example, given
from hypothesis import strategies as st

from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.gate.evaluate import GatePolicy, evaluate, policy_from_strings
from pytest_voicelatency.gate.thresholds import parse_thresholds
from pytest_voicelatency.results.codec import gate_records as records
from pytest_voicelatency.spans.record import MISSED, UNRELIABLE
from pytest_voicelatency.spans.samples import derive
from pytest_voicelatency.stats.verdict import judge


def samples_of(flags: dict[str, int] | None = None, **stages: list[float]):
    """A SampleSet with the given first_byte_ms values per stage (one turn per value, no gaps)."""
    rows = []
    for stage, values in stages.items():
        for i, v in enumerate(values):
            r = record(stage, 0, 1, turn=f"{stage}{i}", metrics={"first_byte_ms": v}, bar=False)
            rows.append(r._replace(flags=(flags or {}).get(stage, 0) if i == 0 else 0))
    return derive(table_of(*rows))


def gate(lines, samples, **policy):
    return evaluate(samples, parse_thresholds(lines), GatePolicy(**policy))


def test_point_estimate_gates_pass_and_fail_on_the_nearest_rank_quantile():
    """Without confidence, p95 of 1..100 is 95: `< 96` passes, `< 95` fails, `<= 95` passes."""
    s = samples_of(asr=list(np.arange(1.0, 101.0)))
    report = gate(["asr: p95 < 96", "asr: p95 < 95", "asr: p95 <= 95"], s)
    assert [r.outcome for r in report.results] == ["pass", "fail", "pass"]
    assert report.failed and report.family == 0
    assert report.results[1].cell == "p95 < 95 FAIL" and report.results[0].cell == "p95 < 96 pass"


@given(st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=200),
       st.sampled_from([0.5, 0.95, 0.99]), st.floats(1, 1000), st.sampled_from([None, 0.9, 0.95]))
@example(values=[1.0], q=0.95, limit=1.0, confidence=0.95)  # exact boundary: P(B >= 1) = 1 - q
def test_a_single_gate_decides_exactly_like_the_in_test_assertion(values, q, limit, confidence):
    """One gate and `judge` (what assert_p95 uses) agree on every input (Holm over 1 = no-op)."""
    s = samples_of(asr=values)
    line = f"asr: p{q * 100:g} < {limit!r}"
    result = gate([line], s, confidence=confidence).results[0]
    expected = judge(s.select("asr").values, q, parse_thresholds([line])[0].limit, confidence)
    assert result.outcome == expected.outcome


def test_a_glob_yields_one_verdict_per_matching_stage():
    """`gap.*` judges every gap stage separately; each row gets its own verdict."""
    table = table_of(record("asr", 0, 100), record("llm", 130, 400), record("tts", 450, 500))
    report = evaluate(derive(table), parse_thresholds(["gap.*: p95 < 40"]), GatePolicy())
    assert {(r.stage, r.outcome) for r in report.results} == {
        ("gap.asr_to_llm", "pass"), ("gap.llm_to_tts", "fail")}
    assert report.cells()[("gap.llm_to_tts", "duration_ms")] == "p95 < 40 FAIL"


def test_a_glob_matching_nothing_is_missing_and_fails_by_default():
    """No stage matches: the gate is *missing* (never a silent pass) and names what exists."""
    report = gate(["gap.*: p95 < 100"], samples_of(asr=[1.0]))
    r = report.results[0]
    assert (r.outcome, r.failed) == ("missing", True)
    assert "matched no stage" in r.note and "asr" in r.note


def test_the_missing_policy_warn_reports_without_failing():
    """voice_latency_missing = warn: the gate is listed as missing and warned about."""
    report = gate(["tts: p95 < 100"], samples_of(asr=[1.0]), missing="warn")
    assert not report.failed and report.results[0].outcome == "missing"
    assert any("tts" in w and "no samples" in w for w in report.warnings)


def test_a_metric_after_the_last_dot_is_used_and_an_unknown_one_is_missing():
    """`asr.duration_ms` gates the duration; `asr.silence_ms` does not exist and says so."""
    s = samples_of(asr=[5.0] * 10)
    report = gate(["asr.duration_ms: p95 < 2", "asr.silence_ms: p95 < 2"], s)
    assert (report.results[0].metric, report.results[0].outcome) == ("duration_ms", "pass")
    r = report.results[1]
    assert (r.outcome == "missing" and "has no metric 'silence_ms'" in r.note
            and "first_byte_ms" in r.note)


def test_a_metric_without_its_ms_suffix_is_missing_with_a_did_you_mean():
    """`asr.first_byte` names no stage; the MISSING note suggests stage asr, metric
    first_byte_ms."""
    r = gate(["asr.first_byte: p95 < 150"], samples_of(asr=[5.0] * 10)).results[0]
    assert (r.outcome, r.failed) == ("missing", True)
    assert "did you mean stage 'asr' with metric 'first_byte_ms'? a metric is selected only when " \
        "the last dotted part ends in _ms" in r.note


def test_a_count_metric_gate_is_missing_and_says_counts_cannot_be_gated_yet():
    """`caller.playout.underruns` cannot be selected (no _ms): the note says so, not just 'no
    samples'."""
    playout = record("caller.playout", 0, 1000, metrics={"jitter_ms": 3.0, "underruns": 2.0},
                     bar=False)
    r = gate(["caller.playout.underruns: p95 < 1"], derive(table_of(playout))).results[0]
    assert r.outcome == "missing" and r.failed
    assert "'underruns' of stage 'caller.playout' is a count" in r.note
    assert "cannot be gated by a threshold line yet" in r.note


def test_a_stage_that_always_produced_nothing_is_missing():
    """first_byte_ms = -1 everywhere: no number to gate, so the gate is missing, not passed."""
    report = gate(["asr: p95 < 100"], samples_of(asr=[-1.0] * 5))
    assert report.results[0].outcome == "missing" and "produced nothing" in report.results[0].note


def test_missed_samples_count_as_infinitely_slow():
    """A missed barge-in is never fast: it pushes the quantile to +inf and fails the gate."""
    s = samples_of(flags={"asr": MISSED}, asr=[10.0] * 10)
    assert gate(["asr: p95 < 100"], s).results[0].outcome == "fail"


def test_with_confidence_a_clear_pass_and_a_clear_fail_stay_decided():
    """300 samples far from the limit: bounds decide both ways; Holm only protects fails."""
    rng = np.random.default_rng(1)
    s = samples_of(asr=list(rng.uniform(50, 100, 300)), llm=list(rng.uniform(300, 400, 300)))
    report = gate(["asr: p95 < 150", "llm: p95 < 200"], s, confidence=0.95)
    assert [r.outcome for r in report.results] == ["pass", "fail"] and report.family == 2
    assert report.results[1].pvalue < 1e-6


def test_holm_turns_a_marginal_fail_among_many_gates_into_inconclusive():
    """A gate that fails at 95 % alone is only inconclusive when 10 gates share the error budget."""
    values = [10.0] * 100
    marginal = [10.0] * 90 + [500.0] * 10  # 10 of 100 beyond: p ≈ 0.028 for p95
    alone = gate(["asr: p95 < 100"], samples_of(asr=marginal), confidence=0.95)
    assert alone.results[0].outcome == "fail"
    others = {f"s{i}": values for i in range(9)}
    many = gate([f"s{i}: p95 < 100" for i in range(9)] + ["asr: p95 < 100"],
                samples_of(asr=marginal, **others), confidence=0.95)
    r = many.results[-1]
    assert r.outcome == "inconclusive" and not r.failed and many.family == 10
    assert "Holm" in r.note and r.needed is not None and r.needed > 100
    assert any("inconclusive" in w for w in many.warnings)


def test_the_inconclusive_policy_fail_fails_the_run():
    """voice_latency_inconclusive = fail: an undecided gate is a failure (INCONCLUSIVE)."""
    s = samples_of(asr=[10.0] * 30)  # too few samples for an upper bound on p95
    report = gate(["asr: p95 < 100"], s, confidence=0.95, inconclusive="fail")
    r = report.results[0]
    assert (r.outcome, r.failed) == ("inconclusive", True) and report.failed
    assert r.cell.startswith("p95 < 100 INCONCLUSIVE (n≈")


@pytest.mark.parametrize("policy, outcome, failed", [
    ("warn", "pass", False), ("retry", "pass", False), ("fail", "unreliable", True)])
def test_unreliable_samples_are_reported_never_silently_judged(policy, outcome, failed):
    """A gate on samples the harness flagged says so: warn/retry keep the verdict with a
    warning and a count in the cell; fail turns the gate into a failure named unreliable."""
    s = samples_of(flags={"asr": UNRELIABLE}, asr=[10.0] * 20)
    report = gate(["asr: p95 < 100"], s, unreliable=policy)
    r = report.results[0]
    assert (r.outcome, r.failed, r.unreliable) == (outcome, failed, 1)
    if failed:
        assert "unreliable" in r.note and r.cell == "p95 < 100 UNRELIABLE"
    else:
        assert r.cell == "p95 < 100 pass (1 unreliable)"
        assert any("1 of 20 samples are unreliable" in w for w in report.warnings)


def test_records_carry_every_figure_for_the_results_file():
    """The JSON record of a gate has its line, stage, metric, outcome, numbers and cell."""
    report = gate(["asr: p95 < 96"], samples_of(asr=list(np.arange(1.0, 101.0))), confidence=0.95)
    (rec,) = records(report)
    assert (rec["line"] == "asr: p95 < 96" and rec["stage"] == "asr"
            and rec["metric"] == "first_byte_ms")
    assert rec["outcome"] == "inconclusive" and rec["value"] == 95.0 and rec["n"] == 100
    assert rec["upper"] is not None and rec["confidence"] == 0.95


@pytest.mark.parametrize("kwargs, key", [
    ({"confidence": "high"}, "voice_latency_confidence"),
    ({"confidence": "1.5"}, "voice_latency_confidence"),
    ({"inconclusive": "ignore"}, "voice_latency_inconclusive"),
    ({"missing": "skip"}, "voice_latency_missing"),
    ({"unreliable": "drop"}, "voice_latency_unreliable"),
])
def test_bad_policy_values_name_their_ini_key_and_the_choices(kwargs, key):
    """A typo in a policy ini is refused with the key and what it accepts."""
    with pytest.raises(VoiceLatencyUsageError, match=key):
        policy_from_strings(**kwargs)


def test_policy_strings_parse_with_defaults():
    """Empty confidence means point estimates; values are case-insensitive."""
    assert policy_from_strings() == GatePolicy()
    assert policy_from_strings("0.95", "FAIL", "warn", "retry") == GatePolicy(0.95, "fail", "warn",
                                                                              "retry")
