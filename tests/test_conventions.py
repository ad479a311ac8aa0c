"""Specification of framework conventions: framework spans read as voice stages, units in ms.

The spans here are built with the OpenTelemetry SDK using the names, scopes and attributes the
frameworks use (read from Pipecat 1.14 / LiveKit Agents 1.8 source); the real-framework runs are
in ``test_pipecat.py`` and ``test_livekit.py``.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace

from pytest_voicelatency import LatencyAssertionError, assert_p95, voice_spans
from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.spans.capture import capture_spans
from pytest_voicelatency.spans.conventions import (
    DEFAULT_CONVENTIONS,
    NATIVE_ONLY,
    conventions_from_ini,
    unread_summary,
)

NS = 1_000_000


def _pipecat_turn(tracer, t0_ms: float, *, ttfb: dict[str, float | None], number: int = 1,
                  interrupted: bool = False, stt_before_turn: bool = False):
    """A Pipecat-shaped turn: turn -> stt, llm, tts with metrics.ttfb in seconds."""
    turn_start = int((t0_ms + (20 if stt_before_turn else 0)) * NS)
    turn = tracer.start_span("turn", start_time=turn_start)
    turn.set_attribute("turn.number", number)
    ctx = trace.set_span_in_context(turn)
    clock = t0_ms
    for name, length in (("stt", 100), ("llm", 200), ("tts", 300)):
        span = tracer.start_span(name, context=ctx, start_time=int(clock * NS))
        span.set_attribute("gen_ai.operation.name", name)
        if ttfb.get(name) is not None:
            span.set_attribute("metrics.ttfb", ttfb[name])
        if name == "tts" and interrupted:
            span.set_attribute("tts.interrupted", True)
        span.end(end_time=int((clock + length) * NS))
        clock += length + 10  # 10 ms gaps between the bars
    turn.set_attribute("turn.user_bot_latency_seconds", 0.45)
    turn.set_attribute("turn.was_interrupted", interrupted)
    return turn, int(clock * NS)


def test_pipecat_spans_become_stages_with_ttfb_in_ms_and_gaps():
    turn_tracer = trace.get_tracer("pipecat.turn")
    with capture_spans() as cap:
        conversation = turn_tracer.start_span("conversation")
        conversation.set_attribute("conversation.id", "c1")
        with trace.use_span(conversation):
            turn, end = _pipecat_turn(turn_tracer, 0,
                                      ttfb={"stt": 0.05, "llm": 0.12, "tts": 0.2},
                                      interrupted=True)
            turn.end(end_time=end)
        conversation.end()
    assert cap.select("asr").values.tolist() == pytest.approx([50.0])
    assert cap.select("llm").values.tolist() == pytest.approx([120.0])
    assert cap.select("tts").values.tolist() == pytest.approx([200.0])
    assert cap.select("tts", "cancelled").n == 1
    assert cap.select("turn", "latency_ms").values.tolist() == pytest.approx([450.0])
    assert cap.select("turn", "interrupted").n == 1
    assert cap.select("gap.asr_to_llm").values.tolist() == pytest.approx([10.0])
    assert cap.select("gap.llm_to_tts").values.tolist() == pytest.approx([10.0])
    sample = cap.select("llm").worst(1)[0]
    assert len(sample.turn_id) == 16  # the turn span's id
    assert sample.session_id == "c1"  # the conversation root renamed its trace's session
    assert not cap.problems


def test_missing_ttfb_keeps_duration_and_never_invents_zero():
    tracer = trace.get_tracer("pipecat")
    with capture_spans() as cap:
        turn, end = _pipecat_turn(tracer, 0, ttfb={"stt": None, "llm": None, "tts": 0.0})
        turn.end(end_time=end)
    assert "first_byte_ms" not in cap.sample_set().metrics_by_stage()["llm"]
    assert cap.select("llm").metric == "duration_ms"
    assert cap.select("llm").values.tolist() == pytest.approx([200.0])
    assert cap.select("tts").values.tolist() == [0.0]  # a real 0 s TTFB stays 0
    sample = cap.select("tts").worst(1)[0]
    assert sample.session_id == sample.trace_id  # no conversation root: the trace id


def test_odd_attribute_values_are_dropped_with_a_problem_not_a_crash():
    tracer = trace.get_tracer("pipecat")
    with capture_spans() as cap:
        span = tracer.start_span("llm", start_time=0)
        span.set_attribute("metrics.ttfb", "fast")
        span.end(end_time=0)  # zero duration
        span = tracer.start_span("tts", start_time=0)
        span.set_attribute("metrics.ttfb", -1.0)
        span.end(end_time=5 * NS)
    assert cap.select("llm").values.tolist() == [0.0]
    assert cap.select("tts").metric == "duration_ms"
    assert any("metrics.ttfb is str 'fast'" in p for p in cap.problems)
    assert any("not a non-negative number" in p and "tts" in p for p in cap.problems)


def test_a_child_starting_before_its_turn_and_an_unfinished_turn_still_give_gaps():
    """Pipecat's stt can start before its turn; a turn never ended at pipeline end is lost,
    but its children still join one another through the parent span id."""
    tracer = trace.get_tracer("pipecat")
    with capture_spans() as cap:
        _turn, _end = _pipecat_turn(tracer, 0, ttfb={"stt": 0.01, "llm": 0.02, "tts": 0.03},
                                    stt_before_turn=True)
        # _turn is never ended
    assert cap.stages() == ["asr", "gap.asr_to_llm", "gap.llm_to_tts", "llm", "tts"]
    assert cap.select("gap.asr_to_llm").values.tolist() == pytest.approx([10.0])


def test_an_unknown_framework_version_is_a_note_not_a_crash():
    tracer = trace.get_tracer("pipecat", "2.3.0")
    with capture_spans() as cap:
        span = tracer.start_span("llm", start_time=0)
        span.set_attribute("metrics.ttfb", 0.1)
        span.end(end_time=200 * NS)
    assert cap.select("llm").values.tolist() == pytest.approx([100.0])
    assert any("scope version 2.3.0 is not pipecat 1.x" in p for p in cap.problems)


def test_a_span_named_llm_from_another_library_is_not_read():
    """Detection needs the framework's scope or one of its attributes, not just the name."""
    tracer = trace.get_tracer("some.http.lib")
    with capture_spans() as cap:
        tracer.start_span("llm").end()
    assert len(cap) == 0 and cap.unread is not None


