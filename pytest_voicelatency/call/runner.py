"""One call, run: the line handed to the agent, the paced microphone, and the script's steps.

Why a module of its own: :mod:`pytest_voicelatency.call.caller` decides *which* calls to run and
what to do with their results (retry, warn, emit spans); this module is the part that has to be
right to the millisecond while a call is live. A :class:`CallRun` owns one attempt at one call:

* the *line* (:class:`~pytest_voicelatency.call.protocol.AgentSession`) the agent emits into:
  every event is stamped on arrival in the :class:`~pytest_voicelatency.call.log.CallLog`
  before it is checked, and its audio is fed to the
  :class:`~pytest_voicelatency.call.playout.Playout` model;
* the *pacer*: inbound frames are sent on absolute deadlines of the injected clock (frame ``k``
  at ``origin + (k + 1) * frame``), each logged with its deadline, wake-up and send instants, so
  lateness is measured, never assumed; the caller never reads time or sleeps any other way;
* the *script*: each step places clips on the microphone or waits, on the same clock, for what
  the listener hears (a reply becoming audible, playback settling after a barge-in).

It records; it does not measure: :func:`~pytest_voicelatency.call.metrics.measure` derives every
number from the finished log.

**No hang, ever.** Every await on agent code is bounded (``agent_timeout_ms``). A task that is
cancelled on timeout, or left running when the calls end, gets ``grace_ms`` of real time (a
thread's timer, so a task spinning on a virtual loop cannot hold it up) to finish; one that
ignores its cancellation is *abandoned* (:func:`abandon`): it never runs again, nothing waits
for it (``asyncio.run``'s final cancel-all and the loop's close included), and it is never
garbage-collected either, because closing a coroutine that swallows ``BaseException`` can run
its ``except`` clause forever. The error names the agent class and the coroutine.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import threading
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import numpy as np

from pytest_voicelatency.audio.clips import gain
from pytest_voicelatency.call.log import CallLog, Expectation, FrameSent, Note, Utterance
from pytest_voicelatency.call.metrics import NOT_LANDED, speech_instant_ns
from pytest_voicelatency.call.playout import Playout, PlayoutConfig
from pytest_voicelatency.call.protocol import (
    AgentAudio,
    AgentClear,
    AgentEvent,
    AgentState,
    AgentTimeoutError,
    AudioFormat,
    VoiceAgent,
    check_event,
)
from pytest_voicelatency.call.script import (
    Answer,
    Background,
    BargeIn,
    Pause,
    Say,
    Step,
    describe,
    resolve_clip,
)
from pytest_voicelatency.errors import VoiceLatencyError, VoiceLatencyUsageError
from pytest_voicelatency.vclock import VirtualClock

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from pytest_voicelatency.audio.clips import Clip
    from pytest_voicelatency.clock import Clock

__all__ = ["CallRun", "abandon", "outlast", "sweep", "task_name"]

#: Name prefix of the harness's own helper threads (real-time bounds of agent awaits), which
#: checks for threads an agent starts during a virtual call leave out.
HARNESS_THREAD = "pytest-voicelatency "

_T = TypeVar("_T")


def task_name(task: asyncio.Future[Any]) -> str:
    """``Agent.method() at file:line`` for a task: who to blame for it."""
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    if coro is None:
        return repr(task)
    name = getattr(coro, "__qualname__", None) or repr(coro)
    frame = getattr(coro, "cr_frame", None)
    if frame is None:
        return f"{name}()"
    return f"{name}() at {frame.f_code.co_filename}:{frame.f_lineno}"


def _poke(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    def wake() -> None:
        if not future.done():
            future.set_result(None)
    try:
        loop.call_soon_threadsafe(wake)
    except RuntimeError:  # the loop closed meanwhile: nobody waits any more
        pass


async def outlast(tasks: Collection[asyncio.Future[Any]], grace_s: float) -> None:
    """Wait until every task is done or ``grace_s`` of real time passed, whichever is first.

    The deadline is a thread's timer, not the loop's: on a virtual loop a task that spins
    (catches its cancellation and awaits again at once) keeps virtual time from passing.
    """
    pending = [t for t in tasks if not t.done()]
    if not pending:
        return
    loop = asyncio.get_running_loop()
    expired: asyncio.Future[None] = loop.create_future()
    timer = threading.Timer(grace_s, _poke, (loop, expired))
    timer.name = f"{HARNESS_THREAD}grace"
    timer.daemon = True
    timer.start()
    try:
        while pending and not expired.done():
            await asyncio.wait([expired, *pending], return_when=asyncio.FIRST_COMPLETED)
            pending = [t for t in pending if not t.done()]
    finally:
        timer.cancel()
        if not expired.done():
            expired.cancel()


def abandon(task: asyncio.Future[Any]) -> None:
    """Make a task that ignored its cancellation harmless without waiting for it.

    Its pending step and wake-ups are removed, so it never runs again; it is marked done, so
    ``asyncio.run``'s final cancel-all and ``gather`` do not wait for it; and one reference is
    leaked on purpose, so its coroutine is never closed (a coroutine that catches
    ``BaseException`` and awaits again would swallow the ``GeneratorExit`` and the
    "Event loop is closed" errors that follow, and spin in the garbage collector or at
    interpreter shutdown). The cost: the task's memory, once.
    """
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(task))
    loop = task.get_loop()
    for handle in list(getattr(loop, "_ready", ())):
        if getattr(getattr(handle, "_callback", None), "__self__", None) is task:
            handle.cancel()
    waiter = getattr(task, "_fut_waiter", None)
    if isinstance(waiter, asyncio.Future):
        for callback, _ in list(getattr(waiter, "_callbacks", None) or ()):
            if getattr(callback, "__self__", None) is task:
                waiter.remove_done_callback(callback)
    if not task.done():
        try:
            asyncio.Future.set_result(task, None)  # the Future's own method: a Task refuses it
        except (TypeError, RuntimeError, asyncio.InvalidStateError):
            pass


async def sweep(grace_s: float) -> tuple[list[str], list[str]]:
    """Cancel every task of the running loop still running when the calls ended (an agent's
    leftovers); abandon those that ignore it for ``grace_s``. Returns the reprs of the tasks
    found running and the names (:func:`task_name`) of the abandoned ones."""
    me = asyncio.current_task()
    for _ in range(3):  # let tasks that are finishing finish before calling the rest leaks
        await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    found = [repr(t) for t in left]
    for task in left:
        task.cancel()
    await outlast(left, grace_s)
    stubborn = [t for t in left if not t.done()]
    names = [task_name(t) for t in stubborn]
    for task in stubborn:
        abandon(task)
    return found, names


class _Line:
    """The caller's end of the line: the agent's
    :class:`~pytest_voicelatency.call.protocol.AgentSession`."""

    def __init__(self, log: CallLog, clock: Clock, tracer: Tracer | None,
                 changed: Callable[[], None]) -> None:
        self.session_id = log.session_id
        self.format = log.format
        self.clock = clock
        self.tracer = tracer
        self.log = log
        self.playout = Playout(log.playout, log.format.sample_rate)
        self.states: list[tuple[int, str]] = []
        self.error: BaseException | None = None
        self._changed = changed

    def emit(self, event: AgentEvent) -> None:
        entry = self.log.receive(event)  # stamped first, before anything else
        if entry is None:
            return
        try:
            check_event(event, self.format, decode=False)
        except VoiceLatencyError as exc:
            self.fail(exc)
            raise
        if isinstance(event, AgentAudio):
            self.playout.audio_pcm(entry.arrived_ns, event.pcm)
        elif isinstance(event, AgentClear):
            self.playout.clear(entry.arrived_ns)
        elif isinstance(event, AgentState):
            self.states.append((entry.arrived_ns, event.state))
        self._changed()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._changed()


class _Mic:
    """The inbound stream: placed clips and a looping background, summed frame by frame.

    Every source is PCM-encoded once, when it is placed (clipping and encoding act sample by
    sample, so a slice of the encoded source is the encoded slice). A frame where no two
    sources overlap is those slices and silence, joined as bytes; only samples where sources
    overlap are summed in float32 (in the same order: background, then clips as placed) and
    encoded, into preallocated buffers. A frame with nothing is shared silence.
    """

    def __init__(self, fmt: AudioFormat) -> None:
        self.n = fmt.frame_samples
        self.placed: list[tuple[int, np.ndarray, bytes]] = []
        self.background: tuple[int, np.ndarray, bytes] | None = None
        self._silence = bytes(2 * self.n)
        self._out = np.empty(self.n, np.float32)

    def place(self, start: int, samples: np.ndarray) -> None:
        self.placed.append((start, samples, _encode(samples)))

    def loop(self, start: int, samples: np.ndarray | None) -> None:
        """Loop ``samples`` from stream sample ``start`` on (None: no background)."""
        self.background = None if samples is None or samples.size == 0 else \
            (start, samples, _encode(samples))

    def frame(self, index: int) -> bytes:
        n = self.n
        lo, hi = index * n, (index + 1) * n
        placed = self.placed
        if placed and any(p[0] + p[1].size <= lo for p in placed):
            placed = self.placed = [p for p in placed if p[0] + p[1].size > lo]
        live = [p for p in placed if p[0] < hi]
        bg = self.background
        if bg is not None and hi <= bg[0]:
            bg = None
        if not live:
            if bg is None:
                return self._silence
            start, bed, pcm = bg
            first = max(lo, start)
            offset, count = (first - start) % bed.size, hi - first
            if offset + count <= bed.size:  # one slice of the encoded bed, no wrap
                return self._silence[:2 * (first - lo)] + pcm[2 * offset:2 * (offset + count)]
        elif bg is None and len(live) == 1:
            start, samples, pcm = live[0]
            a, b = max(start, lo), min(start + samples.size, hi)
            if a == lo and b == hi:
                return pcm[2 * (lo - start):2 * (hi - start)]
            return self._silence[:2 * (a - lo)] + pcm[2 * (a - start):2 * (b - start)] + \
                self._silence[:2 * (hi - b)]
        out = self._out
        out.fill(0.0)
        if bg is not None:
            start, bed, _ = bg
            first = max(lo, start)
            offset, count = (first - start) % bed.size, hi - first
            if offset + count <= bed.size:  # one slice of the looping bed, no wrap
                out[first - lo:] += bed[offset:offset + count]
            else:
                positions = np.arange(first, hi)
                out[positions - lo] += bed[(positions - start) % bed.size]
        for start, samples, _ in live:
            a, b = max(start, lo), min(start + samples.size, hi)
            out[a - lo:b - lo] += samples[a - start:b - start]
        return _encode_in_place(out)


def _encode(samples: np.ndarray) -> bytes:
    """``to_pcm16(np.clip(samples, -1, 1))``: what the microphone sends for these samples."""
    return _encode_in_place(np.array(samples, np.float32))


def _encode_in_place(x: np.ndarray) -> bytes:
    """:func:`~pytest_voicelatency.audio.clips.to_pcm16` of ``x`` clipped to [-1, 1], using
    ``x`` (float32) as the buffer: the same arithmetic, in place (clip is max-then-min; after
    it, rounding ``x * 32768`` can only overflow upwards)."""
    np.maximum(x, -1.0, out=x)
    np.minimum(x, 1.0, out=x)
    np.multiply(x, 32768.0, out=x)
    np.rint(x, out=x)
    np.minimum(x, 32767.0, out=x)
    return x.astype("<i2").tobytes()


class CallRun:
    """One attempt at one call: pacer and script tasks around one agent.

    The settings are the :class:`~pytest_voicelatency.call.caller.Caller`'s; ``offset_ns`` shifts
    the call's time zero (concurrent calls are staggered so their frames are not aligned).
    """

    def __init__(self, agent: VoiceAgent, steps: tuple[Step, ...], session_id: str,
                 playout: PlayoutConfig, offset_ns: int, *, clock: Clock, format: AudioFormat,
                 tracer: Tracer | None, agent_timeout_ms: float,
                 unanswered: Literal["missed", "raise"] = "missed", grace_ms: float = 2000.0
                 ) -> None:
        self.agent, self.steps = agent, steps
        self.unanswered = unanswered
        self.grace_ms = grace_ms
        self.clock = clock
        self.fmt = format
        self.agent_timeout_ms = agent_timeout_ms
        self.offset_ns = offset_ns
        self.log = CallLog(session_id, self.fmt, playout, self.clock)
        self.line = _Line(self.log, self.clock, tracer, self._changed)
        self.mic = _Mic(self.fmt)
        self.sent = 0  # frames sent so far
        self.turn = 0
        self.where = ""
        self._waiter: asyncio.Future[None] | None = None  # the script's current wait
        self._frame_goal: int | None = None  # ... which also ends when this many frames are out

    # -------------------------------------------------------------- plumbing

    def _now(self) -> int:
        return self.clock.now_ns()

    def _changed(self) -> None:
        """Something the script may wait for happened: a frame went out, an event came in."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _timer(self, deadline_ns: int, callback: Callable[[], None]) -> Callable[[], object]:
        """Call ``callback`` at ``deadline_ns`` of the call's clock; return a cancel function.

        A handle on the loop when the clock offers one (no task per wait: waits happen once
        per frame), else a task sleeping on the clock.
        """
        call_at = getattr(self.clock, "call_at", None)
        if call_at is not None:
            return cast("asyncio.TimerHandle", call_at(deadline_ns, callback)).cancel

        async def sleeper() -> None:
            await self.clock.sleep_until(deadline_ns)
            callback()

        return asyncio.ensure_future(sleeper()).cancel

    async def _until(self, check: Callable[[], bool | int], deadline_ns: int | None, *,
                     frames: int | None = None) -> bool:
        """Wait until ``check()`` holds (True) or the deadline passes (False).

        ``check`` returns True, False, or an instant (int ns) at which to look again: what the
        listener hears is known ahead (audio plays after it arrives), so the script sleeps to
        that instant instead of polling. It is also re-checked whenever an agent event arrives
        and, with ``frames``, once that many inbound frames were sent.
        """
        cancel: Callable[[], object] | None = None
        armed: int | None = None
        try:
            while True:
                if self.line.error is not None:
                    raise self.line.error
                result = check()
                if result is True:
                    return True
                now = self._now()
                if deadline_ns is not None and now >= deadline_ns:
                    return False
                wake = deadline_ns
                if type(result) is int and (wake is None or result < wake):
                    wake = max(result, now + 1)
                if wake != armed:
                    if cancel is not None:
                        cancel()
                    cancel, armed = (None, None) if wake is None else \
                        (self._timer(wake, self._changed), wake)
                self._frame_goal = frames
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
                if armed is not None and self._now() >= armed:
                    armed = None  # the timer fired (a real one may fire a hair early): re-arm
        finally:
            self._waiter = None
            self._frame_goal = None
            if cancel is not None:
                cancel()

    async def _bounded(self, awaitable: Awaitable[_T], ms: float, what: str) -> _T:
        task = asyncio.ensure_future(awaitable)
        settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def settle(*_: object) -> None:
            if not settled.done():
                settled.set_result(None)

        task.add_done_callback(settle)
        cancel = self._timer(self._now() + round(ms * 1e6), settle)
        # on a virtual clock, agent code that spins (awaits again at once, forever) keeps
        # virtual time from passing: the same bound in real time, from a thread, ends the wait
        watchdog = threading.Timer(ms / 1000, _poke, (asyncio.get_running_loop(), settled)) \
            if self.clock.is_virtual else None
        if watchdog is not None:
            watchdog.daemon = True
            watchdog.name = f"{HARNESS_THREAD}watchdog"
            watchdog.start()
        try:
            await settled
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            cancel()
            if watchdog is not None:
                watchdog.cancel()
        if not task.done():
            task.cancel()
            await outlast([task], self.grace_ms / 1000)
            if not task.done():
                name = task_name(task)
                abandon(task)
                raise AgentTimeoutError(
                    f"session {self.log.session_id}: {what} did not return within {ms:g} ms "
                    f"and ignored its cancellation for {self.grace_ms:g} ms more: abandoned "
                    f"{name} (it catches CancelledError/BaseException and goes on; let "
                    f"CancelledError propagate)")
            raise AgentTimeoutError(f"session {self.log.session_id}: {what} did not return within "
                                    f"{ms:g} ms; it must not block (do long work in a task)")
        return task.result()

    async def _pace(self) -> None:
        frame_ns, origin = self.fmt.frame_ns, self.log.origin_ns
        while True:
            deadline = origin + (self.sent + 1) * frame_ns
            woke = await self.clock.sleep_until(deadline)
            pcm = self.mic.frame(self.sent)
            self.log.append(FrameSent(self.sent, deadline, woke, self._now()))
            self.sent += 1
            if self._frame_goal is not None and self.sent >= self._frame_goal:
                self._changed()
            await self.agent.receive(pcm)

    async def _send_through(self, sample: int, deadline_ns: int) -> bool:
        """Wait until the frame holding stream sample ``sample - 1`` was sent."""
        goal = -(-sample // self.fmt.frame_samples)
        return await self._until(lambda: self.sent >= goal, deadline_ns, frames=goal)

    def _settled(self, onset: int) -> Callable[[], bool | int]:
        """A check: the sound playing at ``onset`` stopped for good (else when it might have)."""
        playout = self.line.playout

        def check() -> bool | int:
            if playout.settled(onset, self._now()) is not None:
                return True
            return playout.silent_from(onset) + playout.hold_ns

        return check

    def _next_sample(self) -> int:
        # frame `sent` is built only after the pacer wakes, with no await in between: a clip
        # placed now at its first sample is in it
        return self.sent * self.fmt.frame_samples

    def _slack_ns(self, samples: int) -> int:
        """A deadline for sending ``samples``: their duration plus the agent timeout."""
        return (self._now() + samples * 1_000_000_000 // self.fmt.sample_rate
                + round(self.agent_timeout_ms * 1e6))

    # -------------------------------------------------------------- steps

    def _place(self, clip: Clip, start: int, role: Literal["say", "barge_in"],
               target_ns: int | None = None, skip: int = 0) -> Utterance:
        if clip.onset_ms is None or clip.offset_ms is None:
            raise VoiceLatencyUsageError(
                f"{self.where}: clip {clip.name!r} has no ground truth (onset_ms/offset_ms), so no "
                f"latency can be measured from it; use background() for noise, or set them with "
                f"dataclasses.replace(clip, onset_ms=..., offset_ms=...)")
        rate = self.fmt.sample_rate
        self.turn += 1
        samples = clip.samples[skip:]  # skip: leading silence cut so a late barge-in lands on time
        self.mic.place(start, samples)
        onset = round(clip.onset_ms * rate / 1000)
        offset = max(round(clip.offset_ms * rate / 1000), onset + 1)
        speech = bool(np.any(np.abs(clip.samples[onset:offset]) > self.log.playout.threshold))
        utterance = Utterance(str(self.turn), role, clip.name, start, start + samples.size,
                              start - skip + onset, start - skip + round(clip.offset_ms * rate
                                                                          / 1000), target_ns,
                              clip.kind, speech)
        self.log.append(utterance)
        return utterance

    async def _spoken(self, utterance: Utterance) -> None:
        slack = self._slack_ns(utterance.end_sample - utterance.start_sample)
        if not await self._send_through(utterance.end_sample, slack):
            raise AgentTimeoutError(f"session {self.log.session_id} {self.where}: the caller could "
                                    f"not send the clip in time: the agent's receive() is blocking")

    def _said(self) -> int:
        """Ground-truth end of the latest user utterance (its frames are all sent)."""
        utterance = self.log.utterance(str(self.turn))
        assert utterance is not None and utterance.offset_sample is not None
        said = speech_instant_ns(self.log, utterance.offset_sample, end=True)
        assert said is not None
        return said

    def _timeout(self, what: str, ms: float) -> AgentTimeoutError:
        return AgentTimeoutError(
            f"session {self.log.session_id} turn {self.turn}: {what} within {ms:g} ms after the "
            f"user stopped speaking ({self.where}); check that the agent emits AgentAudio for "
            f"this turn, or raise timeout_ms")

    async def _say(self, step: Say) -> None:
        clip = resolve_clip(step.clip, self.fmt.sample_rate, self.where)
        await self._spoken(self._place(clip, self._next_sample(), "say"))

    async def _answer(self, step: Answer) -> None:
        said = self._said()
        self.log.append(Expectation("response", str(self.turn), step.timeout_ms, self._now(),
                                    self.where))
        playout = self.line.playout
        heard: list[int] = []

        def audible() -> bool | int:
            onset = playout.first_onset(said)
            if onset is None:
                return False
            if onset <= self._now():
                heard.append(onset)
                return True
            return onset  # it will be heard then, unless a clear comes first

        if not await self._until(audible, said + round(step.timeout_ms * 1e6)):
            required = step.required if step.required is not None else self.unanswered == "raise"
            if required:
                raise self._timeout(
                    "the agent's earlier audio was still playing and no new reply began "
                    "(its audio never paused for the playout hold_ms)" if playout.audible_at(said)
                    else "the agent did not answer", step.timeout_ms)
            return
        if step.until == "done":
            onset = heard[-1]
            if not await self._until(self._settled(onset), onset + round(step.max_reply_ms * 1e6)):
                self.log.append(Note(self._now(), str(self.turn), (
                    f"the agent's reply was still playing {step.max_reply_ms:g} ms after it "
                    f"became audible (answer max_reply_ms, {self.where}); the script went on "
                    f"over it: raise max_reply_ms if a reply is meant to be that long")))

    async def _barge_in(self, step: BargeIn) -> None:
        clip = resolve_clip(step.clip, self.fmt.sample_rate, self.where)
        said, playout = self._said(), self.line.playout
        start_of_turn = said - 60_000_000_000
        utterance = self.log.utterance(str(self.turn))
        if utterance is not None:
            start_of_turn = speech_instant_ns(self.log, utterance.start_sample) or start_of_turn

        def reference() -> int | None:
            if step.at_state is not None:
                return next((t for t, s in self.line.states
                             if s == step.at_state and t >= start_of_turn), None)
            return playout.first_onset(said)

        if not await self._until(lambda: reference() is not None,
                                 said + round(step.timeout_ms * 1e6)):
            what = (f"the agent never reported state {step.at_state!r}" if step.at_state else
                    f"the agent never became audible, so {NOT_LANDED}")
            if self.unanswered == "raise":
                raise self._timeout(what, step.timeout_ms)
            self.log.append(Note(self._now(), str(self.turn + 1), (
                f"{what} within {step.timeout_ms:g} ms after the user stopped speaking "
                f"({self.where}); the barge-in was not spoken: no barge-in sample")))
            return
        rate = self.fmt.sample_rate
        if clip.onset_ms is None:
            self._place(clip, 0, "barge_in")  # raises: no ground truth
        assert clip.onset_ms is not None
        before = round(clip.onset_ms * rate / 1000)  # samples of the clip before its speech onset
        early = 2 * self.fmt.frame_ns + before * 1_000_000_000 // rate
        after = round(step.after_ms * 1e6)
        def due() -> bool | int:  # a clip is placed two frames ahead of its sample's deadline
            at = (reference() or 0) + after - early
            return self._now() >= at or at

        await self._until(due, (reference() or 0) + after - early)
        target = (reference() or 0) + after
        wanted = math.ceil((target - self.log.origin_ns) * rate / 1e9) - before
        start = max(wanted, self._next_sample())
        skip = min(start - wanted, max(before - 1, 0))  # late: drop leading silence, not speech
        utterance = self._place(clip, start, "barge_in", target, skip)
        self.log.append(Expectation("barge_in", str(self.turn), step.stop_timeout_ms, self._now(),
                                    self.where))
        await self._spoken(utterance)
        if not utterance.speech:
            return  # nothing was said: nothing to wait for (measured as no_onset)
        assert utterance.onset_sample is not None
        onset = speech_instant_ns(self.log, utterance.onset_sample)
        assert onset is not None
        await self._until(self._settled(onset), onset + round(step.stop_timeout_ms * 1e6))

    async def _pause(self, step: Pause) -> None:
        end = self._next_sample() + round(step.ms * self.fmt.sample_rate / 1000)
        await self._send_through(end, self._slack_ns(end - self._next_sample()))

    def _background(self, step: Background) -> None:
        if step.clip is None:
            self.mic.loop(0, None)
            return
        clip = gain(resolve_clip(step.clip, self.fmt.sample_rate, self.where), step.gain_db)
        self.mic.loop(self._next_sample(), clip.samples)

    async def _script(self) -> None:
        for index, step in enumerate(self.steps, 1):
            self.where = f"script step {index}: {describe(step)}"
            if isinstance(step, Say):
                await self._say(step)
            elif isinstance(step, Answer):
                await self._answer(step)
            elif isinstance(step, BargeIn):
                await self._barge_in(step)
            elif isinstance(step, Pause):
                await self._pause(step)
            else:
                self._background(step)

    async def run(self) -> BaseException | None:
        """Run the call; return the error that ended it (the log is complete either way).

        On a :class:`~pytest_voicelatency.vclock.VirtualClock` the clock's complaints (the
        loop was blocked, the wall clock was read) fail this call like an agent error.
        """
        if isinstance(self.clock, VirtualClock):
            label = f"{type(self.agent).__name__} in session {self.log.session_id}"
            with self.clock.watch(self.line.fail, label):
                return await self._run()
        return await self._run()

    async def _run(self) -> BaseException | None:
        error: BaseException | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._bounded(self.agent.start(self.line), self.agent_timeout_ms,
                                f"{type(self.agent).__name__}.start()")
            self.log.origin_ns = self._now() + self.offset_ns  # time zero: after start()
            tasks = [asyncio.ensure_future(self._pace()), asyncio.ensure_future(self._script())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:  # in order, not as a set: the same call must end the same way
                if task.done():
                    task.result()
            if self.line.error is not None:
                raise self.line.error
        except Exception as exc:
            error = exc
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            self.log.end("done" if error is None else type(error).__name__)
            try:
                await self._bounded(self.agent.close(), self.agent_timeout_ms,
                                    f"{type(self.agent).__name__}.close()")
            except Exception as exc:
                error = error or exc
        if error is not None and self.where and hasattr(error, "add_note"):
            error.add_note(f"in session {self.log.session_id}, {self.where}")
        return error
