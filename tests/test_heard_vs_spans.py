"""The agent's own account against what the caller heard, for whole-turn spans.

A framework's ``turn`` span (Pipecat ``turn``, LiveKit ``agent_turn``) starts when the user
starts speaking, long before the caller's ``caller.response`` window (end of the user's speech →
first audio heard), and Pipecat's child spans carry no session attribute, only the trace id. So
the response check pairs by the instant the reply was heard (``pairing="covers"``) and a
Pipecat trace is renamed to the session its ``conversation`` root names. The last tests run a
real Pipecat pipeline on virtual time: its own ``turn`` latency agrees with what the caller
heard (it was ~28,800,000 s before the observer's ``time_source=time.time`` default followed the
virtual clock).
"""

from __future__ import annotations

import time

import pytest

from pytest_voicelatency.call.caller import Caller
from pytest_voicelatency.call.log import Received
from pytest_voicelatency.call.protocol import AgentState
from pytest_voicelatency.call.script import answer, barge_in, say
from pytest_voicelatency.gate.crosscheck import RESPONSE_CHECK, Check, disagreements
from pytest_voicelatency.spans.capture import capture_spans
from pytest_voicelatency.spans.record import SpanRecord
from pytest_voicelatency.spans.rows import SpanTable
from pytest_voicelatency.vclock import VirtualClock

MS = 1_000_000


def _table(*records: SpanRecord) -> SpanTable:
    table = SpanTable()
    for record in records:
        table.add(record, "t")
    return table


def turn(start_ms: int, end_ms: int, latency_ms: float, session: str = "s") -> SpanRecord:
    return SpanRecord("turn", "turn", session, f"turn@{start_ms}", 7, start_ms * MS,
                      end_ms * MS, (("latency_ms", latency_ms),), False)


def heard(start_ms: int, end_ms: int, session: str = "s") -> SpanRecord:
    return SpanRecord("caller.response", "caller.response", session, f"heard@{start_ms}", 0,
                      start_ms * MS, end_ms * MS, (("latency_ms", float(end_ms - start_ms)),),
                      False)


def test_a_whole_turn_span_pairs_with_the_response_heard_inside_it():
    """Turn spans start seconds before the response window: the old start-in-window rule paired
    none of them; the covering rule pairs each with the response heard inside it."""
    table = _table(turn(0, 6760, 780.0), turn(6760, 9720, 780.0), turn(9720, 15630, 780.0),
                   heard(1855, 2680), heard(11032, 11840))
    found, paired = disagreements(table, margin_ms=-1e9, checks=(RESPONSE_CHECK,))
    assert paired[RESPONSE_CHECK] == 2
    assert sorted((d.agent_ms, d.caller_ms) for d in found) == [(780.0, 808.0), (780.0, 825.0)]
    starts_in = Check("turn", "latency_ms", "caller.response", "latency_ms")
    assert disagreements(table, margin_ms=-1e9, checks=(starts_in,))[1][starts_in] == 0


def test_each_turn_span_pairs_once_and_a_response_outside_every_turn_pairs_none():
    table = _table(turn(0, 3000, 500.0), heard(1000, 1500), heard(2000, 2500), heard(5000, 5600))
    found, paired = disagreements(table, margin_ms=-1e9, checks=(RESPONSE_CHECK,))
    assert paired[RESPONSE_CHECK] == 1
    assert [d.caller_ms for d in found] == [500.0]


def test_the_largest_overlap_wins_when_two_turn_spans_cover_the_heard_instant():
    """An agent that opens its next turn before the reply was heard (a VAD split the user's
    words): the heard instant is covered by both; the turn holding more of the window wins."""
    table = _table(turn(0, 2040, 111.0), turn(2000, 4000, 222.0), heard(1000, 2030))
    found, _ = disagreements(table, margin_ms=-1e9, checks=(RESPONSE_CHECK,))
    assert [d.agent_ms for d in found] == [111.0]


def test_spans_of_another_session_never_pair():
    table = _table(turn(0, 3000, 500.0, session="other"), heard(1000, 1500))
    assert disagreements(table, margin_ms=-1e9, checks=(RESPONSE_CHECK,))[1][RESPONSE_CHECK] == 0


