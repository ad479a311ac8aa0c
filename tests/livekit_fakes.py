"""Offline LiveKit Agents 1.x plugins with known delays: a real ``AgentSession`` with no room.

Each fake subclasses LiveKit's own plugin base (``vad.VAD``, ``stt.STT``, ``llm.LLM``,
``tts.TTS``); only the provider call is replaced by an ``asyncio.sleep`` of a known length. The
STT and TTS are non-streaming, so the session wraps them in LiveKit's own ``StreamAdapter`` s
(the STT one segments on our VAD). The VAD is an energy detector on 20 ms windows (Silero needs
onnxruntime and a model file). Written for this project after reading how LiveKit's own tests
drive a session (``tests/fake_*.py`` in livekit/agents); no code is taken from them.

A booking agent (tests/test_livekit_properties.py): :class:`BookingLLM` answers a user turn with
a sentence and a ``book_table`` tool call, and the tool's output with a confirmation;
:class:`BookingAgent`'s ``book_table`` commits to a :class:`ScriptedBackend` with a client-side
timeout and retries — without an idempotency key (the duplicate booking) or with one.
:func:`make_booking_agent` is the replay factory; the backend of each call it builds is kept in
:data:`BACKENDS`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    ToolError,
    function_tool,
    llm,
    stt,
    tts,
    utils,
    vad,
)
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from pytest_voicelatency.agents import BackendError, BackendProfile, ScriptedBackend
from pytest_voicelatency.frameworks.livekit import LiveKitAgent

__all__ = ["EnergyVAD", "DelayedSTT", "DelayedLLM", "DelayedTTS", "build_session",
           "STT_DELAY_S", "LLM_DELAY_S", "TTS_DELAY_S", "VAD_STOP_S", "BookingLLM",
           "BookingAgent", "build_booking_session", "make_booking_agent", "BACKENDS",
           "TOOL_TIMEOUT_S", "TOOL_ATTEMPTS"]

STT_DELAY_S = 0.15
LLM_DELAY_S = 0.25
TTS_DELAY_S = 0.12
VAD_STOP_S = 0.25
WINDOW_S = 0.02


class EnergyVAD(vad.VAD):
    """Speech = a 20 ms window whose int16 peak exceeds ``threshold``."""

    def __init__(self, *, threshold: int = 300, min_speech_s: float = 0.06,
                 min_silence_s: float = VAD_STOP_S) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=WINDOW_S))
        self.threshold = threshold
        self.min_speech_s = min_speech_s
        self.min_silence_s = min_silence_s

    def stream(self) -> EnergyVADStream:
        return EnergyVADStream(self)


class EnergyVADStream(vad.VADStream):
    def __init__(self, detector: EnergyVAD) -> None:
        super().__init__(detector)
        self._detector = detector

    async def _main_task(self) -> None:
        d = self._detector
        speaking, speech_s, silence_s, samples = False, 0.0, 0.0, 0
        speech: list[rtc.AudioFrame] = []
        pending: list[rtc.AudioFrame] = []  # loud frames before speech is confirmed
        async for frame in self._input_ch:
            if not isinstance(frame, rtc.AudioFrame):
                continue  # a flush
            pcm = np.frombuffer(bytes(frame.data.cast("b")), "<i2")
            loud = bool(pcm.size) and int(np.abs(pcm).max()) > d.threshold
            seconds = frame.samples_per_channel / frame.sample_rate
            samples += frame.samples_per_channel

            def event(kind: vad.VADEventType, frames: list[rtc.AudioFrame], *,
                      is_speaking: bool, at: int = samples, speech: float = speech_s,
                      silence: float = silence_s, p: float = float(loud)) -> vad.VADEvent:
                return vad.VADEvent(type=kind, samples_index=at, timestamp=time.time(),
                                    speech_duration=speech, silence_duration=silence,
                                    frames=frames, probability=p, speaking=is_speaking)

            if loud:
                silence_s = 0.0
                speech_s += seconds
                (speech if speaking else pending).append(frame)
                if not speaking and speech_s >= d.min_speech_s:
                    speaking, speech = True, pending
                    pending = []
                    self._event_ch.send_nowait(event(vad.VADEventType.START_OF_SPEECH,
                                                     list(speech), is_speaking=True))
            else:
                if speaking:
                    speech.append(frame)
                    silence_s += seconds
                    if silence_s >= d.min_silence_s:
                        speaking = False
                        self._event_ch.send_nowait(event(vad.VADEventType.END_OF_SPEECH,
                                                         speech, is_speaking=False))
                        speech, speech_s = [], 0.0
                else:
                    speech_s, pending = 0.0, []
            self._event_ch.send_nowait(event(vad.VADEventType.INFERENCE_DONE, [frame],
                                             is_speaking=speaking))


class DelayedSTT(stt.STT):
    """Recognises any segment as ``text`` after ``delay_s``."""

    def __init__(self, *, delay_s: float = STT_DELAY_S,
                 text: str = "I want to cancel my order") -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.delay_s = delay_s
        self.text = text

    async def _recognize_impl(self, buffer: Any, *, language: Any = None,
                              conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
                              ) -> stt.SpeechEvent:
        await asyncio.sleep(self.delay_s)
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                               alternatives=[stt.SpeechData(language="en", text=self.text,
                                                            confidence=1.0)])


class DelayedLLM(llm.LLM):
    """Answers any chat with ``reply``, the first chunk after ``delay_s``."""

    def __init__(self, *, delay_s: float = LLM_DELAY_S,
                 reply: str = "Sure. I have cancelled your order and emailed you a receipt."
                 ) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.reply = reply

    def chat(self, *, chat_ctx: llm.ChatContext, tools: list[Any] | None = None,
             conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
             **_: Any) -> DelayedLLMStream:
        return DelayedLLMStream(self, chat_ctx=chat_ctx, tools=tools or [],
                                conn_options=conn_options)


class DelayedLLMStream(llm.LLMStream):
    async def _run(self) -> None:
        model = self._llm
        assert isinstance(model, DelayedLLM)
        await asyncio.sleep(model.delay_s)
        for i, word in enumerate(model.reply.split(" ")):
            self._event_ch.send_nowait(llm.ChatChunk(
                id=f"delayed-{id(self)}",
                delta=llm.ChoiceDelta(role="assistant", content=word if i == 0 else " " + word)))
            await asyncio.sleep(0.005)


class DelayedTTS(tts.TTS):
    """Speaks any text as a 220 Hz tone, 60 ms per character, the first audio after ``delay_s``."""

    def __init__(self, *, delay_s: float = TTS_DELAY_S, sample_rate: int = 16_000,
                 ms_per_char: float = 60.0) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False),
                         sample_rate=sample_rate, num_channels=1)
        self.delay_s = delay_s
        self.ms_per_char = ms_per_char

    def synthesize(self, text: str, *,
                   conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
                   ) -> DelayedChunkedStream:
        return DelayedChunkedStream(tts=self, input_text=text, conn_options=conn_options)


class DelayedChunkedStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        voice = self._tts
        assert isinstance(voice, DelayedTTS)
        rate = voice.sample_rate
        output_emitter.initialize(request_id=utils.shortuuid("delayed_tts_"), sample_rate=rate,
                                  num_channels=1, mime_type="audio/pcm")
        await asyncio.sleep(voice.delay_s)
        seconds = min(len(self.input_text) * voice.ms_per_char / 1000, 6.0)
        t = np.arange(int(rate * seconds)) / rate
        pcm = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()
        step = 2 * rate // 10  # 100 ms
        for i in range(0, len(pcm), step):
            output_emitter.push(pcm[i:i + step])
        output_emitter.flush()


def _turn_handling() -> dict[str, Any]:
    return {"turn_detection": "vad", "endpointing": {"min_delay": 0.2, "max_delay": 2.0},
            "interruption": {"mode": "vad", "min_duration": 0.2,
                             "resume_false_interruption": False,
                             "false_interruption_timeout": None}}


def build_session(*, stt_delay_s: float = STT_DELAY_S, llm_delay_s: float = LLM_DELAY_S,
                  tts_delay_s: float = TTS_DELAY_S) -> tuple[AgentSession[None], Agent]:
    """A fresh session (VAD turn detection, short endpointing delay) and agent, per call."""
    session = AgentSession[None](
        vad=EnergyVAD(), stt=DelayedSTT(delay_s=stt_delay_s), llm=DelayedLLM(delay_s=llm_delay_s),
        tts=DelayedTTS(delay_s=tts_delay_s), turn_handling=_turn_handling())
    return session, Agent(instructions="You take orders.")


# ---------------------------------------------------------------------- a tool that books

#: the tool's client-side timeout per backend request, and how many requests it makes at most
TOOL_TIMEOUT_S = 0.4
TOOL_ATTEMPTS = 2


class BookingLLM(llm.LLM):
    """A model that books: to a user turn it says ``preamble`` and calls
    ``book_table(party=2, at="19:00")`` — unless the context already holds a ``book_table``
    result that is not an error (or LiveKit's in-progress placeholder for a running call); to
    the tool's output it says whether the table is booked. Call ids are ``call_1``, ``call_2``
    ... (deterministic)."""

    def __init__(self, *, delay_s: float = LLM_DELAY_S,
                 preamble: str = "One moment, I am booking it.") -> None:
        super().__init__()
        self.delay_s = delay_s
        self.preamble = preamble
        self.calls = 0

    def chat(self, *, chat_ctx: llm.ChatContext, tools: list[Any] | None = None,
             conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
             **_: Any) -> BookingLLMStream:
        return BookingLLMStream(self, chat_ctx=chat_ctx, tools=tools or [],
                                conn_options=conn_options)


class BookingLLMStream(llm.LLMStream):
    async def _run(self) -> None:
        model = self._llm
        assert isinstance(model, BookingLLM)
        await asyncio.sleep(model.delay_s)
        items = list(self._chat_ctx.items)
        outputs = [i for i in items
                   if i.type == "function_call_output" and i.name == "book_table"]
        if items and items[-1].type == "function_call_output":
            last = items[-1]
            await self._say("Sorry, I could not book the table." if last.is_error
                            else "Your table for two at seven is booked.")
        elif any(not o.is_error for o in outputs):
            await self._say("Your table is already booked.")
        else:
            await self._say(model.preamble)
            model.calls += 1
            self._event_ch.send_nowait(llm.ChatChunk(
                id=f"booking-{model.calls}",
                delta=llm.ChoiceDelta(role="assistant", tool_calls=[llm.FunctionToolCall(
                    name="book_table", arguments='{"party": 2, "at": "19:00"}',
                    call_id=f"call_{model.calls}")])))

    async def _say(self, text: str) -> None:
        for i, word in enumerate(text.split(" ")):
            self._event_ch.send_nowait(llm.ChatChunk(
                id=f"booking-{id(self)}",
                delta=llm.ChoiceDelta(role="assistant", content=word if i == 0 else " " + word)))
            await asyncio.sleep(0.005)


class BookingAgent(Agent):
    """An agent whose ``book_table`` tool commits to ``backend``, waiting ``timeout_s`` per
    request and trying ``attempts`` times on a timeout or an error. ``idempotent``: every
    request carries the booking as its idempotency key, so a retry cannot book twice."""

    def __init__(self, backend: ScriptedBackend, *, idempotent: bool,
                 timeout_s: float = TOOL_TIMEOUT_S, attempts: int = TOOL_ATTEMPTS) -> None:
        super().__init__(instructions="You book tables.")
        self.backend = backend
        self.idempotent = idempotent
        self.timeout_s = timeout_s
        self.attempts = attempts

    @function_tool
    async def book_table(self, party: int, at: str) -> str:
        """Book a table for ``party`` people at ``at`` (HH:MM)."""
        booking = f"table for {party} at {at}"
        for _ in range(self.attempts):
            try:
                await asyncio.wait_for(self.backend.commit(
                    booking, idempotency_key=booking if self.idempotent else None),
                    self.timeout_s)
                return f"booked: {booking}"
            except (TimeoutError, BackendError):
                continue  # the retry: without an idempotency key, a second booking
        raise ToolError(f"could not book the {booking}")


#: the backend of every call :func:`make_booking_agent` built, last one last
BACKENDS: list[ScriptedBackend] = []


def build_booking_session(backend: ScriptedBackend, *, idempotent: bool
                          ) -> tuple[AgentSession[None], Agent]:
    """A fresh session (as :func:`build_session`, with :class:`BookingLLM` and the user asking
    for a table) and a :class:`BookingAgent` on ``backend``. No AEC warm-up (LiveKit ignores
    the user for the agent's first 3 s of speech by default, waiting for an echo canceller to
    settle; the simulated line has no echo): the user can talk over the agent while its tool
    runs."""
    session = AgentSession[None](
        vad=EnergyVAD(), stt=DelayedSTT(text="Book a table for two at seven."),
        llm=BookingLLM(), tts=DelayedTTS(), turn_handling=_turn_handling(),
        aec_warmup_duration=None)
    return session, BookingAgent(backend, idempotent=idempotent)


def make_booking_agent(*, profile: dict[str, Any], idempotent: bool) -> LiveKitAgent:
    """The replay factory: a :class:`LiveKitAgent` on a fresh backend scripted by ``profile``
    (``BackendProfile.to_json()``), kept in :data:`BACKENDS`."""
    backend = ScriptedBackend(BackendProfile.from_json(profile), name="bookings")
    BACKENDS.append(backend)
    return LiveKitAgent(lambda: build_booking_session(backend, idempotent=idempotent))
