"""Specification of assert_p50/p95/p99/assert_quantile: verdicts and messages."""

from __future__ import annotations

import math

import pytest

from pytest_voicelatency import (
    LatencyAssertionError,
    VoiceLatencyUsageError,
    assert_p50,
    assert_p95,
    assert_p99,
    assert_quantile,
)
from pytest_voicelatency.spans.capture import Capture, capture_spans
from tests.helpers import record


def capture_with(stage, values, metric="first_byte_ms", nothing=0):
    cap = Capture("t")
    for i, v in enumerate(values):
        cap.table.add(record(stage, 0, 1, turn=str(i), metrics={metric: v}), "t")
    for j in range(nothing):
        cap.table.add(record(stage, 0, 1, turn=f"n{j}", metrics={metric: -1.0}), "t")
    return cap


def test_passes_when_the_quantile_is_under_the_limit():
    """p95 of 1..100 is 95 < 96."""
    cap = capture_with("asr", range(1, 101))
    assert assert_p95(stage="asr", lt=96, capture=cap).estimate.value == 95


def test_lt_is_strict_and_le_is_not():
    """lt=95 fails on a p95 of exactly 95; le=95 passes."""
    cap = capture_with("asr", range(1, 101))
    assert_p95(stage="asr", le=95, capture=cap)
    with pytest.raises(LatencyAssertionError):
        assert_p95(stage="asr", lt=95, capture=cap)


def test_failure_message_names_everything_needed_to_act():
    """Stage, metric, quantile value, limit, n, produced-nothing and the worst three turns."""
    cap = capture_with("barge_in", [100.0] * 54 + [205.0, 210.0, 220.0, 240.0, 250.0, 260.0],
                       metric="silence_ms")
    with pytest.raises(LatencyAssertionError) as info:
        assert_p95(stage="barge_in", lt=200, capture=cap)
    msg = str(info.value)
    assert "barge_in silence_ms p95 = 220.0 ms, limit < 200 ms (n=60, produced nothing: 0)" in msg
    assert "260.0 ms (session=s turn=59" in msg and "240.0 ms (session=s turn=57" in msg
    assert "trace=abababab" in msg
    assert info.value.stage == "barge_in" and info.value.value == 220.0 and info.value.n == 60


def test_produced_nothing_is_excluded_and_reported():
    """-1 samples do not count as fast turns but their number is in the message."""
    cap = capture_with("tts", [500.0] * 10, nothing=4)
    with pytest.raises(LatencyAssertionError, match=r"n=10, produced nothing: 4"):
        assert_p50(stage="tts", lt=100, capture=cap)


def test_confidence_passes_only_when_the_upper_bound_is_under_the_limit():
    """With 59+ samples all well under the limit, the 95 % upper bound clears it."""
    cap = capture_with("asr", [10.0 + i * 0.1 for i in range(100)])
    verdict = assert_p95(stage="asr", lt=50, capture=cap, confidence=0.95)
    assert verdict.estimate.upper < 50


def test_confidence_with_too_few_samples_is_inconclusive_and_says_how_many():
    """20 samples cannot bound p95 from above: inconclusive, with the n that would decide."""
    cap = capture_with("asr", [10.0] * 20)
    with pytest.raises(LatencyAssertionError, match="INCONCLUSIVE") as info:
        assert_p95(stage="asr", lt=50, capture=cap, confidence=0.95)
    assert "upper none (too few samples)" in str(info.value)
    assert "about n=59 samples would decide" in str(info.value)
    assert info.value.verdict == "inconclusive"


def test_confidence_fails_when_the_lower_bound_is_over_the_limit():
    """Clearly too slow: the lower bound itself exceeds the limit."""
    cap = capture_with("llm", [300.0 + i for i in range(100)])
    with pytest.raises(LatencyAssertionError, match="FAIL") as info:
        assert_p99(stage="llm", lt=200, capture=cap, confidence=0.95)
    assert info.value.verdict == "fail"


def test_missing_stage_lists_what_was_seen():
    """A typo'd or absent stage fails, listing the stages and metrics that exist."""
    cap = capture_with("asr", [1.0])
    with pytest.raises(LatencyAssertionError) as info:
        assert_p95(stage="barge_in", lt=200, capture=cap)
    msg = str(info.value)
    assert "no samples for stage 'barge_in' (default metric 'silence_ms')" in msg
    assert "asr: duration_ms, first_byte_ms" in msg


def test_a_misspelled_stage_or_metric_gets_the_closest_one_seen():
    cap = capture_with("barge_in", [100.0], metric="silence_ms")
    with pytest.raises(LatencyAssertionError, match=r"no samples for stage 'bargein' .*; did "
                                                    r"you mean stage 'barge_in'\?"):
        assert_p95(stage="bargein", lt=200, capture=cap)
    with pytest.raises(LatencyAssertionError, match=r"metric 'silence'; did you mean metric "
                                                    r"'silence_ms'\?"):
        assert_p95(stage="barge_in", metric="silence", lt=200, capture=cap)
    with pytest.raises(LatencyAssertionError) as far:
        assert_p95(stage="llm", lt=200, capture=cap)
    assert "did you mean" not in str(far.value)
    other = capture_with("barge_in", [100.0], metric="latency_ms")  # not its default metric
    with pytest.raises(LatencyAssertionError) as own:
        assert_p95(stage="barge_in", lt=200, capture=other)
    assert "did you mean metric 'barge_in'" not in str(own.value), str(own.value)


