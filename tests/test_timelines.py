"""Turn timelines: what the HTML report's waterfalls draw for a stage's worst turns."""

from __future__ import annotations

import pytest
from helpers import record, table_of

from pytest_voicelatency.spans.record import MISSED, SpanRecord
from pytest_voicelatency.spans.samples import derive
from pytest_voicelatency.spans.timelines import worst_turns, worst_turns_by_key


def _turn(session: str, turn: str, t0: float, asr_fb: float, *, gap: float = 10.0):
    """One agent turn starting at ``t0`` ms: handoff, asr, llm, tts with a ``gap`` before llm."""
    return [
        record("turn", t0, t0 + 1000, session=session, turn=turn),
        record("handoff.vad_to_asr", t0, t0 + 40, session=session, turn=turn),
        record("asr", t0 + 40, t0 + 300, session=session, turn=turn,
               metrics={"first_byte_ms": asr_fb}),
        record("llm", t0 + 300 + gap, t0 + 700, session=session, turn=turn,
               metrics={"first_byte_ms": 150.0}),
        record("tts", t0 + 500, t0 + 1000, session=session, turn=turn,
               metrics={"first_byte_ms": 80.0}),
    ]


def test_worst_turns_are_distinct_turns_worst_first_and_at_most_n():
    """The n worst samples' turns, worst first; a turn with two bad samples appears once."""
    rows = [r for i, fb in enumerate([50.0, 90.0, 70.0, 20.0])
            for r in _turn("s", str(i), 2000.0 * i, fb)]
    table = table_of(*rows)
    got = worst_turns(table, "asr", None, 3)
    assert [(t.turn_id, t.value) for t in got] == [("1", 90.0), ("2", 70.0), ("0", 50.0)]
    assert all(t.metric == "first_byte_ms" and t.session_id == "s" and t.test_id == "t"
               for t in got)
    gap_turns = worst_turns(table, "gap.asr_to_llm", None, 10)
    assert len(gap_turns) == 4  # one gap sample per turn, each turn once


def test_rows_are_the_turns_spans_in_start_order_relative_to_its_origin_with_first_byte_marks():
    table = table_of(*_turn("s", "7", 5000.0, 60.0))
    (tl,) = worst_turns(table, "asr", None, 1)
    assert [(r.stage, r.kind) for r in tl.rows] == [
        ("turn", "turn"), ("handoff.vad_to_asr", "handoff"), ("asr", "bar"), ("llm", "bar"),
        ("tts", "bar")]
    asr = tl.rows[2]
    assert (asr.start_ms, asr.end_ms) == (40.0, 300.0)
    assert [(m.label, m.at_ms) for m in asr.marks] == [("first byte", 100.0)]
    assert dict(asr.metrics)["first_byte_ms"] == 60.0
    assert tl.trace_ids == ("ab" * 16,)
    assert tl.end_ms == 1000.0


def test_gaps_come_from_the_one_gap_rule_and_end_where_the_later_bar_starts():
    """Every gap sample derive() finds for the turn is drawn, from the uncovered time before
    the later bar (touching or overlapping bars give a 0 ms gap)."""
    table = table_of(*_turn("s", "1", 0.0, 60.0, gap=25.0))
    (tl,) = worst_turns(table, "gap.asr_to_llm", None, 1)
    assert tl.value == 25.0
    gaps = {g.stage: (g.start_ms, g.end_ms) for g in tl.gaps}
    assert gaps == {"gap.asr_to_llm": (300.0, 325.0), "gap.llm_to_tts": (500.0, 500.0)}
    derived = derive(table).select("gap.asr_to_llm").values.tolist()
    assert derived == [next(g.duration_ms for g in tl.gaps if g.stage == "gap.asr_to_llm")]


