"""A real Pipecat 1.x pipeline driven by the simulated caller through ``PipecatAgent``.

Offline: no keys, no network, no model download. Two bots: ``ToneBot`` below (one processor,
no services: the caller-side measurements), and a pipeline of Pipecat's own service classes with
known delays (tests/pipecat_services.py) whose ``stt`` / ``llm`` / ``tts`` / ``turn`` spans are the
ones Pipecat's tracing emits, read by the ``pipecat`` convention.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="pipecat-ai is not installed: pip install "
                    "'pytest-voicelatency[pipecat]' to test Pipecat agents")

import pipecat_services  # noqa: E402
from pipecat.frames.frames import InputAudioRawFrame, InterruptionFrame, TTSAudioRawFrame  # noqa: E402
from pipecat.processors.frame_processor import FrameProcessor  # noqa: E402
from pipecat_services import (  # noqa: E402
    LLM_DELAY_S,
    SOURCE,
    STT_DELAY_S,
    TTS_DELAY_S,
    VAD_STOP_S,
    build_pipeline,
)

from pytest_voicelatency.audio.clips import to_pcm16  # noqa: E402
from pytest_voicelatency.call.caller import Caller  # noqa: E402
from pytest_voicelatency.call.script import answer, barge_in, say  # noqa: E402
from pytest_voicelatency.frameworks.pipecat import PipecatAgent  # noqa: E402
from pytest_voicelatency.gate.assertions import assert_p95  # noqa: E402
from pytest_voicelatency.spans.capture import capture_spans  # noqa: E402

RATE = 16_000
SCRIPT = [say("confirm_order"), answer(),
          say("cancel_order"), barge_in("wait_stop", after_ms=400), answer()]
#: generous: a shared 2-core machine delays asyncio wake-ups by tens of ms in CPU-steal bursts
SLACK_MS = 400.0


class ToneBot(FrameProcessor):
    """Replies 200 ms after 300 ms of quiet with 1.5 s of tone; stops when talked over."""

    def __init__(self) -> None:
        super().__init__()
        self.talking = False
        self.quiet_ms = 0
        self.reply: asyncio.Task | None = None

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            loud = np.abs(np.frombuffer(frame.audio, "<i2")).max() > 300
            replying = self.reply is not None and not self.reply.done()
            if loud and replying:
                self.reply.cancel()
                await self.push_frame(InterruptionFrame())
            if loud:
                self.talking, self.quiet_ms = True, 0
            elif self.talking:
                self.quiet_ms += 20
                if self.quiet_ms >= 300:
                    self.talking = False
                    self.reply = asyncio.ensure_future(self._speak())
            return
        await self.push_frame(frame, direction)

    async def _speak(self):
        await asyncio.sleep(0.2)
        t = np.arange(RATE * 1.5) / RATE
        pcm = to_pcm16((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
        chunk = 2 * RATE // 10  # 100 ms
        for i in range(0, len(pcm), chunk):
            await self.push_frame(TTSAudioRawFrame(pcm[i:i + chunk], RATE, 1))
            await asyncio.sleep(0.09)  # streams a little faster than real time, as TTS does


@pytest.mark.slow
def test_a_pipecat_pipeline_is_heard_and_interrupted_through_the_caller():
    with capture_spans() as cap:
        result = Caller().run(PipecatAgent(lambda: [ToneBot()]),
                              [say("confirm_order"), answer(),
                               say("cancel_order"), barge_in("wait_stop", after_ms=300), answer()])
    assert result.metrics.responses and result.metrics.responses[0].value_ms < 900
    assert_p95(stage="caller.response", lt=1000, capture=cap)
    assert_p95(stage="caller.barge_in", lt=400, capture=cap)


@pytest.mark.slow
def test_pipecats_own_service_spans_are_read_as_stages_and_gated():
    """STT/LLM/TTS services with known delays: Pipecat's spans give asr/llm/tts first bytes."""
    with capture_spans() as cap:
        result = Caller().run(PipecatAgent(build_pipeline), SCRIPT)
    assert len(result.metrics.responses) == 2 and len(result.metrics.barge_ins) == 1
    llm, tts, asr = (cap.select(stage) for stage in ("llm", "tts", "asr"))
    assert (llm.metric, tts.metric, asr.metric) == ("first_byte_ms",) * 3  # metrics.ttfb, read
    assert llm.n >= 2 and tts.n >= 2 and asr.n >= 2  # one per user turn (+ the barge-in's)
    for sample, injected_s in ((llm, LLM_DELAY_S), (tts, TTS_DELAY_S),
                               (asr, STT_DELAY_S + VAD_STOP_S)):  # stt ttfb: from end of speech
        injected = injected_s * 1000
        assert all(injected - 50 <= v < injected + SLACK_MS for v in sample.values), \
            (sample.stage, injected, sample.values.tolist())
    assert_p95(stage="llm", lt=LLM_DELAY_S * 1000 + SLACK_MS, capture=cap)
    assert_p95(stage="tts", lt=TTS_DELAY_S * 1000 + SLACK_MS, capture=cap)
    assert_p95(stage="asr", lt=(STT_DELAY_S + VAD_STOP_S) * 1000 + SLACK_MS, capture=cap)
    assert_p95(stage="caller.barge_in", lt=1000, capture=cap)  # VAD start + interruption
    assert cap.select("turn").n >= 2
    assert not cap.problems


