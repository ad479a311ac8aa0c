"""Run a Pipecat 1.x pipeline as a :class:`~pytest_voicelatency.call.protocol.VoiceAgent`.

The simulated caller's inbound frames enter the pipeline as ``InputAudioRawFrame`` s, pushed by
a head processor (``CallerInput``) as an input transport pushes them; a sink processor at the
end of the pipeline (``CallerOutput``) turns the ``OutputAudioRawFrame`` s (``TTSAudioRawFrame``
included) that reach it into ``AgentAudio`` events, an ``InterruptionFrame`` into
``AgentClear`` (the client's buffer is flushed, as Pipecat's output transport drops its queued
audio), and plays the output transport's part for turn tracking: ``BotStartedSpeakingFrame`` on
the first audio of a reply, ``BotStoppedSpeakingFrame`` when its audio would have finished
playing (or on interruption). Both run in Pipecat's direct mode: the user's processors between
them are untouched.

The worker runs with tracing on (``conversation_id`` = the call's session id), without RTVI
(:data:`WORKER_DEFAULTS`) and with ``PipelineParams(enable_metrics=True)``, so Pipecat's
``conversation`` → ``turn`` → ``stt`` / ``llm`` / ``tts`` spans carry ``metrics.ttfb``; Pipecat
fetches its tracers lazily from the global provider, so the plugin's capture sees them and the
``pipecat`` convention reads them. Barge-in is measured at the listener by the caller
(``caller.barge_in``): Pipecat has no span for it.

Virtual time: Pipecat reads ``time.time()``/``monotonic()`` directly and waits with asyncio, so
on ``Caller(clock=VirtualClock(wall_clock="virtual"))`` an unmodified pipeline runs on the call's
clock (``honours_clock`` is True there, and on a real clock; False under the default
``wall_clock="guard"``, where the caller refuses it). Per call :class:`~.ontime.OnVirtualTime`
runs executor work (Pipecat's VAD analyser thread) inline, names a thread or a bound time
function that would escape the clock, and interrupts a loop that never yields. Supported:
pipecat-ai 1.14.

    from pytest_voicelatency.frameworks.pipecat import PipecatAgent
    caller.run(PipecatAgent(lambda: [my_stt, my_llm, my_tts]), script)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from pytest_voicelatency.call.protocol import (
    AgentAudio,
    AgentClear,
    AgentProtocolError,
    AgentSession,
    AgentState,
    SessionTasks,
)
from pytest_voicelatency.frameworks.ontime import OnVirtualTime, can_follow_clock

try:
    from pytest_voicelatency.frameworks.pipecat_observers import inline_observers as _inline
except ImportError:  # a Pipecat whose worker observer moved: its observers keep their queues
    _inline = None  # type: ignore[assignment]

__all__ = ["PipecatAgent", "CallerInput", "CallerOutput", "Build", "WORKER_DEFAULTS"]

#: What the user hands over: a function making a fresh pipeline per call — a list of processors
#: (their STT, LLM, TTS ...) or one processor (e.g. a ``Pipeline``).
Build = Callable[[], "Sequence[FrameProcessor] | FrameProcessor"]


class CallerInput(FrameProcessor):  # type: ignore[misc,unused-ignore]
    """The pipeline's head: the caller's inbound audio enters here, as from an input transport.

    Direct mode (Pipecat's own option, as its pipeline source and sink use): a frame is pushed
    on in the pushing task, with no queue and task of its own; the user's processors after it
    run as they always do. Pushing here instead of ``PipelineWorker.queue_frame`` saves the
    worker's push-queue task a wake-up per frame (each wake-up also wakes every observer)."""

    def __init__(self) -> None:
        super().__init__(enable_direct_mode=True)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class CallerOutput(FrameProcessor):  # type: ignore[misc,unused-ignore]
    """The pipeline's sink: what reaches it is what the caller hears. Direct mode, like
    :class:`CallerInput`: it runs in the task of the processor before it."""

    def __init__(self, session: AgentSession) -> None:
        super().__init__(enable_direct_mode=True)
        self._session = session
        self._speaking = False
        self._audible_until = 0.0  # loop time at which the audio sent so far has played
        self._stopper: asyncio.TimerHandle | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            await self._interrupted()
        elif isinstance(frame, OutputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._play(frame)
            return  # consumed: the line is the end of the pipeline
        await self.push_frame(frame, direction)

    async def _play(self, frame: OutputAudioRawFrame) -> None:
        loop = asyncio.get_running_loop()
        if not self._speaking:
            self._speaking = True
            self._session.emit(AgentState("speaking"))
            await self._announce(BotStartedSpeakingFrame)
        if frame.num_channels != 1:
            raise AgentProtocolError(f"Pipecat output audio has {frame.num_channels} channels; "
                                     f"set audio_out_channels=1 for the simulated line")
        self._session.emit(AgentAudio(bytes(frame.audio), frame.sample_rate))
        seconds = len(frame.audio) / 2 / frame.sample_rate
        self._audible_until = max(self._audible_until, loop.time()) + seconds
        if self._stopper is not None:
            self._stopper.cancel()
        self._stopper = loop.call_at(self._audible_until, self._finished)

    def _finished(self) -> None:
        self._stopper = None
        if self._speaking:
            self._speaking = False
            asyncio.ensure_future(self._announce(BotStoppedSpeakingFrame))

    async def _interrupted(self) -> None:
        self._session.emit(AgentClear("barge_in"))
        if self._stopper is not None:
            self._stopper.cancel()
            self._stopper = None
        self._audible_until = 0.0
        if self._speaking:
            self._speaking = False
            await self._announce(BotStoppedSpeakingFrame)

    async def _announce(self, kind: type[Frame]) -> None:
        """Tell the pipeline, both ways, as Pipecat's output transport does."""
        await self.push_frame(kind(), FrameDirection.UPSTREAM)
        await self.push_frame(kind(), FrameDirection.DOWNSTREAM)


#: ``PipelineWorker`` options the adapter sets unless ``worker_options`` says otherwise: no idle
#: timeout (the caller ends the call), and no RTVI (Pipecat's client protocol: the simulated
#: line is no RTVI client, and the RTVI processor and observer it would prepend cost about a
#: fifth of a call's CPU on virtual time; ``worker_options={"enable_rtvi": True}`` puts them back)
WORKER_DEFAULTS: dict[str, Any] = {"cancel_on_idle_timeout": False, "idle_timeout_secs": None,
                                   "enable_rtvi": False}


class PipecatAgent:
    """One call = one fresh pipeline from ``build``, run by a Pipecat ``PipelineWorker``.

    ``params`` defaults to ``PipelineParams(enable_metrics=True)`` with the line's sample rate
    in and out; ``enable_tracing`` (default True) makes Pipecat emit its spans;
    ``worker_options`` override :data:`WORKER_DEFAULTS` and go to the ``PipelineWorker``.
    ``inline_observers`` (default True) calls the worker's own turn-tracking and tracing
    observers (:data:`~.pipecat_observers.INLINE_OBSERVERS`) in the task that pushes a frame
    instead of waking a task per observer per hop: the same spans and samples for about a
    quarter less CPU; your observers, and RTVI's, keep Pipecat's queue and task each.
    """

    def __init__(self, build: Build, *, params: PipelineParams | None = None,
                 enable_tracing: bool = True, start_timeout_s: float = 10.0,
                 worker_options: dict[str, Any] | None = None,
                 stall_limit_s: float = 2.0, inline_observers: bool = True) -> None:
        self._build = build
        self._params = params
        self._tracing = enable_tracing
        self._start_timeout_s = start_timeout_s
        self._worker_options = worker_options or {}
        self._tasks = SessionTasks()
        self._worker: PipelineWorker | None = None
        self._closed = False
        self._rate = 16_000
        self._stall_limit_s = stall_limit_s
        self._inline_observers = inline_observers
        self._ontime: OnVirtualTime | None = None
        self._input: CallerInput | None = None

    @property
    def honours_clock(self) -> bool:
        """True on a real clock and on a virtual one whose ``wall_clock`` is ``"virtual"``
        (Pipecat's ``time`` reads then follow it); asked by the caller on the call's loop."""
        return can_follow_clock()

    async def start(self, session: AgentSession) -> None:
        self._tasks.session = session
        self._rate = session.format.sample_rate
        self._ontime = OnVirtualTime(f"PipecatAgent in session {session.session_id}",
                                     stall_limit_s=self._stall_limit_s)
        with self._ontime.setup():  # building (lazy imports, models) is not the call's time
            built = self._build()
        processors = [built] if isinstance(built, FrameProcessor) else list(built)
        self._ontime.enter(processors)
        params = self._params or PipelineParams(enable_metrics=True,
                                                audio_in_sample_rate=self._rate,
                                                audio_out_sample_rate=self._rate)
        self._input = CallerInput()
        worker = PipelineWorker(Pipeline([self._input, *processors, CallerOutput(session)]),
                                params=params, enable_tracing=self._tracing,
                                conversation_id=session.session_id,
                                **{**WORKER_DEFAULTS, **self._worker_options})
        if self._inline_observers and _inline is not None:
            _inline(worker)
        started = asyncio.Event()

        @worker.event_handler("on_pipeline_started")  # type: ignore[misc,untyped-decorator,unused-ignore]
        async def _started(_worker: Any, _frame: Frame) -> None:
            started.set()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        self._worker = worker
        self._tasks.spawn(runner.run())
        await asyncio.wait_for(started.wait(), self._start_timeout_s)

    async def receive(self, pcm: bytes) -> None:
        if self._ontime is not None:
            self._ontime.check()
        if self._input is not None and not self._closed:
            await self._input.queue_frame(
                InputAudioRawFrame(audio=pcm, sample_rate=self._rate, num_channels=1))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._worker is not None:
                try:
                    await asyncio.wait_for(self._worker.cancel(), 5.0)
                except (TimeoutError, RuntimeError):
                    pass
            await self._tasks.cancel_all()
        finally:
            if self._ontime is not None:
                self._ontime.exit()