def test_genai_time_to_first_chunk_in_seconds():
    tracer = trace.get_tracer("my.genai.client")
    with capture_spans() as cap:
        span = tracer.start_span("chat gpt-x", start_time=0)
        span.set_attribute("gen_ai.response.time_to_first_chunk", 0.25)
        span.set_attribute("gen_ai.conversation.id", "conv-9")
        span.end(end_time=900 * NS)
    assert cap.select("llm").values.tolist() == pytest.approx([250.0])
    assert cap.select("llm").worst(1)[0].session_id == "conv-9"


def test_native_spans_win_and_conventions_can_be_switched_off():
    tracer = trace.get_tracer("pipecat")
    with capture_spans(conventions=NATIVE_ONLY) as cap:
        span = tracer.start_span("llm")
        span.set_attribute("metrics.ttfb", 0.1)
        span.end()
        with tracer.start_as_current_span("audio.asr") as native:
            native.set_attribute("audio.first_byte_ms", 5.0)
    assert cap.stages() == ["asr"]
    assert cap.unread is not None and cap.unread.spans == (("llm", "pipecat", 1),)


def test_ini_parsing_builtins_auto_and_mappings():
    assert conventions_from_ini([]) == DEFAULT_CONVENTIONS
    assert conventions_from_ini(None) == DEFAULT_CONVENTIONS
    assert conventions_from_ini(["auto"]).names == ("pipecat", "livekit", "genai")
    assert conventions_from_ini(["native"]).names == ()
    assert conventions_from_ini("livekit\n# a comment\n\npipecat").names == ("livekit", "pipecat")
    c = conventions_from_ini(["synth -> stt.first_byte_ms=ttfb_s*1000 cancelled=stopped",
                              "reply -> turn latency_ms=e2e"])
    assert c.names == ("pipecat", "livekit", "genai")  # mappings alone keep detection on
    synth, reply = c.custom
    assert (synth.stage, synth.bar, [(m.metric, m.attribute, m.scale) for m in synth.metrics]) == (
        "asr", True, [("first_byte_ms", "ttfb_s", 1000.0), ("cancelled", "stopped", 1.0)])
    assert (reply.stage, reply.bar, reply.turn) == ("turn", False, "self")


