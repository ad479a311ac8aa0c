"""Specification of the gate-line grammar of ``voice_latency_thresholds``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.gate.thresholds import (
    GRAMMAR,
    parse_threshold,
    parse_thresholds,
    selector_hint,
    split_selector,
)
from pytest_voicelatency.stats.levels import quantile_label


@pytest.mark.parametrize("line, pattern, metric, q, op, limit", [
    ("barge_in: p95 < 200", "barge_in", None, 0.95, "<", 200.0),
    ("asr: p95 < 150", "asr", None, 0.95, "<", 150.0),
    ("llm.first_byte_ms: p99 <= 900", "llm", "first_byte_ms", 0.99, "<=", 900.0),
    ("caller.response: p50 < 700", "caller.response", None, 0.50, "<", 700.0),
    ("gap.*: p95 < 100", "gap.*", None, 0.95, "<", 100.0),
    ("handoff.vad_to_asr.duration_ms: p90<50ms", "handoff.vad_to_asr", "duration_ms", 0.90, "<",
     50.0),
    ("  tts :  P99.9  <=  1200.5 ", "tts", None, 0.999, "<=", 1200.5),
])
def test_the_documented_examples_parse(line, pattern, metric, q, op, limit):
    """Every form in the docs parses to its stage glob, metric, quantile, operator and limit."""
    t = parse_threshold(line)
    assert (t.pattern, t.metric, t.limit.op, t.limit.value) == (pattern, metric, op, limit)
    assert t.q == pytest.approx(q)


def test_a_dotted_stage_is_a_metric_only_when_the_last_part_ends_in_ms():
    """Stage names contain dots, so only a trailing `_ms` part is read as the metric."""
    assert split_selector("caller.response") == ("caller.response", None)
    assert split_selector("gap.asr_to_llm") == ("gap.asr_to_llm", None)
    assert split_selector("caller.response.duration_ms") == ("caller.response", "duration_ms")
    assert split_selector("first_byte_ms") == ("first_byte_ms", None)  # no stage before it
    assert split_selector("gap.*_ms") == ("gap.*_ms", None)  # a glob is never a metric


STAGES = {"asr": ["duration_ms", "first_byte_ms"],
          "caller.playout": ["buffer_ms", "clears", "jitter_ms", "underruns"],
          "caller.pacing": ["frames", "lateness_p99_ms"]}


def test_a_metric_without_ms_on_a_known_stage_suggests_the_ms_metric():
    """`asr.first_byte` is read as a stage; the hint names the stage, the metric and the rule."""
    assert selector_hint("asr.first_byte", STAGES) == (
        "did you mean stage 'asr' with metric 'first_byte_ms'? a metric is selected only when "
        "the last dotted part ends in _ms")


@pytest.mark.parametrize("selector, stage, metric", [
    ("caller.playout.underruns", "caller.playout", "underruns"),
    ("caller.playout.clears", "caller.playout", "clears"),
    ("caller.pacing.frames", "caller.pacing", "frames")])
def test_a_count_metric_is_named_as_not_gateable_yet(selector, stage, metric):
    """Counts do not end in _ms, so a threshold line cannot select them; the hint says so."""
    hint = selector_hint(selector, STAGES)
    assert f"{metric!r} of stage {stage!r} is a count, not milliseconds" in hint
    assert "cannot be gated by a threshold line yet" in hint


def test_an_unknown_metric_on_a_known_stage_lists_the_stages_metrics():
    """Neither `x` nor `x_ms` exists: the hint says the rule and what the stage has."""
    hint = selector_hint("asr.latency", STAGES)
    assert "stage 'asr' has no metric 'latency' or 'latency_ms'" in hint
    assert "duration_ms, first_byte_ms" in hint and "ends in _ms" in hint


@pytest.mark.parametrize("selector", ["tts", "tts.first_byte", "gap.*", "asr"])
def test_no_hint_when_the_part_before_the_last_dot_is_no_known_stage(selector):
    """Only a known stage before the last dot earns a hint (a plain typo gets the generic note)."""
    assert selector_hint(selector, STAGES) == ""


def test_blank_lines_and_comments_are_ignored():
    """The ini linelist may be laid out with blank lines and # comments."""
    gates = parse_thresholds(["", "# latency budget", "asr: p95 < 150", "   "])
    assert [g.line for g in gates] == ["asr: p95 < 150"]


def test_labels_name_the_quantile_and_limit():
    """The table shows a gate as `p95 < 200`."""
    assert parse_threshold("barge_in: p95 < 200").label == "p95 < 200"
    assert quantile_label(0.999) == "p99.9" and quantile_label(0.5) == "p50"
    assert parse_threshold("gap.*: p95 < 100").is_glob
    assert not parse_threshold("gap.asr_to_llm: p95 < 100").is_glob


@pytest.mark.parametrize("line, reason", [
    ("barge_in p95 < 200", "colon"),
    ("barge_in: p101 < 200", "unknown quantile p101"),
    ("barge_in: p0 < 200", "unknown quantile p0"),
    ("barge_in: p100 < 200", "unknown quantile p100"),
    ("barge_in: p95 > 200", "use < or <="),
    ("barge_in: p95 >= 200", "use < or <="),
    ("barge_in: p95 < fast", "not a number"),
    ("barge_in: p95 < -5", "positive"),
    ("barge_in: p95 < 0", "positive"),
    ("barge_in: p95 < inf", "positive"),
    ("barge_in: mean < 200", "expected 'p<percentile>"),
    ("barge in: p95 < 200", "may contain only"),
    (": p95 < 200", "colon"),
])
def test_a_bad_line_is_a_usage_error_quoting_it_and_showing_the_grammar(line, reason):
    """Each malformed line names itself, what is wrong, and the grammar to fix it."""
    with pytest.raises(VoiceLatencyUsageError) as info:
        parse_threshold(line)
    message = str(info.value)
    assert repr(line.strip()) in message
    assert reason in message
    assert GRAMMAR in message


stage_names = st.from_regex(r"\A[a-z][a-z_]{0,8}(\.[a-z][a-z_]{0,8}){0,2}\Z")


@given(stage_names, st.sampled_from(["50", "90", "95", "99", "99.9"]), st.sampled_from(["<", "<="]),
       st.floats(min_value=0.5, max_value=1e5, allow_nan=False).map(lambda x: round(x, 2)))
def test_any_well_formed_line_round_trips(stage, pct, op, limit):
    """Whatever the stage name, a well-formed line gives back exactly what it says."""
    t = parse_threshold(f"{stage}: p{pct} {op} {limit}")
    expected_stage, expected_metric = split_selector(stage)
    assert (t.pattern, t.metric, t.limit.op, t.limit.value) == (expected_stage, expected_metric,
                                                                 op, limit)
    assert t.q == pytest.approx(float(pct) / 100)