PIPECAT_TEST = """
from pipecat_services import build_pipeline
from pytest_voicelatency import assert_p95
from pytest_voicelatency.call.caller import Caller
from pytest_voicelatency.call.script import answer, barge_in, say
from pytest_voicelatency.frameworks.pipecat import PipecatAgent

def test_call(voice_spans):
    Caller().run(PipecatAgent(build_pipeline),
                 [say("confirm_order"), answer(),
                  say("cancel_order"), barge_in("wait_stop", after_ms=400), answer()])
    assert_p95(stage="llm", lt=2000)
"""


@pytest.mark.slow
def test_the_per_stage_table_lists_pipecats_stages(pytester):
    """--voice-latency: the run's table has asr/llm/tts rows read from Pipecat's own spans."""
    pytester.makepyfile(pipecat_services=SOURCE.read_text(), test_pipecat_call=PIPECAT_TEST)
    result = pytester.runpytest_subprocess("--voice-latency", "-p", "no:cacheprovider",
                                           "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*voice latency (ms)*"])
    for stage in ("asr", "llm", "tts"):
        result.stdout.fnmatch_lines([f"{stage} *first_byte_ms*"])


DOC = Path(__file__).resolve().parents[1] / "docs" / "frameworks.md"


@pytest.mark.slow
def test_the_frameworks_doc_pipecat_example_runs_as_written(monkeypatch):
    """docs/frameworks.md's Pipecat block, unchanged; its ``my_pipeline`` is our offline one."""
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
                 if "PipecatAgent" in b)
    monkeypatch.setitem(sys.modules, "my_pipeline", pipecat_services)
    exec(compile(block, f"{DOC}:pipecat", "exec"), {"__name__": "doc_example"})


def test_the_frameworks_doc_virtual_time_example_runs_as_written(monkeypatch, capsys):
    """docs/frameworks.md's virtual-time block, unchanged: a complete script."""
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
                 if 'VirtualClock(wall_clock="virtual")).run(PipecatAgent' in b)
    monkeypatch.setitem(sys.modules, "my_pipeline", pipecat_services)
    exec(compile(block, f"{DOC}:virtual", "exec"), {"__name__": "doc_example"})
    responses, barge_ins = capsys.readouterr().out.strip().split("] [")
    assert responses.count(",") == 1 and barge_ins.count(",") == 0  # two answers, one barge-in
