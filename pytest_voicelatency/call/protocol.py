"""The contract between a voice agent and the simulated caller: a few methods, three events.

Why so small: the same agent must be drivable by our in-process caller today and by a Pipecat
pipeline or a LiveKit session wrapper later (see ``docs/agents.md``). So the agent sees only what a
phone line gives it:

* inbound: :meth:`VoiceAgent.receive` gets one 16-bit little-endian mono PCM frame at a time
  (20 ms at 16 kHz by default, see :class:`AudioFormat`), paced in real time by the caller;
* outbound: the agent calls :meth:`AgentSession.emit` with one of a closed set of frozen events —
  :class:`AgentAudio` (PCM to play), :class:`AgentClear` (empty the client's playout buffer, as
  Twilio's ``clear`` or a WebRTC track flush do) and :class:`AgentState` (a label such as
  ``"thinking"`` a script can barge in on). The caller stamps each event once, on arrival;
* time: the session hands the agent the call's :class:`~pytest_voicelatency.clock.Clock`. An agent
  that reads time and sleeps only through it sets ``honours_clock = True``; only such agents can
  run on a virtual clock. Others run in real time and the caller refuses a virtual clock for them.

**Sample instants.** An inbound frame's last sample is "spoken" at the instant the caller sends the
frame; sample ``j`` of an ``n``-sample frame sent at ``t`` was spoken at ``t - (n - j) / rate``
(:func:`sample_instant_ns`). The caller's ground truth and an agent's own stamps use the same rule,
so both sides agree to the sample on when the user started or stopped talking.

>>> fmt = AudioFormat()
>>> fmt.frame_samples, fmt.frame_bytes
(320, 640)
>>> check_event(AgentAudio(bytes(640), 16_000), fmt).shape
(320,)
>>> sample_instant_ns(1_000_000_000, 320, 0, 16_000)   # first sample of a frame sent at t=1 s
980000000
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from pytest_voicelatency.errors import VoiceLatencyError, VoiceLatencyUsageError

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from pytest_voicelatency.clock import Clock

__all__ = ["AudioFormat", "AgentAudio", "AgentClear", "AgentState", "AgentEvent", "AgentSession",
           "VoiceAgent", "AgentProtocolError", "AgentTimeoutError", "SessionTasks", "check_agent",
           "check_event", "sample_instant_ns"]

_T = TypeVar("_T")


class AgentProtocolError(VoiceLatencyError):
    """The agent broke the contract (a malformed event, a missing method); the message says how."""


class AgentTimeoutError(VoiceLatencyError):
    """The agent did not do something in time (answer a turn, start, close); names the turn."""


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """The line's audio: mono 16-bit PCM at ``sample_rate``, inbound frames of ``frame_ms``."""

    sample_rate: int = 16_000
    frame_ms: int = 20

    def __post_init__(self) -> None:
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) \
                or self.sample_rate <= 0:
            raise VoiceLatencyUsageError(
                f"AudioFormat sample_rate must be a positive int of Hz (e.g. 16000), "
                f"got {self.sample_rate!r}")
        size = self.sample_rate * self.frame_ms / 1000
        if isinstance(self.frame_ms, bool) or not isinstance(self.frame_ms, int) \
                or self.frame_ms <= 0 or not size.is_integer():
            raise VoiceLatencyUsageError(
                f"AudioFormat frame_ms={self.frame_ms!r} is not a whole number of samples at "
                f"{self.sample_rate} Hz; use a positive int such as 10 or 20")

    @property
    def frame_samples(self) -> int:
        return self.sample_rate * self.frame_ms // 1000

    @property
    def frame_bytes(self) -> int:
        return 2 * self.frame_samples

    @property
    def frame_ns(self) -> int:
        return self.frame_ms * 1_000_000


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """Agent audio to play: 16-bit little-endian PCM, ``channels`` interleaved, any length."""

    pcm: bytes
    sample_rate: int
    channels: int = 1


@dataclass(frozen=True, slots=True)
class AgentClear:
    """Empty the client's playout buffer now: queued agent audio is dropped, not played."""

    reason: str = "barge_in"


@dataclass(frozen=True, slots=True)
class AgentState:
    """A label for what the agent is doing (``"thinking"``, ``"speaking"``...); never timed."""

    state: str


AgentEvent = AgentAudio | AgentClear | AgentState


@runtime_checkable
class AgentSession(Protocol):
    """What the caller hands an agent for one call."""

    @property
    def session_id(self) -> str: ...

    @property
    def format(self) -> AudioFormat: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def tracer(self) -> Tracer | None:
        """The tracer to use, or None for the global provider's (either is captured)."""
        ...

    def emit(self, event: AgentEvent) -> None:
        """Send one event to the caller; it is stamped on arrival. Call from the event loop."""
        ...

    def fail(self, error: BaseException) -> None:
        """Report an error from a background task: the call is torn down and the error raised."""
        ...


@runtime_checkable
class VoiceAgent(Protocol):
    """One agent instance serves one call (a session).

    ``start`` is awaited once before the first frame; ``receive`` once per inbound frame, in
    order, and must return promptly (queue the frame and work in your own task, as a socket buffer
    would: time spent inside ``receive`` delays the caller and shows as pacing lateness);
    ``close`` is awaited once at the end of the call, even after an error, and must be idempotent.
    """

    honours_clock: bool

    async def start(self, session: AgentSession) -> None: ...

    async def receive(self, pcm: bytes) -> None: ...

    async def close(self) -> None: ...


