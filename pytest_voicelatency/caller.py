"""The simulated caller: talks to a voice agent in real time and measures what a listener hears.

Why black-box: an agent's own spans say what it *did*; the user hears something else (the seeds'
barge-in felt like 500 ms although the agent cancelled fast, because audio already shipped kept
playing). So the caller streams recorded speech at real-time pace, plays the agent's audio through
an explicit client model (:mod:`pytest_voicelatency.playout`), logs everything
(:mod:`pytest_voicelatency.calllog`) and, after the call, derives its measurements
(:mod:`pytest_voicelatency.callmetrics`) and emits them as spans next to the agent's own:

* ``caller.response`` (``latency_ms``, plus the naive ``arrival_ms``), ``caller.barge_in``
  (``latency_ms``, ``tail_ms``) — one per measured turn;
* ``caller.playout`` (``jitter_ms``, ``buffer_ms``, ``underruns``) and ``caller.pacing``
  (``lateness_p50_ms``/``p99``/``max`` and the event loop's ``wake_*``) — one per call.

All carry ``audio.source="caller"``, the session id and turn id. A missed or censored sample says
so (``audio.outcome``); when the caller fell behind real time (p99 frame lateness above
``pacing_limit_ms``) every sample of the call carries ``audio.reliable=False``. With the
``unreliable="retry"`` policy such a call is run again (agent factories only), up to
``max_attempts``.

Inbound frames are paced on absolute deadlines of the injected clock; the caller never reads time
or sleeps any other way.

>>> from pytest_voicelatency.fixtures import simulated_caller
>>> from pytest_voicelatency.oracle import OracleAgent, tone_clip
>>> from pytest_voicelatency.script import answer, barge_in, say
>>> with simulated_caller() as caller:
...     result = caller.run(OracleAgent(), [say(tone_clip()), answer(until="audible"),
...                                         say(tone_clip()), barge_in(tone_clip(), after_ms=200)])
>>> [m.outcome for m in result.metrics.responses + result.metrics.barge_ins]
['ok', 'ok']
"""

from __future__ import annotations

import asyncio
import math
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from .audio import gain, to_pcm16
from .agent import (AgentAudio, AgentClear, AgentEvent, AgentState, AudioFormat, VoiceAgent,
                    check_agent, check_event)
from .calllog import CallLog, Expectation, FrameSent, Utterance
from .callmetrics import CallMetrics, Measurement, caller_spans, measure, speech_instant_ns
from .clock import Clock, default_clock
from .errors import VoiceLatencyError, VoiceLatencyUsageError, VoiceLatencyWarning
from .playout import Playout, PlayoutConfig
from .script import (Answer, Background, BargeIn, Pause, Say, Step, check_script, describe,
                     resolve_clip)

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from .audio import Clip

__all__ = ["Caller", "CallResult", "AgentTimeoutError", "Policy"]

Policy = Literal["warn", "fail", "retry"]
AgentLike = VoiceAgent | Callable[[], VoiceAgent]
_T = TypeVar("_T")


class AgentTimeoutError(VoiceLatencyError):
    """The agent did not do something in time (answer a turn, start, close); names the turn."""


@dataclass(frozen=True)
class CallResult:
    """One finished call: its measurements, its log, and how many attempts it took."""

    session_id: str
    metrics: CallMetrics
    log: CallLog
    attempts: int = 1
    discarded: tuple[CallMetrics, ...] = ()

    @property
    def reliable(self) -> bool:
        return self.metrics.reliable

    def values(self, kind: Literal["response", "barge_in"] = "response") -> list[float]:
        """The ``ok`` values in ms (missed and censored ones are in ``metrics``, never here)."""
        items = self.metrics.responses if kind == "response" else self.metrics.barge_ins
        return [m.value_ms for m in items if m.outcome == "ok"]