@pytest.mark.parametrize("line, fragment", [
    ("pipecatt", "not a known convention"),
    ("x -> ", "needs a span name and a stage"),
    ("x -> tts.first_byte_ms", "stage name"),
    ("x -> tts first_byte_ms=a*0", "positive"),
    ("x -> tts first_byte_ms", "metric=attribute"),
])
def test_ini_errors_name_the_line_and_the_form(line, fragment):
    with pytest.raises(VoiceLatencyUsageError, match=fragment) as info:
        conventions_from_ini([line])
    assert "voice_latency_conventions line" in str(info.value)


def test_an_ini_mapping_reads_a_custom_framework():
    tracer = trace.get_tracer("acme.voice")
    conventions = conventions_from_ini(["synth -> tts.first_byte_ms=ttfb_s*1000"])
    with capture_spans(conventions=conventions) as cap:
        parent = tracer.start_span("reply")
        ctx = trace.set_span_in_context(parent)
        span = tracer.start_span("synth", context=ctx)
        span.set_attribute("ttfb_s", 0.08)
        span.end()
        parent.end()
    assert cap.select("tts").values.tolist() == pytest.approx([80.0])


def test_unread_spans_are_summarised_with_the_sentence_to_print():
    tracer = trace.get_tracer("pipecat")
    with capture_spans(conventions=NATIVE_ONLY) as cap:
        for name in ("conversation", "turn", "stt", "llm", "tts"):
            tracer.start_span(name).end()
    summary = cap.unread
    assert summary is not None and summary.total == 5
    assert cap.unread_sentence() == (
        "5 spans seen but none read as voice stages: conversation, llm, stt, tts, turn "
        "(scope pipecat) — the 'pipecat' convention reads them "
        "(voice_latency_conventions = pipecat)")
    other = trace.get_tracer("acme.voice")
    with capture_spans() as cap2:
        other.start_span("synthesize").end()
        other.start_span("synthesize").end()
    assert cap2.unread_sentence() == (
        "2 spans seen but none read as voice stages: synthesize (scope acme.voice) — no built-in "
        "convention reads them: map them in the ini (voice_latency_conventions = synthesize -> "
        "llm.first_byte_ms=<attribute>*1000) or set audio.stage on them (docs/conventions.md)")


def test_no_sentence_when_voice_stages_were_read():
    tracer = trace.get_tracer("acme.voice")
    with capture_spans() as cap:
        tracer.start_span("http.request").end()
        with tracer.start_as_current_span("audio.asr") as span:
            span.set_attribute("audio.first_byte_ms", 1.0)
    assert cap.unread is not None and cap.unread_sentence() is None


def test_unread_spans_travel_in_the_xdist_payload():
    from pytest_voicelatency.spans.rows import SpanTable

    table = SpanTable()
    table.note_unread("stt", "pipecat", 3)
    merged = SpanTable()
    merged.extend_payload(table.to_payload(), test="t")
    merged.extend_payload(table.to_payload(), test="u")
    assert merged.unread == {("stt", "pipecat"): 6} and merged.unread_count == 6
    assert unread_summary(merged.unread) is not None


def test_an_assertion_on_spans_it_could_not_read_says_which_and_who_would_read_them():
    """A capture that saw spans but read none as voice stages says so in the failure, with the
    span names, their scope and the ini line that would read them."""
    with voice_spans(conventions=NATIVE_ONLY) as cap:
        tracer = trace.get_tracer("pipecat")
        with tracer.start_as_current_span("llm", attributes={"metrics.ttfb": 0.25}):
            pass
    with pytest.raises(LatencyAssertionError) as failure:
        assert_p95(stage="llm", lt=300, capture=cap)
    text = str(failure.value)
    assert "1 span seen but none read as voice stages: llm (scope pipecat)" in text
    assert "voice_latency_conventions = pipecat" in text
