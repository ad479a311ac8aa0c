"""LiveKit Agents 1.x spans read by the ``livekit`` convention, barge-in derived from two spans.

The last tests run a *real* ``AgentSession`` (livekit-agents 1.8) offline through
``LiveKitAgent`` under the simulated caller: fake VAD/STT/LLM/TTS with known delays
(tests/livekit_fakes.py), no room, no server; the spans there are LiveKit's own.

NOTE: the first tests' spans are *synthetic*: built with the OpenTelemetry SDK under LiveKit's
scope name (``livekit-agents``) with the span names, parenting and attributes read from the
installed ``livekit-agents`` 1.8 source (``telemetry/trace_types.py``, ``voice/agent_session.py``,
``voice/agent_activity.py``, ``voice/generation.py``). A run of a real ``AgentSession`` offline
(fake STT/LLM/TTS/VAD, no room) is at the end of this file. When ``livekit-agents`` is
installed, a test checks that the attribute names we rely on still exist in it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from opentelemetry import trace

from pytest_voicelatency.call.caller import Caller
from pytest_voicelatency.call.script import answer, barge_in, say
from pytest_voicelatency.gate.assertions import assert_p95
from pytest_voicelatency.spans.capture import capture_spans
from pytest_voicelatency.vclock import VirtualClock

try:
    import livekit_fakes
    from livekit.agents.telemetry import trace_types
    from livekit_fakes import LLM_DELAY_S, STT_DELAY_S, TTS_DELAY_S, VAD_STOP_S, build_session

    from pytest_voicelatency.frameworks.livekit import LiveKitAgent
except ImportError:  # the [livekit] extra is not installed: the synthetic tests still run
    trace_types = None

needs_livekit = pytest.mark.skipif(
    trace_types is None, reason="livekit-agents is not installed: pip install "
    "'pytest-voicelatency[livekit]' to run a real AgentSession")

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


@needs_livekit
def test_the_attribute_names_exist_in_the_installed_livekit_agents():
    assert trace_types.ATTR_RESPONSE_TTFT == "lk.response.ttft"
    assert trace_types.ATTR_RESPONSE_TTFB == "lk.response.ttfb"
    assert trace_types.ATTR_TRANSCRIPTION_DELAY == "lk.transcription_delay"
    assert trace_types.ATTR_END_OF_TURN_DELAY == "lk.end_of_turn_delay"
    assert trace_types.ATTR_E2E_LATENCY == "lk.e2e_latency"
    assert trace_types.ATTR_SPEECH_INTERRUPTED == "lk.interrupted"


#: generous: a shared 2-core machine delays asyncio wake-ups in CPU-steal bursts; below, 50 ms
#: (a couple of 20 ms frames) for where the framework puts the end of speech
SLACK_MS = 400.0


@pytest.mark.slow
@needs_livekit
def test_a_real_agent_session_offline_gives_asr_llm_tts_turn_and_barge_in():
    """A real AgentSession driven by the caller: LiveKit's spans give every stage, and the
    first bytes agree with the injected delays. On virtual time, so exactly: on a loaded real
    clock LiveKit may hear one utterance as two turns (tests/test_framework_real_vs_virtual.py
    compares the two clocks)."""
    with capture_spans() as cap:
        result = Caller(clock=VirtualClock(wall_clock="virtual")).run(
            LiveKitAgent(build_session),
            [say("confirm_order"), answer(), say("cancel_order"),
             barge_in("wait_stop", after_ms=400), answer()])
    assert len(result.metrics.responses) == 2 and len(result.metrics.barge_ins) == 1
    llm, tts, asr = cap.select("llm"), cap.select("tts"), cap.select("asr")
    assert (llm.metric, tts.metric, asr.metric) == (
        "first_byte_ms", "first_byte_ms", "transcription_delay_ms")
    assert llm.n >= 2 and tts.n >= 2 and asr.n >= 2
    for sample, injected_s in ((llm, LLM_DELAY_S), (tts, TTS_DELAY_S),
                               (asr, STT_DELAY_S + VAD_STOP_S)):  # from the end of speech
        injected = injected_s * 1000
        assert all(injected - 50 <= v < injected + SLACK_MS for v in sample.values), \
            (sample.stage, injected, sample.values.tolist())
    assert cap.select("turn").n >= 2
    barge = cap.select("barge_in")  # from agent_speaking + user_speaking: LiveKit's own spans
    assert barge.metric == "silence_ms" and barge.n == 1
    assert abs(barge.values[0] - result.metrics.barge_ins[0].value_ms) < SLACK_MS
    assert_p95(stage="llm", lt=LLM_DELAY_S * 1000 + SLACK_MS, capture=cap)
    assert_p95(stage="tts", lt=TTS_DELAY_S * 1000 + SLACK_MS, capture=cap)
    assert_p95(stage="barge_in", lt=1500, capture=cap)
    assert_p95(stage="caller.barge_in", lt=1500, capture=cap)
    assert not cap.problems


DOC = Path(__file__).resolve().parents[1] / "docs" / "frameworks.md"


@pytest.mark.slow
@needs_livekit
def test_the_frameworks_doc_livekit_example_runs_as_written(monkeypatch):
    """docs/frameworks.md's LiveKit block, unchanged; its ``my_session`` is our offline one."""
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
                 if "LiveKitAgent" in b)
    monkeypatch.setitem(sys.modules, "my_session", livekit_fakes)
    exec(compile(block, f"{DOC}:livekit", "exec"), {"__name__": "doc_example"})
