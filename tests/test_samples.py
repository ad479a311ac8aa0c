"""Specification of how span records become samples, gaps and default metrics."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_voicelatency.spans.samples import default_metric, derive
from tests.helpers import record, table_of


def gaps(table, stage):
    return derive(table).select(stage, "duration_ms").values.tolist()


def test_gap_is_the_uncovered_time_between_consecutive_stages():
    """asr ends at 100, llm starts at 130: gap.asr_to_llm = 30 ms."""
    t = table_of(record("asr", 0, 100), record("llm", 130, 400), record("tts", 420, 900))
    assert gaps(t, "gap.asr_to_llm") == [30.0]
    assert gaps(t, "gap.llm_to_tts") == [20.0]


def test_touching_or_overlapping_stages_give_a_zero_gap():
    """Streaming stages overlap; the gap is 0, never negative."""
    t = table_of(record("asr", 0, 100), record("llm", 100, 400), record("tts", 300, 900))
    assert gaps(t, "gap.asr_to_llm") == [0.0] and gaps(t, "gap.llm_to_tts") == [0.0]


def test_gap_counts_only_time_no_earlier_bar_covers():
    """A long first bar that outlasts the second still covers the time before the third."""
    t = table_of(record("asr", 0, 500), record("llm", 100, 200), record("tts", 450, 900))
    assert gaps(t, "gap.llm_to_tts") == [0.0]


def test_one_gap_sample_per_adjacent_pair_per_turn():
    """Two turns of the same session give two samples; spans of different turns never pair."""
    t = table_of(record("asr", 0, 100, turn="1"), record("llm", 150, 300, turn="1"),
                 record("asr", 1000, 1100, turn="2"), record("llm", 1110, 1300, turn="2"))
    assert sorted(gaps(t, "gap.asr_to_llm")) == [10.0, 50.0]
    assert "gap.llm_to_asr" not in derive(t).metrics_by_stage()


def test_turn_parents_handoffs_and_caller_spans_are_not_bars():
    """A turn parent, a handoff and a caller measurement do not split or close a gap."""
    t = table_of(record("turn", 0, 1000, name="voice.turn"), record("asr", 10, 100),
                 record("handoff.asr_to_llm", 100, 160, name="voice.handoff.asr_to_llm"),
                 record("caller.response", 0, 900), record("llm", 170, 400))
    assert derive(t).metrics_by_stage().keys() >= {"gap.asr_to_llm"}
    assert gaps(t, "gap.asr_to_llm") == [70.0]
    assert not [s for s in derive(t).metrics_by_stage() if "turn" in s and s.startswith("gap.")]


def test_same_session_and_turn_ids_in_two_tests_are_two_turns():
    """Turn identity includes the test: reused ids in another test never join."""
    from pytest_voicelatency.spans.rows import SpanTable

    t = SpanTable()
    t.add(record("asr", 0, 100), "test_a")
    t.add(record("llm", 100_000, 100_100), "test_b")
    assert "gap.asr_to_llm" not in derive(t).metrics_by_stage()


def test_spans_without_ids_join_no_turn():
    """Without session/turn ids a span still gives samples but no gaps."""
    t = table_of(record("asr", 0, 100, session="", turn=""),
                 record("llm", 130, 400, session="", turn=""))
    assert list(derive(t).metrics_by_stage()) == ["asr", "llm"]


def test_produced_nothing_is_counted_and_excluded_from_values():
    """first_byte_ms = -1 is reported as 'nothing', never averaged in."""
    t = table_of(record("tts", 0, 10, metrics={"first_byte_ms": 5.0}),
                 record("tts", 20, 30, turn="2", metrics={"first_byte_ms": -1.0}))
    sel = derive(t).select("tts")
    assert sel.metric == "first_byte_ms" and sel.values.tolist() == [5.0] and sel.nothing == 1


@pytest.mark.parametrize(("stage", "available", "metric"), [
    ("asr", {"first_byte_ms", "duration_ms"}, "first_byte_ms"),
    ("barge_in", {"silence_ms", "first_byte_ms"}, "silence_ms"),
    ("handoff.vad_to_asr", {"duration_ms", "total_ms"}, "duration_ms"),
    ("gap.asr_to_llm", {"duration_ms"}, "duration_ms"),
    ("vad", {"duration_ms"}, "duration_ms"),
])
def test_default_metric_per_stage(stage, available, metric):
    """first_byte_ms by default; silence_ms for barge_in; duration_ms for handoffs and gaps."""
    assert default_metric(stage, available) == metric


def test_worst_samples_carry_session_turn_and_trace():
    """The worst samples can be looked up in a trace store."""
    t = table_of(*[record("asr", 0, 1, turn=str(i), metrics={"first_byte_ms": float(i)})
                   for i in range(10)])
    worst = derive(t).select("asr").worst(3)
    assert [(s.value, s.turn_id, s.session_id) for s in worst] == [(9.0, "9", "s"), (8.0, "8", "s"),
                                                                    (7.0, "7", "s")]
    assert worst[0].trace_id == "ab" * 16 and worst[0].test_id == "t"


def test_derive_on_an_empty_table_has_no_samples():
    """No spans, no samples, no crash."""
    assert len(derive(table_of())) == 0 and derive(table_of()).metrics_by_stage() == {}


def test_samples_are_a_snapshot_the_table_can_grow_after():
    """Deriving samples never pins the table's buffers (it stays appendable)."""
    t = table_of(record("asr", 0, 1))
    s = derive(t)
    t.add(record("asr", 2, 3, turn="2"))
    assert len(s.select("asr", "duration_ms").values) == 1 and len(t) == 2
    assert np.isfinite(s.value).all()


