"""Specification of the black-box measurements, on synthetic call logs (no sockets, no sleeps)."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_voicelatency.call.log import (
    CallEnded,
    CallLog,
    Expectation,
    FrameSent,
    Received,
    Utterance,
)
from pytest_voicelatency.call.metrics import (
    caller_spans,
    measure,
    pacing,
    speech_instant_ns,
    timeline,
)
from pytest_voicelatency.call.playout import PlayoutConfig
from pytest_voicelatency.call.protocol import AgentAudio, AgentClear, AgentState, AudioFormat

MS = 1_000_000
N = 320  # samples per 20 ms frame


class StillClock:
    """A clock that only moves when told (logs built by hand need no time to pass).

    It stands for the real clock of the call the log records (``virtual`` says otherwise).
    """

    def __init__(self, virtual: bool = False) -> None:
        self.t = 0
        self.virtual = virtual

    def now_ns(self) -> int:
        return self.t

    def span_time_ns(self, instant_ns: int) -> int:
        return instant_ns

    async def sleep_until(self, deadline_ns: int) -> int:  # pragma: no cover - never awaited
        self.t = max(self.t, deadline_ns)
        return self.t

    @property
    def is_virtual(self) -> bool:
        return self.virtual


def pcm(ms: float, level: float = 0.5, lead_ms: float = 0.0) -> AgentAudio:
    lead = np.zeros(round(lead_ms * 16), np.int16)
    body = np.full(round(ms * 16), int(level * 32767), np.int16)
    return AgentAudio(np.concatenate([lead, body]).astype("<i2").tobytes(), 16_000)


def call(frames: int = 200, late_ms: dict[int, float] | None = None, buffer_ms: float = 40.0,
         delay_ms: float = 0.0, virtual: bool = False) -> CallLog:
    """A log with ``frames`` inbound frames sent on time (or late by ``late_ms[index]``)."""
    log = CallLog("s", AudioFormat(), PlayoutConfig(buffer_ms=buffer_ms, delay_ms=delay_ms),
                  StillClock(virtual), origin_ns=0)
    for i in range(frames):
        due = (i + 1) * 20 * MS
        late = round((late_ms or {}).get(i, 0.0) * MS)
        log.append(FrameSent(i, due, due + late, due + late))
    return log


def say(log: CallLog, turn: str, start: int, onset: int, offset: int, role: str = "say",
        kind: str = "utterance") -> None:
    log.append(Utterance(turn, role, "clip", start, offset + 100, onset, offset,  # type: ignore[arg-type]
                         kind=kind))


def test_response_runs_from_the_actual_end_of_speech_to_the_first_audible_sample():
    """The user's last sample is placed at its frame's *actual* send (late by 3 ms here)."""
    log = call(late_ms={49: 3.0})
    say(log, "1", 0, 1600, 50 * N)                    # speech ends with frame 49 (sent 1003 ms)
    log.append(Expectation("response", "1", 5000, 0))
    log.append(Received(1500 * MS, pcm(500, lead_ms=100)))
    log.append(CallEnded(4000 * MS))
    [m] = measure(log).responses
    assert m.outcome == "ok"
    assert m.start_ns == 1003 * MS
    assert m.value_ms == pytest.approx(1500 + 40 + 100 - 1003)
    assert m.arrival_ms == pytest.approx(1500 - 1003)  # the naive number leading silence fools


def test_an_offset_on_a_frame_boundary_takes_the_last_spoken_frame_not_the_next_one():
    """One past the last sample of frame 9 is frame 9's send instant, whatever frame 10 did."""
    log = call(late_ms={10: 7.0})
    assert speech_instant_ns(log, 10 * N, end=True) == 200 * MS
    assert speech_instant_ns(log, 10 * N) == 207 * MS      # as an onset it is frame 10's first
    assert speech_instant_ns(log, 500 * N) is None         # never sent