def _barge_in_turn(agent_turn: str, caller_turn: str, *, onset: float = 1000.0,
                   silence: float = 1500.0) -> list[SpanRecord]:
    """An agent that cancels 60 ms after the onset while the caller hears silence later."""
    return [
        record("barge_in", onset + 40, onset + 60, turn=agent_turn,
               metrics={"vad_detect_ms": 40.0, "first_byte_ms": 18.0, "silence_ms": 60.0}),
        record("turn", onset + 40, onset + 2000, turn=agent_turn),
        record("asr", onset + 60, onset + 800, turn=agent_turn, metrics={"first_byte_ms": 70.0}),
        record("caller.barge_in", onset, silence, turn=caller_turn, bar=False,
               metrics={"latency_ms": silence - onset}),
        record("caller.response", onset + 900, onset + 1600, turn=caller_turn, bar=False,
               metrics={"latency_ms": 700.0}),
    ]


def test_the_callers_measurements_join_the_agent_turn_by_time_not_by_turn_id():
    """The agent counts turns its own way: caller turn 2 is the agent's turn 5 here, and the
    previous agent turn (playing when the user barged in) does not get it."""
    table = table_of(*_turn("s", "4", 0.0, 50.0), *_barge_in_turn("5", "2"))
    (tl,) = worst_turns(table, "barge_in", None, 1)
    assert tl.turn_id == "5"
    assert {h.stage for h in tl.heard} == {"caller.barge_in", "caller.response"}
    barge = next(h for h in tl.heard if h.stage == "caller.barge_in")
    assert (barge.turn_id, barge.start_ms, barge.end_ms, barge.outcome) == ("2", 0.0, 500.0, "ok")
    assert [e.kind for e in barge.events] == ["barge_in_onset", "silence"]
    response = next(h for h in tl.heard if h.stage == "caller.response")
    assert [(e.kind, e.at_ms) for e in response.events] == [("speech_end", 900.0),
                                                            ("first_audio", 1600.0)]
    (previous,) = worst_turns(table, "gap.asr_to_llm", None, 1)
    assert previous.turn_id == "4" and previous.heard == ()


def test_a_barge_in_turn_shows_the_audio_heard_after_the_agents_cancel():
    """The seed's incident: the agent cancels at its first byte (onset + 58 ms) and believes it
    is quiet; the caller hears silence at onset + 500 ms. The tail is the 442 ms in between."""
    table = table_of(*_barge_in_turn("3", "3"))
    (tl,) = worst_turns(table, "caller.barge_in", None, 1)
    assert tl.stage == "caller.barge_in" and tl.value == 500.0
    (tail,) = tl.tails
    assert (tail.start_ms, tail.end_ms) == (58.0, 500.0)
    assert tail.duration_ms == pytest.approx(442.0)


def test_missed_samples_rank_first_and_say_so():
    flagged = SpanRecord("caller.barge_in", "caller.barge_in", "s", "2", 0, 5000 * 10**6,
                         7000 * 10**6, (("latency_ms", 2000.0),), False, (), int(MISSED))
    table = table_of(*_barge_in_turn("1", "1", onset=0.0, silence=300.0),
                     *[r for r in _barge_in_turn("2", "2", onset=5000.0) if r.stage !=
                       "caller.barge_in"], flagged)
    got = worst_turns(table, "caller.barge_in", None, 2)
    assert [(t.turn_id, t.outcome) for t in got] == [("2", "missed"), ("1", "ok")]
    assert got[0].heard[0].events[-1].label.startswith("agent still audible")


def test_a_sample_that_joins_no_turn_gets_its_own_span_alone():
    table = table_of(record("asr", 0, 100, session="", turn="", metrics={"first_byte_ms": 9.0}))
    (tl,) = worst_turns(table, "asr", None, 5)
    assert [r.stage for r in tl.rows] == ["asr"] and tl.gaps == () and tl.heard == ()


def test_several_keys_at_once_and_unknown_stages_give_nothing():
    table = table_of(*_turn("s", "1", 0.0, 50.0))
    got = worst_turns_by_key(table, [("asr", None), ("llm", "first_byte_ms"), ("nope", None)], 3)
    assert set(got) == {("asr", "first_byte_ms"), ("llm", "first_byte_ms"),
                        ("nope", "first_byte_ms")}
    assert got[("nope", "first_byte_ms")] == ()
    assert len(got[("asr", "first_byte_ms")]) == 1