def test_rename_session_moves_only_the_rows_of_that_trace():
    table = SpanTable()
    trace = 0xABC << 64 | 0xDEF
    hex_id = format(trace, "032x")
    table.add(SpanRecord("stt", "asr", hex_id, "a", trace, 0, MS, (), True))
    table.add(SpanRecord("llm", "llm", hex_id, "a", trace, MS, 2 * MS, (), True))
    table.add(SpanRecord("tts", "tts", hex_id, "b", trace + 1, 0, MS, (), True))  # another trace
    assert table.rename_session(trace, hex_id, "call-1") == 2
    sessions = [table.strings[i] for i in table.columns["session"]]
    assert sessions == ["call-1", "call-1", hex_id]
    assert table.rename_session(trace, "nobody", "call-2") == 0


# --------------------------------------------------------------------------- a real Pipecat call

SCRIPT = [say("confirm_order"), answer(), say("cancel_order"),
          barge_in("wait_stop", after_ms=400), answer()]


def _virtual_call(agent):
    """One call of :data:`SCRIPT` on virtual time, with its capture."""
    with capture_spans() as cap:
        result = Caller(clock=VirtualClock(wall_clock="virtual")).run(agent, SCRIPT)
    return cap, result


def _pipecat_call():
    pytest.importorskip("pipecat", reason="pipecat-ai is not installed: pip install "
                        "'pytest-voicelatency[pipecat]'")
    from pipecat_services import build_pipeline

    from pytest_voicelatency.frameworks.pipecat import PipecatAgent

    return _virtual_call(PipecatAgent(build_pipeline))


def test_pipecat_spans_join_the_callers_session_and_their_turn_latency_matches_what_was_heard():
    cap, result = _pipecat_call()
    sessions = {s.session_id for s in cap.samples(stage="turn")}
    assert sessions == {result.session_id}  # not the trace id: the conversation root renamed it
    found, paired = disagreements(cap.table, margin_ms=-1e9, checks=(RESPONSE_CHECK,))
    answered = len(result.metrics.responses)
    assert answered == 2 and paired[RESPONSE_CHECK] == answered
    for pair in found:
        # Pipecat measures to the bot's first audio out; the caller hears it after the client's
        # jitter buffer and a frame: tens of ms later, never seconds (nor 28,800,000 s)
        assert 0 <= pair.caller_ms - pair.agent_ms < 120, pair


def test_a_time_function_bound_as_a_parameter_default_follows_the_virtual_clock(tmp_path,
                                                                               monkeypatch):
    """``def __init__(self, time_source=time.time)`` binds the real function at import: the
    scan rebinds it to a late lookup, so it reads virtual time inside a call, real time outside."""
    from pytest_voicelatency.frameworks.ontime import bound_wall_clocks

    (tmp_path / "stamping_module.py").write_text(
        "import time\n"
        "class Observer:\n"
        "    def __init__(self, time_source=time.time, *, clock=time.monotonic):\n"
        "        self.time_source, self.clock = time_source, clock\n"
        "def stamp(source=time.perf_counter):\n"
        "    return source\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import stamping_module

    assert bound_wall_clocks(["stamping_module"]) == []
    observer = stamping_module.Observer()
    assert observer.time_source is not time.time and observer.clock is not time.monotonic
    assert stamping_module.stamp() is not time.perf_counter
    monkeypatch.setattr(time, "time", lambda: 42.0)
    monkeypatch.setattr(time, "monotonic", lambda: 7.0)
    assert observer.time_source() == 42.0 and observer.clock() == 7.0


# ----------------------------------------------------------- a real LiveKit AgentSession, no room

def test_livekit_spans_join_the_callers_session_and_it_reports_thinking():
    """Offline, LiveKit's spans carry no conversation id: the adapter's ``voice.session`` span
    moves them from the trace id to the caller's session, so the response check pairs them; its
    ``thinking`` state reaches the caller's log (moments relative to thinking need it)."""
    pytest.importorskip("livekit.agents", reason="livekit-agents is not installed: pip install "
                        "'pytest-voicelatency[livekit]'")
    from livekit_fakes import build_session

    from pytest_voicelatency.frameworks.livekit import LiveKitAgent

    cap, result = _virtual_call(LiveKitAgent(build_session))
    assert {s.session_id for s in cap.samples()} == {result.session_id}
    assert not [p for p in cap.problems if "voice.session" in p]
    found, paired = disagreements(cap.table, margin_ms=-1e9, checks=(RESPONSE_CHECK,))
    assert len(result.metrics.responses) == 2 and paired[RESPONSE_CHECK] == 2
    for pair in found:  # LiveKit's e2e latency ends at its first audio; the caller hears it later
        assert 0 <= pair.caller_ms - pair.agent_ms < 120, pair
    states = [e.event.state for e in result.log.of(Received) if isinstance(e.event, AgentState)]
    assert "thinking" in states and "speaking" in states
    assert states.index("thinking") < states.index("speaking")