def test_no_answer_within_the_bound_is_missed_not_zero():
    log = call()
    say(log, "1", 0, 1600, 50 * N)
    log.append(Expectation("response", "1", 1000, 0))
    log.append(CallEnded(4000 * MS))
    [m] = measure(log).responses
    assert (m.outcome, m.value_ms) == ("missed", 1000)


def test_a_call_ending_before_the_bound_censors_the_response_with_its_lower_bound():
    log = call()
    say(log, "1", 0, 1600, 50 * N)
    log.append(Expectation("response", "1", 5000, 0))
    log.append(CallEnded(1600 * MS))
    [m] = measure(log).responses
    assert (m.outcome, m.value_ms) == ("censored", 600)


def barge_log(*, clear_at_ms: float | None, delay_ms: float = 0.0, end_ms: float = 4000) -> CallLog:
    """The agent sends 2 s of reply at 1000 ms; the user interrupts with onset at 1500 ms."""
    log = call(delay_ms=delay_ms)
    say(log, "1", 0, 1600, 40 * N)
    log.append(Received(1000 * MS, pcm(2000)))
    say(log, "2", 70 * N, 75 * N, 90 * N, role="barge_in")   # onset: sample 75*N = 1500 ms
    log.append(Expectation("barge_in", "2", 1000, 0))
    if clear_at_ms is not None:
        log.append(Received(round(clear_at_ms * MS), AgentClear()))
    log.append(CallEnded(round(end_ms * MS)))
    return log


def test_barge_in_with_a_clear_ends_when_the_clear_reaches_the_client():
    """Sent at 1600 ms, the clear needs the 20 ms network delay: that is the whole tail."""
    [m] = measure(barge_log(clear_at_ms=1600, delay_ms=20)).barge_ins
    assert (m.outcome, m.start_ns) == ("ok", 1500 * MS)
    assert m.value_ms == pytest.approx(1600 + 20 - 1500)
    assert m.tail_ms == pytest.approx(20.0)


def test_queued_audio_playing_past_the_bound_is_a_missed_barge_in_never_zero():
    """The whole reply was sent at once and never cleared: audible until 3040 ms > 1500 + 1000."""
    [m] = measure(barge_log(clear_at_ms=None)).barge_ins
    assert (m.outcome, m.value_ms) == ("missed", 1000)


def test_barge_in_tail_is_the_time_heard_after_the_agent_stopped_sending():
    log = call()
    say(log, "1", 0, 1600, 40 * N)
    for k in range(30):                                      # paced 20 ms frames from 1000 ms
        log.append(Received((1000 + 20 * k) * MS, pcm(20)))  # last sent at 1580 ms
    log.append(Received(1580 * MS, AgentState("interrupted")))  # ...because of the barge-in
    say(log, "2", 70 * N, 75 * N, 90 * N, role="barge_in")
    log.append(Expectation("barge_in", "2", 1000, 0))
    log.append(CallEnded(4000 * MS))
    [m] = measure(log).barge_ins
    assert m.outcome == "ok"
    assert m.value_ms == pytest.approx(1000 + 40 + 600 - 1500)
    assert m.tail_ms == pytest.approx(1640 - 1580)


@pytest.mark.parametrize("state", [None, "speaking"])
def test_audio_that_runs_out_with_no_sign_of_a_stop_is_not_interrupted_never_a_latency(state):
    """The same stream with no clear and no state after the onset: the reply ended by itself."""
    log = call()
    say(log, "1", 0, 1600, 40 * N)
    for k in range(30):
        log.append(Received((1000 + 20 * k) * MS, pcm(20)))
    if state is not None:
        log.append(Received(1580 * MS, AgentState(state)))  # "speaking" is no sign of a stop
    say(log, "2", 70 * N, 75 * N, 90 * N, role="barge_in")
    log.append(Expectation("barge_in", "2", 1000, 0))
    log.append(CallEnded(4000 * MS))
    metrics = measure(log)
    [m] = metrics.barge_ins
    assert (m.outcome, m.value_ms, m.end_ns) == ("not_interrupted", 1000, 1640 * MS)
    assert "did not stop for the barge-in" in metrics.notes[-1]
    assert "(outcome not_interrupted: no barge-in latency" in metrics.notes[-1]
    assert not [s for s in caller_spans(metrics) if s.name == "caller.barge_in"]  # no latency
    [decision] = metrics.interruptions
    assert decision.missed  # words the agent talked over, not a stop


