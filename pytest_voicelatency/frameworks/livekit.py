"""Run a LiveKit Agents 1.x ``AgentSession`` as a :class:`~.call.protocol.VoiceAgent`.

No room, no server: the session's audio input and output are replaced (``session.input.audio`` /
``session.output.audio``, as LiveKit's own tests do) by :class:`CallerAudioInput`, which yields
the simulated caller's inbound frames as ``rtc.AudioFrame`` s, and :class:`CallerAudioOutput`,
which sends the session's audio to the caller as ``AgentAudio``, turns ``clear_buffer()`` (an
interruption) into ``AgentClear``, and reports playback started / finished when the audio sent
so far would have played — the times LiveKit's ``agent_speaking`` span and its barge-in handling
run on. The user's ``AgentSession`` (their VAD/STT/LLM/TTS) and ``Agent`` come from ``build``.

LiveKit's tracer follows the global OpenTelemetry provider, so its ``agent_session`` →
``user_turn`` / ``agent_turn`` → ``llm_node`` / ``tts_node`` / ``agent_speaking`` spans reach the
plugin's capture and the ``livekit`` convention reads them. Without a room they carry no
conversation id, so they are read under their trace id; when the call closes, the adapter ends
a ``voice.session`` span naming that trace and the caller's session id, and the capture moves
the trace's samples to the caller's session (where ``caller.*`` are, so the spans-vs-heard
check pairs them). LiveKit's ``thinking`` and ``listening`` states are forwarded as
:class:`~.call.protocol.AgentState` (``speaking`` is sent with the first audio), so moments
relative to the agent's thinking land on a LiveKit agent too.

Virtual time: LiveKit reads ``time`` directly (about a hundred call sites in ``voice/``) and
waits with asyncio, so on ``Caller(clock=VirtualClock(wall_clock="virtual"))`` an unmodified
session runs on the call's clock (``honours_clock`` is True there and on a real clock, False
under the default ``wall_clock="guard"``); see :mod:`.ontime` for what is detected and named.
Supported: livekit-agents 1.8.x.

    from pytest_voicelatency.frameworks.livekit import LiveKitAgent
    caller.run(LiveKitAgent(lambda: (AgentSession(vad=..., stt=..., llm=..., tts=...),
                                     Agent(instructions="..."))), script)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.agents import Agent, AgentSession
from livekit.agents.voice.io import AudioInput, AudioOutput, AudioOutputCapabilities
from opentelemetry import trace

from pytest_voicelatency.call.protocol import (
    AgentAudio,
    AgentClear,
    AgentProtocolError,
    AgentState,
)
from pytest_voicelatency.call.protocol import AgentSession as CallSession
from pytest_voicelatency.frameworks.ontime import OnVirtualTime, can_follow_clock

__all__ = ["LiveKitAgent", "CallerAudioInput", "CallerAudioOutput", "Build"]

#: What the user hands over: a function making a fresh ``(AgentSession, Agent)`` per call.
Build = Callable[[], "tuple[AgentSession[Any], Agent]"]


class CallerAudioInput(AudioInput):  # type: ignore[misc,unused-ignore]
    """The caller's inbound PCM, one ``rtc.AudioFrame`` per frame, as a room track would give."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__(label="pytest-voicelatency caller")
        self._rate = sample_rate
        self._frames: asyncio.Queue[rtc.AudioFrame | None] = asyncio.Queue()

    def push(self, pcm: bytes) -> None:
        self._frames.put_nowait(rtc.AudioFrame(data=pcm, sample_rate=self._rate, num_channels=1,
                                               samples_per_channel=len(pcm) // 2))

    def close(self) -> None:
        self._frames.put_nowait(None)

    async def __anext__(self) -> rtc.AudioFrame:
        frame = await self._frames.get()
        if frame is None:
            raise StopAsyncIteration
        return frame


class CallerAudioOutput(AudioOutput):  # type: ignore[misc,unused-ignore]
    """The session's audio to the caller; playback events timed by when it would have played."""

    def __init__(self, session: CallSession) -> None:
        super().__init__(label="pytest-voicelatency caller", next_in_chain=None,
                         sample_rate=session.format.sample_rate,
                         capabilities=AudioOutputCapabilities(pause=False))
        self._session = session
        self._started_at = 0.0   # loop time of this segment's first audio
        self._pushed_s = 0.0     # audio sent in this segment, seconds
        self._finisher: asyncio.TimerHandle | None = None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if frame.num_channels != 1:
            raise AgentProtocolError(f"LiveKit output audio has {frame.num_channels} channels; "
                                     f"use a mono TTS for the simulated line")
        loop = asyncio.get_running_loop()
        if not self._pushed_s:
            self._started_at = loop.time()
            self._session.emit(AgentState("speaking"))
            self.on_playback_started(created_at=time.time())  # LiveKit stamps with time.time()
        self._session.emit(AgentAudio(bytes(frame.data.cast("b")), frame.sample_rate))
        self._pushed_s += frame.samples_per_channel / frame.sample_rate

    def flush(self) -> None:
        super().flush()
        if not self._pushed_s:
            return
        loop = asyncio.get_running_loop()
        if self._finisher is not None:
            self._finisher.cancel()
        self._finisher = loop.call_at(self._started_at + self._pushed_s, self._finished)

    def _finished(self) -> None:
        self._finisher = None
        self.on_playback_finished(playback_position=self._pushed_s, interrupted=False)
        self._pushed_s = 0.0

    def clear_buffer(self) -> None:
        if self._finisher is not None:
            self._finisher.cancel()
            self._finisher = None
        if not self._pushed_s:
            return
        self._session.emit(AgentClear("barge_in"))
        played = asyncio.get_running_loop().time() - self._started_at
        self.on_playback_finished(playback_position=min(self._pushed_s, played), interrupted=True)
        self._pushed_s = 0.0


class LiveKitAgent:
    """One call = one fresh ``(AgentSession, Agent)`` from ``build``, started with the caller's
    audio as its input and output (no room). ``record=False``: nothing is uploaded."""

    def __init__(self, build: Build, *, start_timeout_s: float = 10.0,
                 close_timeout_s: float = 5.0, stall_limit_s: float = 2.0) -> None:
        self._build = build
        self._start_timeout_s = start_timeout_s
        self._close_timeout_s = close_timeout_s
        self._input: CallerAudioInput | None = None
        self._session: AgentSession[Any] | None = None
        self._closed = False
        self._stall_limit_s = stall_limit_s
        self._ontime: OnVirtualTime | None = None
        self._call: CallSession | None = None
        self._trace_id = 0

    @property
    def honours_clock(self) -> bool:
        """True on a real clock and on a virtual one whose ``wall_clock`` is ``"virtual"``
        (LiveKit's ``time`` reads then follow it); asked by the caller on the call's loop."""
        return can_follow_clock()

    async def start(self, session: CallSession) -> None:
        self._ontime = OnVirtualTime(f"LiveKitAgent in session {session.session_id}",
                                     stall_limit_s=self._stall_limit_s)
        with self._ontime.setup():  # building (lazy imports, plugins) is not the call's time
            lk_session, agent = self._build()
        self._ontime.enter([lk_session, agent, lk_session.vad, lk_session.stt, lk_session.llm,
                            lk_session.tts])
        self._input = CallerAudioInput(session.format.sample_rate)
        lk_session.input.audio = self._input
        lk_session.output.audio = CallerAudioOutput(session)
        self._session = lk_session
        self._call = session
        lk_session.on("agent_state_changed", self._forward_state)
        await asyncio.wait_for(lk_session.start(agent, record=False), self._start_timeout_s)
        self._trace_id = _trace_of(lk_session)

    def _forward_state(self, event: Any) -> None:
        state = getattr(event, "new_state", None)
        if state in ("thinking", "listening") and self._call is not None and not self._closed:
            self._call.emit(AgentState(state))

    async def receive(self, pcm: bytes) -> None:
        if self._ontime is not None:
            self._ontime.check()
        if self._input is not None and not self._closed:
            self._input.push(pcm)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._input is not None:
            self._input.close()
        try:
            if self._session is not None:
                with contextlib.suppress(TimeoutError, RuntimeError):
                    await asyncio.wait_for(self._session.aclose(), self._close_timeout_s)
        finally:
            if self._ontime is not None:
                self._ontime.exit()
            if self._trace_id and self._call is not None:
                _name_session(self._call, self._trace_id)


def _trace_of(lk_session: AgentSession[Any]) -> int:
    """The trace id of the session's ``agent_session`` span (0 when LiveKit made none)."""
    span = getattr(lk_session, "_session_span", None)  # livekit-agents 1.8: the trace root
    context = span.get_span_context() if span is not None else None
    return context.trace_id if context is not None and context.is_valid else 0


def _name_session(call: CallSession, trace_id: int) -> None:
    """End a ``voice.session`` span saying that trace ``trace_id`` is the caller's session."""
    tracer = call.tracer or trace.get_tracer("pytest_voicelatency.frameworks.livekit")
    tracer.start_span("voice.session", attributes={
        "audio.session_id": call.session_id,
        "audio.trace_id": format(trace_id, "032x")}).end()