class _Line:
    """The caller's end of the line: the :class:`~pytest_voicelatency.agent.AgentSession`."""

    def __init__(self, log: CallLog, clock: Clock, tracer: Tracer | None,
                 changed: asyncio.Event) -> None:
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
            samples = check_event(event, self.format)
        except VoiceLatencyError as exc:
            self.fail(exc)
            raise
        if isinstance(event, AgentAudio):
            assert samples is not None
            self.playout.audio(entry.arrived_ns, samples)
        elif isinstance(event, AgentClear):
            self.playout.clear(entry.arrived_ns)
        elif isinstance(event, AgentState):
            self.states.append((entry.arrived_ns, event.state))
        self._changed.set()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._changed.set()


class _Mic:
    """The inbound stream: placed clips and a looping background, summed frame by frame."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.n = fmt.frame_samples
        self.placed: list[tuple[int, np.ndarray]] = []
        self.background: tuple[int, np.ndarray] | None = None

    def frame(self, index: int) -> bytes:
        lo, hi = index * self.n, (index + 1) * self.n
        out = np.zeros(self.n, np.float32)
        if self.background is not None:
            start, bed = self.background
            if hi > start:
                positions = np.arange(max(lo, start), hi)
                out[positions - lo] += bed[(positions - start) % bed.size]
        keep = []
        for start, samples in self.placed:
            end = start + samples.size
            if start < hi and end > lo:
                a, b = max(start, lo), min(end, hi)
                out[a - lo:b - lo] += samples[a - start:b - start]
            if end > hi:
                keep.append((start, samples))
        self.placed = keep
        return to_pcm16(np.clip(out, -1.0, 1.0))


class _Call:
    """One attempt at one call: pacer and script tasks around one agent."""

    def __init__(self, caller: Caller, agent: VoiceAgent, steps: tuple[Step, ...],
                 session_id: str, playout: PlayoutConfig, offset_ns: int) -> None:
        self.caller, self.agent, self.steps = caller, agent, steps
        self.clock = caller.clock
        self.fmt = caller.format
        self.changed = asyncio.Event()
        self.offset_ns = offset_ns
        self.log = CallLog(session_id, self.fmt, playout, self.clock)
        self.line = _Line(self.log, self.clock, caller.tracer, self.changed)
        self.mic = _Mic(self.fmt)
        self.sent = 0  # frames sent so far
        self.turn = 0
        self.where = ""

    # -------------------------------------------------------------- plumbing

    def _now(self) -> int:
        return self.clock.now_ns()

    async def _until(self, predicate: Callable[[], bool], deadline_ns: int | None) -> bool:
        """Wait until ``predicate()`` holds (True) or the deadline passes (False)."""
        while True:
            if self.line.error is not None:
                raise self.line.error
            if predicate():
                return True
            if deadline_ns is not None and self._now() >= deadline_ns:
                return False
            self.changed.clear()
            waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self.changed.wait())}
            if deadline_ns is not None:
                waits.add(asyncio.ensure_future(self.clock.sleep_until(deadline_ns)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    async def _bounded(self, awaitable: Awaitable[_T], ms: float, what: str) -> _T:
        task = asyncio.ensure_future(awaitable)
        timer = asyncio.ensure_future(self.clock.sleep_until(self._now() + round(ms * 1e6)))
        try:
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if not task.done():
            task.cancel()
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
            self.changed.set()
            await self.agent.receive(pcm)

    def _sent_through(self, sample: int) -> Callable[[], bool]:
        return lambda: self.sent * self.fmt.frame_samples >= sample

    def _next_sample(self) -> int:
        # frame `sent` is built only after the pacer wakes, with no await in between: a clip
        # placed now at its first sample is in it
        return self.sent * self.fmt.frame_samples

    def _slack_ns(self, samples: int) -> int:
        """A deadline for sending ``samples``: their duration plus the agent timeout."""
        return (self._now() + samples * 1_000_000_000 // self.fmt.sample_rate
                + round(self.caller.agent_timeout_ms * 1e6))

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
        self.mic.placed.append((start, samples))
        utterance = Utterance(str(self.turn), role, clip.name, start, start + samples.size,
                              start - skip + round(clip.onset_ms * rate / 1000),
                              start - skip + round(clip.offset_ms * rate / 1000), target_ns)
        self.log.append(utterance)
        return utterance

    async def _spoken(self, utterance: Utterance) -> None:
        if not await self._until(self._sent_through(utterance.end_sample),
                                 self._slack_ns(utterance.end_sample - utterance.start_sample)):
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

        def audible() -> bool:
            onset = playout.first_onset(said)
            if onset is not None and onset <= self._now():
                heard.append(onset)
                return True
            return False

        if not await self._until(audible, said + round(step.timeout_ms * 1e6)):
            if step.required:
                raise self._timeout(
                    "the agent's earlier audio was still playing and no new reply began "
                    "(its audio never paused for the playout hold_ms)" if playout.audible_at(said)
                    else "the agent did not answer", step.timeout_ms)
            return
        if step.until == "done":
            onset = heard[-1]
            await self._until(lambda: playout.settled(onset, self._now()) is not None,
                              onset + round(step.max_reply_ms * 1e6))

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
                    "the agent never became audible, so there was nothing to barge in on")
            raise self._timeout(what, step.timeout_ms)
        rate = self.fmt.sample_rate
        if clip.onset_ms is None:
            self._place(clip, 0, "barge_in")  # raises: no ground truth
        assert clip.onset_ms is not None
        before = round(clip.onset_ms * rate / 1000)  # samples of the clip before its speech onset
        early = 2 * self.fmt.frame_ns + before * 1_000_000_000 // rate
        after = round(step.after_ms * 1e6)
        await self._until(lambda: self._now() >= (reference() or 0) + after - early,
                          (reference() or 0) + after - early)
        target = (reference() or 0) + after
        wanted = math.ceil((target - self.log.origin_ns) * rate / 1e9) - before
        start = max(wanted, self._next_sample())
        skip = min(start - wanted, max(before - 1, 0))  # late: drop leading silence, not speech
        utterance = self._place(clip, start, "barge_in", target, skip)
        self.log.append(Expectation("barge_in", str(self.turn), step.stop_timeout_ms, self._now(),
                                    self.where))
        await self._spoken(utterance)
        assert utterance.onset_sample is not None
        onset = speech_instant_ns(self.log, utterance.onset_sample)
        assert onset is not None
        await self._until(lambda: playout.settled(onset, self._now()) is not None,
                          onset + round(step.stop_timeout_ms * 1e6))

    async def _pause(self, step: Pause) -> None:
        end = self._next_sample() + round(step.ms * self.fmt.sample_rate / 1000)
        await self._until(self._sent_through(end), self._slack_ns(end - self._next_sample()))

    def _background(self, step: Background) -> None:
        if step.clip is None:
            self.mic.background = None
            return
        clip = gain(resolve_clip(step.clip, self.fmt.sample_rate, self.where), step.gain_db)
        self.mic.background = (self._next_sample(), clip.samples)

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
        """Run the call; return the error that ended it (the log is complete either way)."""
        error: BaseException | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._bounded(self.agent.start(self.line), self.caller.agent_timeout_ms,
                                f"{type(self.agent).__name__}.start()")
            self.log.origin_ns = self._now() + self.offset_ns  # time zero: after start()
            tasks = [asyncio.ensure_future(self._pace()), asyncio.ensure_future(self._script())]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
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
                await self._bounded(self.agent.close(), self.caller.agent_timeout_ms,
                                    f"{type(self.agent).__name__}.close()")
            except Exception as exc:
                error = error or exc
        if error is not None and self.where and hasattr(error, "add_note"):
            error.add_note(f"in session {self.log.session_id}, {self.where}")
        return error


class Caller:
    """Runs calls against agents; sync (:meth:`run`, :meth:`run_calls`) or async (:meth:`call`,
    :meth:`calls`). Many calls share one event loop; every finished call is in ``results``.

    ``agent`` arguments are an agent instance (one call) or a factory such as the agent's class
    (needed for several calls and for the ``retry`` policy).
    """

    def __init__(self, *, clock: Clock | None = None, tracer: Tracer | None = None,
                 format: AudioFormat | None = None, playout: PlayoutConfig | None = None,
                 pacing_limit_ms: float = 5.0, unreliable: Policy = "warn", max_attempts: int = 3,
                 agent_timeout_ms: float = 10_000.0, session_prefix: str = "call") -> None:
        if unreliable not in ("warn", "fail", "retry"):
            raise VoiceLatencyUsageError(
                f"unreliable must be 'warn', 'fail' or 'retry', got {unreliable!r}")
        if not isinstance(max_attempts, int) or not 1 <= max_attempts <= 10:
            raise VoiceLatencyUsageError(f"max_attempts must be an int from 1 to 10, got {max_attempts!r}")
        if not pacing_limit_ms > 0:
            raise VoiceLatencyUsageError(f"pacing_limit_ms must be > 0, got {pacing_limit_ms!r}")
        self.clock = clock or default_clock()
        self.tracer = tracer
        self.format = format or AudioFormat()
        self.playout = playout or PlayoutConfig()
        self.pacing_limit_ms = float(pacing_limit_ms)
        self.unreliable = unreliable
        self.max_attempts = max_attempts
        self.agent_timeout_ms = agent_timeout_ms
        self.session_prefix = session_prefix
        self.results: list[CallResult] = []
        self._count = 0

    # -------------------------------------------------------------- async API

    async def call(self, agent: AgentLike, script: Sequence[Step], *,
                   session_id: str | None = None, start_offset_ms: float = 0.0) -> CallResult:
        """Run one call (retrying unreliable ones under the ``retry`` policy); emit its spans.

        An agent error, a timeout or a malformed event is raised after the call was torn down
        and its measurements so far were emitted.
        """
        steps = _resolve(check_script(script), self.format.sample_rate)
        factory = _factory(agent)
        self._count += 1
        number = self._count
        session_id = session_id or f"{self.session_prefix}-{number}"
        playout = replace(self.playout, seed=self.playout.seed + number - 1)
        discarded: list[CallMetrics] = []
        attempt = 0
        while True:
            attempt += 1
            instance = factory() if factory is not None else agent
            check_agent(instance)
            if self.clock.is_virtual and not getattr(instance, "honours_clock", False):
                raise VoiceLatencyUsageError(
                    f"{type(instance).__name__} does not take its time from session.clock "
                    f"(honours_clock is not True), so it cannot run on a virtual clock; run it "
                    f"with RealClock")
            sid = session_id if attempt == 1 else f"{session_id}.retry{attempt - 1}"
            run = _Call(self, instance, steps, sid, playout,  # type: ignore[arg-type]
                        round(start_offset_ms * 1e6))
            error = await run.run()
            metrics = measure(run.log, pacing_limit_ms=self.pacing_limit_ms)
            if error is None and not metrics.reliable and self.unreliable == "retry" \
                    and attempt < self.max_attempts:
                if factory is not None:
                    warnings.warn(VoiceLatencyWarning(
                        f"session {sid}: {_late(metrics)}; retrying the call (attempt "
                        f"{attempt + 1} of {self.max_attempts})"), stacklevel=2)
                    discarded.append(metrics)
                    continue
                warnings.warn(VoiceLatencyWarning(
                    f"session {sid}: {_late(metrics)}; cannot retry: pass an agent factory (e.g. "
                    f"the class) instead of an instance"), stacklevel=2)
            elif not metrics.reliable:
                warnings.warn(VoiceLatencyWarning(
                    f"session {sid}: {_late(metrics)}; its measurements are marked unreliable"),
                    stacklevel=2)
            for note in metrics.notes:
                warnings.warn(VoiceLatencyWarning(f"session {sid}: {note}"), stacklevel=2)
            _emit(self.tracer, self.clock, metrics)
            result = CallResult(sid, metrics, run.log, attempt, tuple(discarded))
            self.results.append(result)
            if error is not None:
                raise error
            return result

    async def calls(self, agent: AgentLike, scripts: Sequence[Sequence[Step]], *,
                    stagger: bool = True) -> list[CallResult]:
        """Run one call per script concurrently on this event loop (``agent`` must be a factory).

        With ``stagger`` call ``k`` of ``n`` starts ``k/n`` of a frame later, as real callers are
        not aligned. If calls fail, every call still finishes and is recorded; then the first
        error is raised.
        """
        if len(scripts) > 1 and _factory(agent) is None:
            raise VoiceLatencyUsageError(
                "several calls need an agent factory (e.g. the agent class or a lambda), one agent "
                "per call; got a single agent instance")
        frame = self.format.frame_ms
        outcomes = await asyncio.gather(*(
            self.call(agent, script, start_offset_ms=(k * frame / len(scripts)) if stagger else 0)
            for k, script in enumerate(scripts)), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            first = errors[0]
            if hasattr(first, "add_note"):
                first.add_note(f"{len(errors)} of {len(scripts)} calls failed; the others' "
                               f"measurements were recorded")
            raise first
        return [o for o in outcomes if isinstance(o, CallResult)]

    # -------------------------------------------------------------- sync API

    def run(self, agent: AgentLike, script: Sequence[Step], **kwargs: Any) -> CallResult:
        """:meth:`call` from synchronous code (runs its own event loop)."""
        _no_running_loop("run", "call")
        return asyncio.run(self.call(agent, script, **kwargs))

    def run_calls(self, agent: AgentLike, scripts: Sequence[Sequence[Step]],
                  **kwargs: Any) -> list[CallResult]:
        """:meth:`calls` from synchronous code (runs its own event loop)."""
        _no_running_loop("run_calls", "calls")
        return asyncio.run(self.calls(agent, scripts, **kwargs))

    def measurements(self, kind: Literal["response", "barge_in"]) -> list[Measurement]:
        """Every measurement of ``kind`` over all finished calls."""
        return [m for r in self.results
                for m in (r.metrics.responses if kind == "response" else r.metrics.barge_ins)]


def _resolve(steps: tuple[Step, ...], rate: int) -> tuple[Step, ...]:
    """Load every clip before the call starts: bad names fail early, no file I/O in the loop."""
    out: list[Step] = []
    for index, step in enumerate(steps, 1):
        if isinstance(step, (Say, BargeIn)) or (isinstance(step, Background) and step.clip is not None):
            where = f"script step {index}: {describe(step)}"
            step = replace(step, clip=resolve_clip(step.clip, rate, where))  # type: ignore[arg-type]
        out.append(step)
    return tuple(out)


def _factory(agent: object) -> Callable[[], VoiceAgent] | None:
    if isinstance(agent, type) or (callable(agent) and not hasattr(agent, "receive")):
        return agent
    return None


def _late(metrics: CallMetrics) -> str:
    p = metrics.pacing
    return (f"the caller fell behind real time (p99 frame lateness {p.lateness_p99_ms:.1f} ms > "
            f"{p.limit_ms:g} ms limit; max {p.lateness_max_ms:.1f} ms, event-loop wake-up p99 "
            f"{p.wake_p99_ms:.1f} ms)")


def _no_running_loop(method: str, async_method: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise VoiceLatencyUsageError(
        f"Caller.{method}() runs its own event loop, but one is already running: in an async "
        f"test use `await caller.{async_method}(...)`")


def _emit(tracer: Tracer | None, clock: Clock, metrics: CallMetrics) -> None:
    """Emit the call's black-box spans, as root spans, on the call's clock."""
    from opentelemetry import context, trace

    from .instrument import TRACER_NAME

    tracer = tracer or trace.get_tracer(TRACER_NAME)
    root = context.Context()
    for span in caller_spans(metrics, virtual_clock=clock.is_virtual):
        s = tracer.start_span(span.name, context=root, start_time=clock.span_time_ns(span.start_ns),
                              attributes=span.attributes)
        s.end(end_time=clock.span_time_ns(span.end_ns))
