"""Offline Pipecat 1.x services with known delays: a pipeline that emits Pipecat's own spans.

Each fake subclasses Pipecat's own service base (``SegmentedSTTService``, ``LLMService``,
``TTSService``) and carries Pipecat's own tracing decorators (``traced_stt`` / ``traced_llm`` /
``traced_tts``) the way Pipecat's built-in services do, so the ``stt`` / ``llm`` / ``tts`` spans
and their ``metrics.ttfb`` come from Pipecat's code, not ours. Only the network call is replaced
by an ``asyncio.sleep`` of a known length. The VAD is an energy ``VADAnalyzer`` (Pipecat's Silero
needs onnxruntime) behind Pipecat's ``VADProcessor``; turns end on Pipecat's
``SpeechTimeoutUserTurnStopStrategy`` (the default smart-turn analyser loads a model).

No keys, no network, no model download. Shared by tests/test_pipecat.py and its pytester test
(the pytester file imports this module by path, see ``SOURCE``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import numpy as np
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.services.settings import LLMSettings, STTSettings, TTSSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.services.tts_service import TTSService
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.utils.time import time_now_iso8601
from pipecat.utils.tracing.service_decorators import traced_llm, traced_stt, traced_tts

from pytest_voicelatency.frameworks.pipecat import PipecatAgent

__all__ = ["SOURCE", "EnergyVAD", "DelayedSTT", "DelayedLLM", "DelayedTTS", "build_pipeline",
           "STT_DELAY_S", "LLM_DELAY_S", "TTS_DELAY_S", "VAD_STOP_S", "Tap", "RacyPacer",
           "make_agent", "TAPS", "REPLY", "THREE_SENTENCES"]

SOURCE = Path(__file__)
#: the default reply of :class:`DelayedLLM`
REPLY = "Sure. I have cancelled your order and emailed you a receipt."
#: a reply a :class:`RacyPacer` paces in three sentences
THREE_SENTENCES = "Sure. I have cancelled your order. I emailed you a receipt."
RATE = 16_000
STT_DELAY_S = 0.15
LLM_DELAY_S = 0.25
TTS_DELAY_S = 0.12
#: the VAD's end-of-speech hangover: Pipecat's stt ``metrics.ttfb`` runs from the end of speech,
#: and a segmented STT only gets the segment once the VAD has declared it over
VAD_STOP_S = 0.2
#: LLMSettings fields a fake has no use for: Pipecat wants every field given (None = unsupported)
_LLM_UNUSED = ("system_instruction", "temperature", "max_tokens", "top_p", "top_k",
               "frequency_penalty", "presence_penalty", "seed", "filter_incomplete_user_turns",
               "user_turn_completion_config")


class EnergyVAD(VADAnalyzer):  # type: ignore[misc]
    """Confidence 1.0 for a 20 ms window louder than ``threshold`` (int16 peak), else 0.0."""

    def __init__(self, *, threshold: int = 300, params: VADParams | None = None) -> None:
        super().__init__(sample_rate=RATE, params=params or VADParams(
            confidence=0.5, start_secs=0.06, stop_secs=VAD_STOP_S, min_volume=0.0))
        self._threshold = threshold

    def num_frames_required(self) -> int:
        return int(self.sample_rate * 0.02)

    def voice_confidence(self, buffer: bytes) -> float:
        peak = np.abs(np.frombuffer(buffer, "<i2")).max(initial=0)
        return 1.0 if peak > self._threshold else 0.0


class DelayedSTT(SegmentedSTTService):  # type: ignore[misc]
    """Transcribes each VAD segment as ``text`` after ``delay_s`` (the stand-in for an API call)."""

    def __init__(self, *, delay_s: float = STT_DELAY_S, text: str = "I want to cancel my order",
                 **kwargs: Any) -> None:
        super().__init__(settings=STTSettings(model="delayed-stt", language=None),
                         ttfs_p99_latency=delay_s + VAD_STOP_S, **kwargs)
        self.delay_s = delay_s
        self.text = text

    def can_generate_metrics(self) -> bool:
        return True

    @traced_stt  # type: ignore[untyped-decorator]
    async def _handle_transcription(self, transcript: str, is_final: bool,
                                    language: Any = None) -> None:
        """Where Pipecat's own segmented services hang ``traced_stt`` (a no-op body)."""

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        await self.start_processing_metrics()
        await asyncio.sleep(self.delay_s)
        await self.stop_processing_metrics()
        await self._handle_transcription(self.text, True)
        yield TranscriptionFrame(self.text, self._user_id, time_now_iso8601())