def test_missed_and_censored_count_as_infinite_and_keep_their_bound():
    """Unknown is never fast: missed/censored become +inf for quantiles; the bound is kept."""
    from pytest_voicelatency.spans.record import CENSORED, MISSED, UNRELIABLE
    from tests.helpers import table_of

    base = [record("caller.barge_in", 0, 1, turn=str(i), metrics={"latency_ms": 100.0})
            for i in range(3)]
    t = table_of(base[0], base[1]._replace(flags=MISSED),
                 base[2]._replace(flags=CENSORED | UNRELIABLE))
    sel = derive(t).select("caller.barge_in", "latency_ms")
    assert sel.values.tolist() == [100.0, float("inf"), float("inf")]
    assert sel.recorded.tolist() == [100.0, 100.0, 100.0]
    assert (sel.missed, sel.censored, sel.unreliable) == (1, 1, 1)
    assert [w.missed or w.censored for w in sel.worst(2)] == [True, True]


def test_flags_come_from_span_attributes(raw_spans):
    """audio.outcome and audio.reliable on a real span set the flags; a bad outcome is a problem."""
    from pytest_voicelatency import stage_span
    from pytest_voicelatency.spans.capture import capture_spans

    with capture_spans() as cap:
        with stage_span("x", "s", 1, attributes={"outcome": "missed", "reliable": False}):
            pass
        with stage_span("x", "s", 2, attributes={"outcome": "late"}):
            pass
    sel = cap.select("x", "duration_ms")
    assert (sel.missed, sel.unreliable) == (1, 1)
    assert any("audio.outcome is 'late'" in p for p in cap.problems)


def test_a_discarded_session_gives_no_samples_agent_spans_included():
    """A retried attempt's session (marked by the caller) leaves the samples and the gaps."""
    from pytest_voicelatency.spans.rows import SpanTable
    from pytest_voicelatency.spans.samples import DISCARDED

    t = SpanTable()
    for session in ("call-1", "call-1.retry1"):
        t.add(record("asr", 0, 100, session=session, metrics={"first_byte_ms": 90.0}), "test_a")
        t.add(record("llm", 150, 400, session=session), "test_a")
    t.add(record("asr", 0, 100, session="call-1", metrics={"first_byte_ms": 70.0}), "test_b")
    t.add(record(DISCARDED, 500, 500, session="call-1", bar=False, name=DISCARDED), "test_a")
    s = derive(t)
    assert sorted((x.test_id, x.session_id) for x in s.select("asr").worst(10)) == [
        ("test_a", "call-1.retry1"), ("test_b", "call-1")]      # same ids in another test stay
    assert [x.session_id for x in s.select("gap.asr_to_llm").worst(10)] == ["call-1.retry1"]
    assert DISCARDED not in s.metrics_by_stage()


def test_each_sample_carries_the_instants_of_its_span_to_join_with_the_agents_logs():
    """A sample knows when its span ran (epoch ns, as in the trace), and keeps it through the
    results file, so it can be joined with the agent's own logs."""
    from pytest_voicelatency.results.codec import dumps
    from pytest_voicelatency.results.model import Results
    from pytest_voicelatency.results.validate import loads

    table = table_of(record("asr", 10.0, 35.0, metrics={"first_byte_ms": 12.0}))
    (sample,) = [s for s in derive(table) if s.metric == "first_byte_ms"]
    assert (sample.start_ns, sample.end_ns) == (10_000_000, 35_000_000)
    back = loads(dumps(Results(samples=(sample,)), with_samples=True))
    assert back.samples is not None and back.samples[0] == sample