def test_a_call_ending_while_the_agent_still_talks_censors_the_barge_in():
    [m] = measure(barge_log(clear_at_ms=None, end_ms=1800)).barge_ins
    assert (m.outcome, m.value_ms) == ("censored", 300)


def test_pacing_reports_p50_p99_max_and_marks_the_call_unreliable_above_the_limit():
    late = {i: 12.0 for i in range(0, 200, 50)}  # 4 frames of 200 are 12 ms late
    report = pacing(call(late_ms=late).frames, limit_ms=5.0)
    assert (report.lateness_p50_ms, report.lateness_max_ms) == (0.0, 12.0)
    assert report.lateness_p99_ms == 12.0 and not report.reliable
    assert pacing(call().frames, limit_ms=5.0).reliable


def test_what_cannot_be_measured_is_a_note_never_a_number():
    log = call()
    log.append(Expectation("response", "7", 5000, 0))
    log.append(CallEnded(4000 * MS))
    metrics = measure(log)
    assert metrics.responses == () and "turn 7" in metrics.notes[0]


def test_malformed_agent_events_are_skipped_when_replaying_and_states_ignored():
    log = call()
    say(log, "1", 0, 1600, 50 * N)
    log.append(Expectation("response", "1", 5000, 0))
    log.append(Received(1100 * MS, AgentAudio(b"\x00", 16_000)))  # odd byte count
    log.append(Received(1150 * MS, AgentState("speaking")))
    log.append(Received(1200 * MS, pcm(100)))
    log.append(CallEnded(4000 * MS))
    [m] = measure(log).responses
    assert m.end_ns == 1240 * MS


def test_caller_spans_say_how_each_number_was_obtained():
    """Missed keeps its bound and says so; a call over the pacing limit marks every span."""
    log = call(late_ms={i: 9.0 for i in range(0, 200, 20)})
    say(log, "1", 0, 1600, 50 * N)
    log.append(Expectation("response", "1", 1000, 0))
    log.append(CallEnded(4000 * MS))
    spans = caller_spans(measure(log, pacing_limit_ms=5.0))
    assert [s.name for s in spans] == ["caller.response", "caller.playout", "caller.pacing"]
    response = spans[0].attributes
    assert (response["audio.outcome"], response["audio.latency_ms"]) == ("missed", 1000)
    assert response["audio.source"] == "caller" and response["audio.turn_id"] == "1"
    assert all(s.attributes["audio.reliable"] is False for s in spans)
    assert spans[2].attributes["audio.lateness_p99_ms"] == 9.0


def test_an_interruption_while_the_agent_is_quiet_is_a_note_not_a_zero_barge_in():
    log = call()
    say(log, "1", 0, 1600, 40 * N)
    log.append(Received(1000 * MS, pcm(200)))                 # audible 1040..1240 ms
    say(log, "2", 70 * N, 75 * N, 90 * N, role="barge_in")    # onset at 1500 ms: too late
    log.append(Expectation("barge_in", "2", 1000, 0))
    log.append(CallEnded(4000 * MS))
    metrics = measure(log)
    assert metrics.barge_ins == () and "nothing to barge in on" in metrics.notes[0]