class DelayedLLM(LLMService):  # type: ignore[misc]
    """Answers any context with ``reply`` in two chunks; the first after ``delay_s``."""

    def __init__(self, *, delay_s: float = LLM_DELAY_S,
                 reply: str = REPLY,
                 **kwargs: Any) -> None:
        super().__init__(settings=LLMSettings(model="delayed-llm", **dict.fromkeys(_LLM_UNUSED)),
                         **kwargs)
        self.delay_s = delay_s
        self.reply = reply

    def can_generate_metrics(self) -> bool:
        return True

    @traced_llm  # type: ignore[untyped-decorator]
    async def _process_context(self, context: LLMContext) -> None:
        await self.start_ttfb_metrics()
        await asyncio.sleep(self.delay_s)
        await self.stop_ttfb_metrics()
        head, _, tail = self.reply.partition(" ")
        await self.push_frame(LLMTextFrame(head + " "))
        await asyncio.sleep(0.01)
        await self.push_frame(LLMTextFrame(tail))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self.push_frame(LLMFullResponseStartFrame())
            await self.start_processing_metrics()
            try:
                await self._process_context(frame.context)
            finally:
                await self.stop_processing_metrics()
                await self.push_frame(LLMFullResponseEndFrame())
        else:
            await self.push_frame(frame, direction)


class DelayedTTS(TTSService):  # type: ignore[misc]
    """Speaks any text as a 220 Hz tone, 60 ms per character, the first audio after ``delay_s``."""

    def __init__(self, *, delay_s: float = TTS_DELAY_S, ms_per_char: float = 60.0,
                 **kwargs: Any) -> None:
        super().__init__(sample_rate=RATE, push_start_frame=True, push_stop_frames=True,
                         settings=TTSSettings(model="delayed-tts", voice="tone", language=None),
                         **kwargs)
        self.delay_s = delay_s
        self.ms_per_char = ms_per_char

    def can_generate_metrics(self) -> bool:
        return True

    @traced_tts  # type: ignore[untyped-decorator]
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        seconds = min(len(text) * self.ms_per_char / 1000, 6.0)
        t = np.arange(int(RATE * seconds)) / RATE
        pcm = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()

        async def chunks() -> AsyncGenerator[bytes, None]:
            await asyncio.sleep(self.delay_s)
            step = 2 * RATE // 10  # 100 ms
            for i in range(0, len(pcm), step):
                yield pcm[i:i + step]

        try:
            async for frame in self._stream_audio_frames_from_iterator(
                    chunks(), in_sample_rate=RATE, context_id=context_id):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as e:  # as Pipecat's own services report a failed synthesis
            yield ErrorFrame(error=f"DelayedTTS failed: {e}")
        finally:
            await self.stop_ttfb_metrics()


def build_pipeline(*, stt_delay_s: float = STT_DELAY_S, llm_delay_s: float = LLM_DELAY_S,
                   tts_delay_s: float = TTS_DELAY_S, reply: str = REPLY) -> list[FrameProcessor]:
    """A fresh VAD → STT → user aggregator → LLM → TTS → assistant aggregator, per call."""
    context = LLMContext([{"role": "system", "content": "You take orders."}])
    aggregators = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(
        user_turn_strategies=UserTurnStrategies(
            stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.2)])))
    return [VADProcessor(vad_analyzer=EnergyVAD()), DelayedSTT(delay_s=stt_delay_s),
            aggregators.user(), DelayedLLM(delay_s=llm_delay_s, reply=reply),
            DelayedTTS(delay_s=tts_delay_s), aggregators.assistant()]


