"""Specification of stage_span / handoff_span / turn_span against real OpenTelemetry SDK spans."""

from __future__ import annotations

import asyncio
import time

import pytest
from opentelemetry.trace import StatusCode

from pytest_voicelatency import VoiceLatencyUsageError, handoff_span, stage_span, turn_span
from pytest_voicelatency.vclock import VirtualClock


def only(raw_spans, name):
    spans = [s for s in raw_spans.get_finished_spans() if s.name == name]
    assert len(spans) == 1, [s.name for s in raw_spans.get_finished_spans()]
    return spans[0]


def test_stage_span_carries_the_seed_conventions(raw_spans):
    """audio.<stage> with stage, session, turn, first_byte_ms and total_ms."""
    with stage_span("llm", "sess_8f21c0", "t3") as first_byte:
        first_byte()
    span = only(raw_spans, "audio.llm")
    a = span.attributes
    assert (a["audio.stage"], a["audio.session_id"], a["audio.turn_id"]) == \
        ("llm", "sess_8f21c0", "t3")
    assert 0 <= a["audio.first_byte_ms"] <= a["audio.total_ms"]


def test_first_byte_is_recorded_once(raw_spans):
    """Later calls inside the streaming loop do nothing."""
    clock = FakeClock()
    with stage_span("tts", "s", 1, clock=clock) as first_byte:
        clock.t += 40_000_000
        first_byte()
        clock.t += 60_000_000
        first_byte()
    a = only(raw_spans, "audio.tts").attributes
    assert a["audio.first_byte_ms"] == 40.0 and a["audio.total_ms"] == 100.0


def test_a_stage_that_produced_nothing_gets_minus_one(raw_spans):
    """Never calling first_byte() sets audio.first_byte_ms = -1."""
    with stage_span("asr", "s", 1):
        pass
    assert only(raw_spans, "audio.asr").attributes["audio.first_byte_ms"] == -1


def test_an_exception_is_recorded_and_re_raised(raw_spans):
    """record_exception + audio.error=True + ERROR status, then the exception propagates."""
    with pytest.raises(RuntimeError, match="boom"):
        with stage_span("llm", "s", 1):
            raise RuntimeError("boom")
    span = only(raw_spans, "audio.llm")
    assert span.attributes["audio.error"] is True and span.status.status_code == StatusCode.ERROR
    assert span.events[0].name == "exception" and "audio.total_ms" in span.attributes


def test_a_cancelled_stage_is_marked_cancelled_not_errored(raw_spans):
    """Barge-in cancels work: audio.cancelled=True, no error."""
    async def main():
        async def llm():
            with stage_span("llm", "s", 1):
                await asyncio.sleep(10)
        task = asyncio.create_task(llm())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(main())
    a = only(raw_spans, "audio.llm").attributes
    assert a["audio.cancelled"] is True and "audio.error" not in a


def test_works_in_async_code_with_real_awaits(raw_spans):
    """The seed's async LLM example: first_byte() inside an async for."""
    async def tokens():
        for t in ("hel", "lo"):
            await asyncio.sleep(0.001)
            yield t

    async def run_llm_stage(session_id, turn_id):
        chunks = []
        with stage_span("llm", session_id, turn_id) as first_byte:
            async for token in tokens():
                first_byte()
                chunks.append(token)
        return "".join(chunks)
    assert asyncio.run(run_llm_stage("s", "t")) == "hello"
    assert only(raw_spans, "audio.llm").attributes["audio.first_byte_ms"] >= 0.5


def test_handoff_span_names_and_stage(raw_spans):
    """voice.handoff.<from>_to_<to> with stage handoff.<from>_to_<to>, and no first byte."""
    with handoff_span("vad", "asr", "s", 1):
        pass
    a = only(raw_spans, "voice.handoff.vad_to_asr").attributes
    assert a["audio.stage"] == "handoff.vad_to_asr" and "audio.first_byte_ms" not in a


def test_stage_spans_nest_under_a_turn_span(raw_spans):
    """The stage span is current inside; turn_span is its parent."""
    with turn_span("s", 1):
        with stage_span("asr", "s", 1):
            pass
    turn, asr = only(raw_spans, "voice.turn"), only(raw_spans, "audio.asr")
    assert asr.parent.span_id == turn.context.span_id


def test_extra_attributes_and_marks(raw_spans):
    """Bare attribute keys get the audio. prefix; mark() stores elapsed ms."""
    clock = FakeClock()
    extra = {"trigger": "cough", "x.y": 1}
    with stage_span("barge_in", "s", 1, clock=clock, attributes=extra) as t:
        clock.t += 18_000_000
        t.mark("vad_detect_ms")
        t.set("frames", 3)
    a = only(raw_spans, "audio.barge_in").attributes
    assert a["audio.trigger"] == "cough" and a["x.y"] == 1
    assert a["audio.vad_detect_ms"] == 18.0 and a["audio.frames"] == 3


def test_span_times_come_from_the_injected_clock(raw_spans):
    """Span duration equals the clock's elapsed time exactly (one time base)."""
    clock = FakeClock()
    with stage_span("asr", "s", 1, clock=clock):
        clock.t += 123_456_789
    span = only(raw_spans, "audio.asr")
    assert span.end_time - span.start_time == 123_456_789


@pytest.mark.parametrize(("args", "message"), [
    (("", "s", 1), "stage must be a non-empty string"),
    (("a b", "s", 1), "stage must be a non-empty string"),
    (("asr", None, 1), "session_id must be"),
    (("asr", "s", None), "turn_id must be"),
    (("asr", "s", True), "turn_id must be"),
])
def test_bad_arguments_name_the_argument(args, message):
    """Each bad argument is a usage error naming it."""
    with pytest.raises(VoiceLatencyUsageError, match=message):
        with stage_span(*args):
            pass


def test_on_a_virtual_loop_spans_take_its_clock_without_being_told(raw_spans):
    """No clock= passed: a span opened on a VirtualEventLoop is stamped in virtual time, so a
    cancelled stage 3 virtual seconds in lasts exactly 3 s and carries audio.cancelled."""
    clock = VirtualClock()

    async def main():
        async def tts():
            with stage_span("tts", "s", 1) as first_chunk:
                await asyncio.sleep(1.25)
                first_chunk()
                await asyncio.sleep(60)

        task = asyncio.create_task(tts())
        await clock.sleep_until(clock.now_ns() + 3_000_000_000)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    clock.run(main())
    span = only(raw_spans, "audio.tts")
    a = span.attributes
    assert a["audio.first_byte_ms"] == 1250.0 and a["audio.total_ms"] == 3000.0
    assert a["audio.cancelled"] is True
    assert span.end_time - span.start_time == 3_000_000_000
    assert span.start_time == clock.epoch_ns             # virtual span time starts at the epoch


def test_outside_a_virtual_loop_spans_keep_the_real_clock(raw_spans):
    with stage_span("asr", "s", 1):
        pass
    assert abs(only(raw_spans, "audio.asr").start_time - time.time_ns()) < 60 * 1_000_000_000


class FakeClock:
    """A hand-driven clock: tests advance ``t`` to make durations exact."""

    is_virtual = True

    def __init__(self) -> None:
        self.t = 1_000_000_000

    def now_ns(self) -> int:
        return self.t

    def span_time_ns(self, instant_ns: int) -> int:
        return 1_700_000_000_000_000_000 + instant_ns

    async def sleep_until(self, deadline_ns: int) -> int:
        self.t = max(self.t, deadline_ns)
        return self.t