def test_a_stage_that_only_produced_nothing_says_so():
    """All -1: the message says the stage never called first_byte()."""
    cap = capture_with("tts", [], nothing=3)
    with pytest.raises(LatencyAssertionError, match="never called first_byte"):
        assert_p95(stage="tts", lt=200, capture=cap)


def test_metric_can_be_chosen():
    """metric= picks another metric of the stage."""
    cap = capture_with("asr", [5.0] * 10, metric="final_ms")
    assert_p50(stage="asr", metric="final_ms", lt=6, capture=cap)


def test_uses_the_innermost_active_capture_by_default():
    """No capture= needed inside capture_spans()."""
    from pytest_voicelatency import stage_span
    with capture_spans():
        for i in range(5):
            with stage_span("asr", "s", i) as fb:
                fb()
        assert_p95(stage="asr", lt=10_000)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lt": -5}, "lt= must be a positive"),
    ({"lt": 0}, "lt= must be a positive"),
    ({"lt": math.nan}, "lt= must be a positive"),
    ({"lt": "200"}, "lt= must be a positive"),
    ({"le": True}, "le= must be a positive"),
    ({}, "give exactly one limit"),
    ({"lt": 1, "le": 2}, "give exactly one limit"),
    ({"lt": 1, "stage": ""}, "stage= must be a stage name"),
    ({"lt": 1, "confidence": 1.5}, "confidence must be"),
])
def test_bad_arguments_are_usage_errors_naming_the_argument(kwargs, message):
    """Each bad argument raises a usage error that names it."""
    cap = capture_with("asr", [1.0])
    kwargs = {"stage": "asr", "capture": cap} | kwargs
    with pytest.raises(VoiceLatencyUsageError, match=message):
        assert_p95(**kwargs)


def test_q_outside_zero_one_is_a_usage_error():
    """assert_quantile(1.5, ...) names q."""
    with pytest.raises(VoiceLatencyUsageError, match="quantile q must be"):
        assert_quantile(1.5, stage="asr", lt=1, capture=capture_with("asr", [1.0]))


def test_outside_any_capture_says_how_to_open_one():
    """No active capture: the error names the fixture, the flag and the context manager."""
    with pytest.raises(VoiceLatencyUsageError, match="voice_spans fixture"):
        assert_p95(stage="asr", lt=1)


def test_helper_frames_are_hidden_from_tracebacks():
    """The failure points at the user's assert line, not the plugin's internals."""
    import pytest_voicelatency.gate.assertions as a
    for fn in (a.assert_quantile, a.assert_p50, a.assert_p95, a.assert_p99):
        assert "__tracebackhide__" in fn.__code__.co_varnames


def _unreliable_capture(policy):
    from pytest_voicelatency.spans.record import UNRELIABLE

    cap = Capture("t", policy)
    for i in range(20):
        cap.table.add(record("caller.response", 0, 1, turn=str(i),
                             metrics={"latency_ms": 100.0})._replace(flags=UNRELIABLE), "t")
    return cap


def test_a_verdict_on_unreliable_samples_warns_by_default():
    """Never silent: a pass on samples the harness could not time comes with a warning."""
    from pytest_voicelatency import VoiceLatencyWarning

    with pytest.warns(VoiceLatencyWarning, match="20 of 20 samples of caller.response"):
        assert_p95(stage="caller.response", metric="latency_ms", lt=200,
                   capture=_unreliable_capture("warn"))


def test_a_verdict_on_unreliable_samples_fails_under_the_fail_policy():
    """voice_latency_unreliable = fail turns the same pass into a failure that says why."""
    with pytest.raises(LatencyAssertionError, match="UNRELIABLE: 20 of 20 samples") as info:
        assert_p95(stage="caller.response", metric="latency_ms", lt=200,
                   capture=_unreliable_capture("fail"))
    assert info.value.verdict == "unreliable"


def test_capture_spans_refuses_an_unknown_unreliable_policy():
    """A typo in the policy is a usage error naming the choices."""
    with pytest.raises(VoiceLatencyUsageError, match="'warn', 'fail' or 'retry'"):
        with capture_spans(unreliable="ignore"):
            pass


def test_argument_errors_point_at_the_callers_line(pytester):
    """A bad lt= shows the user's call, not the plugin's validation helpers."""
    pytester.makepyfile(test_bad_lt='''
from pytest_voicelatency import assert_p95
from pytest_voicelatency import voice_spans as capture_spans

def test_x():
    with capture_spans() as cap:
        assert_p95(stage="asr", lt=-1, capture=cap)
''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "lt= must be a positive" in out
    assert "def _positive" not in out and "def limit_from" not in out