def test_a_virtual_call_is_never_unreliable_and_its_spans_say_virtual():
    """Pacing lateness on a virtual clock is the agent's doing, not the machine's: no flag."""
    log = call(late_ms={i: 9.0 for i in range(0, 200, 20)}, virtual=True)
    say(log, "1", 0, 1600, 50 * N)
    log.append(Expectation("response", "1", 1000, 0))
    log.append(CallEnded(4000 * MS))
    metrics = measure(log, pacing_limit_ms=5.0)
    assert metrics.clock == "virtual" and metrics.reliable and not metrics.pacing.reliable
    spans = caller_spans(metrics)
    assert {s.attributes["audio.clock"] for s in spans} == {"virtual"}
    assert all(s.attributes["audio.reliable"] is True for s in spans)
    real = caller_spans(measure(call(), pacing_limit_ms=5.0))
    assert {s.attributes["audio.clock"] for s in real} == {"real"}


def _over_the_reply(kind: str, clear_ms: float | None) -> CallLog:
    """The agent talks from 1040 ms for 1 s; a ``kind`` sound starts at 1300 ms over it."""
    log = call()
    say(log, "1", 0, 1600, 40 * N)
    log.append(Received(1000 * MS, pcm(1000)))
    say(log, "2", 65 * N - 100, 65 * N, 80 * N, role="barge_in", kind=kind)   # onset 1300 ms
    log.append(Expectation("barge_in", "2", 500, 1300 * MS))
    if clear_ms is not None:
        log.append(Received(round(clear_ms * MS), AgentClear()))
    log.append(CallEnded(4000 * MS))
    return log


@pytest.mark.parametrize("kind, clear_ms, stage, value", [
    ("interruption", 1400, "barge_in.missed", 0.0),   # words, and it stopped: right
    ("interruption", None, "barge_in.missed", 1.0),   # words talked over: a missed interruption
    ("backchannel", None, "barge_in.false", 0.0),     # "mm-hm" and it kept talking: right
    ("cough", 1400, "barge_in.false", 1.0),           # stopped for a cough: a false interruption
])
def test_each_sound_over_the_agent_is_judged_as_a_stop_decision(kind, clear_ms, stage, value):
    metrics = measure(_over_the_reply(kind, clear_ms))
    [decision] = metrics.interruptions
    assert decision.intended == (kind == "interruption")
    [span] = [s for s in caller_spans(metrics) if s.name.startswith("barge_in.")]
    assert span.name == stage and span.attributes[f"audio.{stage.split('.')[1]}"] == value
    assert (span.end_ns - span.start_ns) / MS == value    # the duration is the value too
    # only words are a barge-in with a latency; a cough or a backchannel is not
    assert len(metrics.barge_ins) == (1 if kind == "interruption" else 0)


def test_a_decision_still_open_when_the_call_ends_is_not_judged():
    log = _over_the_reply("backchannel", None)
    metrics = measure(log)
    assert len(metrics.interruptions) == 1
    short = call()
    say(short, "1", 0, 1600, 40 * N)
    short.append(Received(1000 * MS, pcm(1000)))
    say(short, "2", 65 * N - 100, 65 * N, 80 * N, role="barge_in", kind="cough")
    short.append(Expectation("barge_in", "2", 500, 1300 * MS))
    short.append(CallEnded(1500 * MS))                         # 200 ms into a 500 ms window
    assert measure(short).interruptions == ()


def test_the_timeline_tells_who_spoke_what_the_agent_did_and_what_was_heard():
    text = timeline(_over_the_reply("interruption", 1400))
    lines = text.splitlines()
    assert lines[0].endswith("user says 'clip' (utterance): speech starts")
    assert "1000.000 ms  agent sends audio: 1 chunk until 1000 ms" in text
    assert "1040.000 ms  listener starts hearing the agent" in text
    assert ("1300.000 ms  user talks over the agent with 'clip' (interruption): speech starts"
            in text)
    assert "1400.000 ms  agent clears the client's buffer (barge_in)" in text
    assert "1400.000 ms  listener stops hearing the agent" in text
    assert lines[-1].endswith("call ends (done)")
    near = timeline(_over_the_reply("cough", None), around_ns=1300 * MS, rows=3)
    assert len(near.splitlines()) == 3