class SessionTasks:
    """The background tasks of one agent session: a task that fails ends the call.

    Why: an agent does its work in its own tasks (``receive`` must return promptly), and an
    exception in a task nobody awaits is lost — the call would just go quiet until a timeout. A
    task spawned here that raises is reported with ``session.fail(exc)``, so the caller tears the
    call down and raises that error from the test; a cancelled task is not a failure.

    Make one in the agent's ``__init__`` (so ``close()`` works even if ``start()`` never ran), set
    :attr:`session` in ``start()``, :meth:`spawn` work from then on, and ``await``
    :meth:`cancel_all` in ``close()``. Not thread-safe: use it from the event loop only.

    >>> import asyncio
    >>> class Line:  # stands in for the caller's AgentSession
    ...     def fail(self, error): print("call ended by", repr(error))
    >>> async def call():
    ...     tasks = SessionTasks(Line())
    ...     async def asr(): raise ConnectionError("ASR socket closed")
    ...     await asyncio.gather(tasks.spawn(asr()), return_exceptions=True)
    ...     idle = tasks.spawn(asyncio.Event().wait())
    ...     await tasks.cancel_all()   # what close() does: a cancelled task is no failure
    ...     return idle.cancelled()
    >>> asyncio.run(call())
    call ended by ConnectionError('ASR socket closed')
    True
    """

    def __init__(self, session: AgentSession | None = None) -> None:
        self.session = session
        # a dict, not a set: tasks are cancelled in the order they were spawned, so a call on
        # virtual time tears down the same way every run (a set would order them by address)
        self._tasks: dict[asyncio.Task[Any], None] = {}

    def spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """Run ``coro`` as a task of this session; it is forgotten once done."""
        if self.session is None:
            coro.close()
            raise VoiceLatencyUsageError(
                "SessionTasks.spawn() before its session is set: set tasks.session = session in "
                "start() (or pass it to SessionTasks(session)) first")
        task = asyncio.ensure_future(coro)
        self._tasks[task] = None
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)
        error = None if task.cancelled() else task.exception()
        if error is not None and self.session is not None:
            self.session.fail(error)

    async def cancel_all(self) -> None:
        """Cancel every running task and wait until all have finished (errors are dropped)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def check_agent(agent: object) -> None:
    """Raise :class:`AgentProtocolError` naming the first missing or non-async method."""
    for name in ("start", "receive", "close"):
        method = getattr(agent, name, None)
        if method is None or not inspect.iscoroutinefunction(method):
            what = "is missing" if method is None else "is not an `async def` method"
            raise AgentProtocolError(
                f"{type(agent).__name__}.{name} {what}: a VoiceAgent needs `async def start(self, "
                f"session)`, `async def receive(self, pcm)` and `async def close(self)` "
                f"(see docs/agents.md)")


def check_event(event: object, fmt: AudioFormat, *, decode: bool = True) -> np.ndarray | None:
    """Validate an emitted event; return the decoded float32 samples of an :class:`AgentAudio`
    (None with ``decode=False``: validated only)."""
    if isinstance(event, (AgentClear, AgentState)):
        if isinstance(event, AgentState) and not (isinstance(event.state, str) and event.state):
            raise AgentProtocolError(
                f"AgentState.state must be a non-empty string, got {event.state!r}")
        return None
    if not isinstance(event, AgentAudio):
        raise AgentProtocolError(
            f"emit() got {type(event).__name__} {event!r:.60}; emit one of AgentAudio(pcm, "
            f"sample_rate), AgentClear() or AgentState(name)")
    pcm = event.pcm
    if isinstance(pcm, np.ndarray):
        raise AgentProtocolError(
            f"AgentAudio.pcm is a numpy {pcm.dtype} array; send 16-bit little-endian PCM bytes, "
            f"e.g. pytest_voicelatency.audio.clips.to_pcm16(samples)")
    if not isinstance(pcm, (bytes, bytearray, memoryview)):
        raise AgentProtocolError(
            f"AgentAudio.pcm is {type(pcm).__name__}, not bytes; send 16-bit little-endian PCM")
    if event.sample_rate != fmt.sample_rate:
        raise AgentProtocolError(
            f"AgentAudio at {event.sample_rate!r} Hz on a {fmt.sample_rate} Hz line; resample "
            f"(pytest_voicelatency.audio.clips.resample) or start the caller with that rate")
    if event.channels != 1:
        raise AgentProtocolError(
            f"AgentAudio has {event.channels!r} channels; the line is mono: mix down before "
            f"sending")
    size = len(pcm)
    if size == 0 or size % 2:
        raise AgentProtocolError(
            f"AgentAudio.pcm has {size} bytes; 16-bit PCM needs a positive, even number of bytes "
            f"(2 per sample)")
    if not decode:
        return None
    return (np.frombuffer(bytes(pcm), dtype="<i2") / np.float32(32768.0)).astype(np.float32)


def sample_instant_ns(frame_sent_ns: int, frame_samples: int, index: int, sample_rate: int) -> int:
    """The instant sample ``index`` of a frame was spoken, given the frame's send instant."""
    return frame_sent_ns - (frame_samples - index) * 1_000_000_000 // sample_rate