class Tap(FrameProcessor):  # type: ignore[misc]
    """Records ``(loop time s, kind)`` of what passes downstream: ``text`` (LLM tokens),
    ``audio`` (TTS audio), ``interruption`` and ``reply`` (a new LLM response starts). In
    Pipecat's direct mode (no queue and task of its own): it only looks, so it adds no wake-ups
    to the pipeline it watches."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, enable_direct_mode=True)
        self.seen: list[tuple[float, str]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            kind = ("interruption" if isinstance(frame, InterruptionFrame) else
                    "reply" if isinstance(frame, LLMFullResponseStartFrame) else
                    "audio" if isinstance(frame, TTSAudioRawFrame) else
                    "text" if isinstance(frame, TextFrame) else None)
            if kind is not None:
                self.seen.append((asyncio.get_running_loop().time(), kind))
        await self.push_frame(frame, direction)


class RacyPacer(FrameProcessor):  # type: ignore[misc]
    """Paces the LLM's text to the TTS a sentence at a time, ``gap_s`` apart, as a user's
    "don't flood the TTS" processor might. With ``racy=True`` its interruption handler has the
    bug users ship: it sets a flag, and the pacing task checks the flag *before* it waits out
    the gap rather than after (decide, yield, send), so a barge-in landing in any of those gaps
    still sends the cancelled turn's next sentence to the TTS. With ``racy=False`` it cancels
    the task. A reply of three sentences (:data:`THREE_SENTENCES`) puts the last gap inside the
    audible reply, where a barge-in after the audio starts can land in it."""

    def __init__(self, *, gap_s: float = 0.4, racy: bool = True) -> None:
        super().__init__()
        self.gap_s = gap_s
        self.racy = racy
        self._buffer = ""
        self._task: asyncio.Task[None] | None = None
        self._cancelled = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            self._buffer = ""
            self._cancelled = True
            if not self.racy and self._task is not None:
                self._task.cancel()
                self._task = None
            await self.push_frame(frame, direction)
        elif isinstance(frame, LLMFullResponseStartFrame):
            self._cancelled, self._buffer = False, ""
            await self.push_frame(frame, direction)
        elif isinstance(frame, LLMTextFrame) and direction == FrameDirection.DOWNSTREAM:
            self._buffer += frame.text
        elif isinstance(frame, LLMFullResponseEndFrame):
            sentences = [x.strip() + " " for x in self._buffer.replace(". ", ".|").split("|")
                         if x.strip()]
            self._buffer = ""
            self._task = asyncio.ensure_future(self._pace(sentences, frame))
        else:
            await self.push_frame(frame, direction)

    async def _pace(self, sentences: list[str], end: Frame) -> None:
        for i, sentence in enumerate(sentences):
            if self.racy:
                if self._cancelled:
                    return
                if i:
                    await asyncio.sleep(self.gap_s)  # the flag is not checked again after this
            elif i:
                await asyncio.sleep(self.gap_s)
            await self.push_frame(LLMTextFrame(sentence))
        await self.push_frame(end)


#: the taps of the last pipeline :func:`make_agent` built: (after the LLM, before the line)
TAPS: list[Tap] = []


def build_tapped(*, racy: bool | None = None, gap_s: float = 0.4, stt_delay_s: float = STT_DELAY_S,
                 llm_delay_s: float = LLM_DELAY_S, tts_delay_s: float = TTS_DELAY_S,
                 reply: str = REPLY) -> list[FrameProcessor]:
    """:func:`build_pipeline` with a :class:`Tap` after the LLM and after the TTS (and, unless
    ``racy`` is None, a :class:`RacyPacer` between them)."""
    processors = build_pipeline(stt_delay_s=stt_delay_s, llm_delay_s=llm_delay_s,
                                tts_delay_s=tts_delay_s, reply=reply)
    llm_tap, line_tap = Tap("llm_tap"), Tap("line_tap")
    TAPS[:] = [llm_tap, line_tap]
    middle: list[FrameProcessor] = [llm_tap]
    if racy is not None:
        middle.append(RacyPacer(gap_s=gap_s, racy=racy))
    vad, stt, user, llm, tts, assistant = processors
    return [vad, stt, user, llm, *middle, tts, line_tap, assistant]


def make_agent(**knobs: Any) -> Any:
    """A ``PipecatAgent`` of :func:`build_tapped` with ``knobs``: the replay files' factory."""
    return PipecatAgent(lambda: build_tapped(**knobs))
