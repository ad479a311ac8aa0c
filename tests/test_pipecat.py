"""A real Pipecat 1.x pipeline driven by the simulated caller through ``PipecatAgent``.

Offline: the "bot" is a FrameProcessor written here (energy end-of-speech, a tone reply, an
``InterruptionFrame`` when the user talks over it); no keys, no network, no model download.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="pipecat-ai is not installed: pip install "
                    "'pytest-voicelatency[pipecat]' to test Pipecat agents")

from pipecat.frames.frames import InputAudioRawFrame, InterruptionFrame, TTSAudioRawFrame  # noqa: E402
from pipecat.processors.frame_processor import FrameProcessor  # noqa: E402

from pytest_voicelatency.audio.clips import to_pcm16  # noqa: E402
from pytest_voicelatency.call.caller import Caller  # noqa: E402
from pytest_voicelatency.call.script import answer, barge_in, say  # noqa: E402
from pytest_voicelatency.frameworks.pipecat import PipecatAgent  # noqa: E402
from pytest_voicelatency.gate.assertions import assert_p95  # noqa: E402
from pytest_voicelatency.spans.capture import capture_spans  # noqa: E402

RATE = 16_000


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
