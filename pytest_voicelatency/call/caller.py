"""The simulated caller: talks to a voice agent in real time and measures what a listener hears.

Why black-box: an agent's own spans say what it *did*; the user hears something else (the seeds'
barge-in felt like 500 ms although the agent cancelled fast, because audio already shipped kept
playing). So the caller streams recorded speech at real-time pace, plays the agent's audio through
an explicit client model (:mod:`pytest_voicelatency.call.playout`), logs everything
(:mod:`pytest_voicelatency.call.log`) and, after the call, derives its measurements
(:mod:`pytest_voicelatency.call.metrics`) and emits them as spans next to the agent's own:

* ``caller.response`` (``latency_ms``, plus the naive ``arrival_ms``), ``caller.barge_in``
  (``latency_ms``, ``tail_ms``) — one per measured turn;
* ``caller.playout`` (``jitter_ms``, ``buffer_ms``, ``underruns``) and ``caller.pacing``
  (``lateness_p50_ms``/``p99``/``max`` and the event loop's ``wake_*``) — one per call.

All carry ``audio.source="caller"``, the session id and turn id. A missed or censored sample says
so (``audio.outcome``); when the caller fell behind real time (p99 frame lateness above
``pacing_limit_ms``) every sample of the call carries ``audio.reliable=False``. With the
``unreliable="retry"`` policy such a call is run again (agent factories only), up to
``max_attempts``; the discarded attempt's session is marked ``caller.discarded`` so its samples,
the agent's included, leave the results.

This module decides which calls to run and what to do with each finished one; running one call
(the line handed to the agent, the pacer, the script's steps) is
:mod:`pytest_voicelatency.call.runner`. Inbound frames are paced on absolute deadlines of the
injected clock; the caller never reads time or sleeps any other way.

>>> from pytest_voicelatency.fixtures import simulated_caller
>>> from pytest_voicelatency.agents.oracle import OracleAgent, tone_clip
>>> from pytest_voicelatency.call.script import answer, barge_in, say
>>> with simulated_caller() as caller:
...     result = caller.run(OracleAgent(), [say(tone_clip()), answer(until="audible"),
...                                         say(tone_clip()), barge_in(tone_clip(), after_ms=200)])
>>> [m.outcome for m in result.metrics.responses + result.metrics.barge_ins]
['ok', 'ok']
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from pytest_voicelatency.call.protocol import AudioFormat, VoiceAgent, check_agent
from pytest_voicelatency.call.log import CallLog
from pytest_voicelatency.call.metrics import CallMetrics, Measurement, caller_spans, measure
from pytest_voicelatency.clock import Clock, default_clock
from pytest_voicelatency.errors import VoiceLatencyError, VoiceLatencyUsageError, VoiceLatencyWarning
from pytest_voicelatency.call.playout import PlayoutConfig
from pytest_voicelatency.call.script import Background, BargeIn, Say, Step, check_script, describe, resolve_clip

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["Caller", "CallResult", "AgentTimeoutError", "Policy"]

Policy = Literal["warn", "fail", "retry"]
AgentLike = VoiceAgent | Callable[[], VoiceAgent]


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
        from pytest_voicelatency.call.runner import CallRun  # here, not at the top: callrun imports AgentTimeoutError

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
            run = CallRun(instance, steps, sid, playout,  # type: ignore[arg-type]
                          round(start_offset_ms * 1e6), clock=self.clock, format=self.format,
                          tracer=self.tracer, agent_timeout_ms=self.agent_timeout_ms)
            error = await run.run()
            metrics = measure(run.log, pacing_limit_ms=self.pacing_limit_ms)
            if error is None and not metrics.reliable and self.unreliable == "retry" \
                    and attempt < self.max_attempts:
                if factory is not None:
                    warnings.warn(VoiceLatencyWarning(
                        f"session {sid}: {_late(metrics)}; retrying the call (attempt "
                        f"{attempt + 1} of {self.max_attempts})"), stacklevel=2)
                    discarded.append(metrics)
                    _discard(self.tracer, self.clock, sid)
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


def _discard(tracer: Tracer | None, clock: Clock, session_id: str) -> None:
    """Mark a retried attempt's session as discarded (see :data:`~.samples.DISCARDED`).

    The agent's own spans of that attempt are already in the capture; the marker makes the
    sample layer drop them with the attempt, so white-box percentiles keep only the numbers
    of calls the caller could time.
    """
    from opentelemetry import context, trace

    from pytest_voicelatency.spans.instrument import TRACER_NAME
    from pytest_voicelatency.spans.samples import DISCARDED

    tracer = tracer or trace.get_tracer(TRACER_NAME)
    now = clock.span_time_ns(clock.now_ns())
    tracer.start_span(DISCARDED, context=context.Context(), start_time=now, attributes={
        "audio.stage": DISCARDED, "audio.source": "caller", "audio.session_id": session_id,
        "audio.turn_id": "call"}).end(end_time=now)


def _emit(tracer: Tracer | None, clock: Clock, metrics: CallMetrics) -> None:
    """Emit the call's black-box spans, as root spans, on the call's clock."""
    from opentelemetry import context, trace

    from pytest_voicelatency.spans.instrument import TRACER_NAME

    tracer = tracer or trace.get_tracer(TRACER_NAME)
    root = context.Context()
    for span in caller_spans(metrics, virtual_clock=clock.is_virtual):
        s = tracer.start_span(span.name, context=root, start_time=clock.span_time_ns(span.start_ns),
                              attributes=span.attributes)
        s.end(end_time=clock.span_time_ns(span.end_ns))
