"""LiveKit Agents 1.x spans read by the ``livekit`` convention, barge-in derived from two spans.

NOTE: these spans are *synthetic*: built with the OpenTelemetry SDK under LiveKit's scope name
(``livekit-agents``) with the span names, parenting and attributes read from the installed
``livekit-agents`` 1.8 source (``telemetry/trace_types.py``, ``voice/agent_session.py``,
``voice/agent_activity.py``, ``voice/generation.py``). A run of a real ``AgentSession`` offline
(fake STT/LLM/TTS/VAD, no room) is not here yet. When ``livekit-agents`` is installed, the test
below checks that the attribute names we rely on still exist in it.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace

from pytest_voicelatency.gate.assertions import assert_p95
from pytest_voicelatency.spans.capture import capture_spans

NS = 1_000_000
SCOPE = "livekit-agents"


def _livekit_turn(tracer, session_ctx, t0: float, *, ttft: float | None, ttfb: float,
                  barge_after_ms: float | None, stop_ms: float = 120.0) -> None:
    """One user turn and one agent turn as LiveKit 1.8 shapes them (times in ms)."""
    user_turn = tracer.start_span("user_turn", context=session_ctx, start_time=int(t0 * NS))
    user_turn.set_attribute("lk.transcription_delay", 0.18)
    user_turn.set_attribute("lk.end_of_turn_delay", 0.42)
    user_turn.end(end_time=int((t0 + 900) * NS))
    agent_turn = tracer.start_span("agent_turn", context=session_ctx,
                                   start_time=int((t0 + 1000) * NS))
    turn_ctx = trace.set_span_in_context(agent_turn)
    llm = tracer.start_span("llm_node", context=turn_ctx, start_time=int((t0 + 1000) * NS))
    if ttft is not None:
        llm.set_attribute("lk.response.ttft", ttft)
    llm.end(end_time=int((t0 + 1400) * NS))
    tts = tracer.start_span("tts_node", context=turn_ctx, start_time=int((t0 + 1450) * NS))
    tts.set_attribute("lk.response.ttfb", ttfb)
    tts.set_attribute("lk.tts.streaming", True)
    speaking_start = t0 + 1450 + ttfb * 1000
    speaking = tracer.start_span("agent_speaking", context=turn_ctx,
                                 start_time=int(speaking_start * NS))
    if barge_after_ms is None:
        speaking_end = speaking_start + 2000
    else:
        onset = speaking_start + barge_after_ms
        user = tracer.start_span("user_speaking", context=session_ctx, start_time=int(onset * NS))
        speaking_end = onset + stop_ms
        user.end(end_time=int((onset + 600) * NS))
    speaking.end(end_time=int(speaking_end * NS))
    tts.end(end_time=int(speaking_end * NS))
    agent_turn.set_attribute("lk.e2e_latency", 0.71)
    agent_turn.set_attribute("lk.interrupted", barge_after_ms is not None)
    agent_turn.end(end_time=int(speaking_end * NS))


def test_livekit_spans_give_stages_in_ms_and_barge_in_from_two_spans():
    tracer = trace.get_tracer(SCOPE)
    with capture_spans() as cap:
        session = tracer.start_span("agent_session")
        ctx = trace.set_span_in_context(session)
        for turn in range(20):
            _livekit_turn(tracer, ctx, turn * 10_000.0, ttft=0.25, ttfb=0.09,
                          barge_after_ms=500 if turn % 2 else None, stop_ms=100 + turn)
        session.end()
    assert cap.select("llm").values.tolist() == pytest.approx([250.0] * 20)
    assert cap.select("tts").values.tolist() == pytest.approx([90.0] * 20)
    assert cap.select("asr").metric == "transcription_delay_ms"  # user_turn has no first partial
    assert cap.select("asr").values.tolist() == pytest.approx([180.0] * 20)
    assert cap.select("asr", "end_of_turn_delay_ms").values[0] == pytest.approx(420.0)
    assert cap.select("turn", "latency_ms").values[0] == pytest.approx(710.0)
    assert cap.select("turn", "interrupted").n == 10
    assert cap.select("gap.llm_to_tts").values.tolist() == pytest.approx([50.0] * 20)
    barge = cap.select("barge_in")
    assert barge.metric == "silence_ms"
    assert sorted(barge.values.tolist()) == pytest.approx([100.0 + t for t in range(1, 20, 2)])
    assert_p95(stage="barge_in", lt=150, capture=cap)
    assert_p95(stage="llm", lt=300, capture=cap)
    assert not cap.problems


def test_no_ttft_attribute_leaves_first_byte_absent():
    tracer = trace.get_tracer(SCOPE)
    with capture_spans() as cap:
        session = tracer.start_span("agent_session")
        _livekit_turn(tracer, trace.set_span_in_context(session), 0, ttft=None, ttfb=0.05,
                      barge_after_ms=None)
        session.end()
    assert cap.select("llm").metric == "duration_ms"
    assert cap.select("barge_in").n == 0  # nobody talked over the agent


def test_the_attribute_names_exist_in_the_installed_livekit_agents():
    pytest.importorskip("livekit.agents", reason="livekit-agents is not installed: "
                        "pip install livekit-agents to check the names against it")
    from livekit.agents.telemetry import trace_types

    assert trace_types.ATTR_RESPONSE_TTFT == "lk.response.ttft"
    assert trace_types.ATTR_RESPONSE_TTFB == "lk.response.ttfb"
    assert trace_types.ATTR_TRANSCRIPTION_DELAY == "lk.transcription_delay"
    assert trace_types.ATTR_END_OF_TURN_DELAY == "lk.end_of_turn_delay"
    assert trace_types.ATTR_E2E_LATENCY == "lk.e2e_latency"
    assert trace_types.ATTR_SPEECH_INTERRUPTED == "lk.interrupted"
