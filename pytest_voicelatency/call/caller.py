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
so (``audio.outcome``); a barge-in the agent did not stop for (``not_interrupted``) or made of
no speech (``no_onset``) gives no latency at all, only a warning (see
:mod:`~pytest_voicelatency.call.metrics`). When the
caller fell behind real time (a frame sent more than ``pacing_limit_ms`` late) inside a
measurement's window, that sample carries ``audio.reliable=False``; the call's other samples
stay reliable. With the ``unreliable="retry"`` policy a call with such a spoiled measurement is
run again (agent factories only), up to ``max_attempts``; the discarded attempt's session is
marked ``caller.discarded`` so its samples, the agent's included, leave the results.

**Session ids** are ``<session_prefix>-<n>``, ``n`` counting the calls of every caller in the
current test (every active span capture; outside one, the process), so separate callers in
one test, and the examples of a property, never reuse an id and their turns never merge.

**Unanswered turns and failing calls.** An ``answer()`` nothing answers is a *missed* sample and
the script goes on (``answer(required=True)`` or ``Caller(unanswered="raise")`` stop the call
instead). Of concurrent calls, each finishes and is recorded whatever the others do; the
failures are raised after the batch, as one error naming every failed session.

This module decides which calls to run and what to do with each finished one; running one call
(the line handed to the agent, the pacer, the script's steps) is
:mod:`pytest_voicelatency.call.runner`. Inbound frames are paced on absolute deadlines of the
injected clock; the caller never reads time or sleeps any other way.

**Virtual time.** ``Caller(clock="virtual")`` (or a configured
:class:`~pytest_voicelatency.vclock.VirtualClock`) runs the same scripts on a clock that only
advances while every task waits: a call costs the CPU of the code under test, not its seconds,
and repeats bit for bit. ``run`` and ``run_calls`` run the calls on the clock's own loop; the
async ``call`` and ``calls`` must be awaited on that loop (``clock.run(main())``). There is no
machine load to fall behind on, so pacing never marks a virtual call unreliable and never
retries it; its spans carry ``audio.clock="virtual"``. Only agents whose ``honours_clock`` is
true are accepted (an agent that reads ``time`` directly can run with
``VirtualClock(wall_clock="virtual")``, see :func:`~pytest_voicelatency.vclock.patch_time`).

**Leftover agent tasks.** After the calls, tasks agents left running are cancelled; one that
ignores it for ``grace_ms`` is abandoned and named in an :class:`AgentTimeoutError`, so no loop's
teardown ever waits on agent code. ``run``/``run_calls`` own their loop and sweep all of it; the
async ``call``/``calls`` run on the user's loop and sweep only the tasks the call created
(:mod:`~pytest_voicelatency.call.scope`), never the user's own.

Warnings (unreliable calls, turns that could not be measured, late events) are collected during
a call and issued when it is over, pointing at the line that called ``run``/``run_calls``, or
that made the ``call()``/``calls()`` coroutine (even when it runs as a task of its own).

>>> from pytest_voicelatency.agents.oracle import OracleAgent, tone_clip
>>> from pytest_voicelatency.call.script import answer, barge_in, say
>>> caller = Caller(clock="virtual")
>>> result = caller.run(OracleAgent(), [say(tone_clip()), answer(until="audible"),
...                                     say(tone_clip()), barge_in(tone_clip(), after_ms=200)])
>>> [(m.outcome, m.value_ms) for m in result.metrics.responses + result.metrics.barge_ins]
[('ok', 340.0), ('ok', 50.0)]
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from opentelemetry import context, trace

from pytest_voicelatency.call.log import CallLog
from pytest_voicelatency.call.metrics import CallMetrics, Measurement, caller_spans, measure
from pytest_voicelatency.call.playout import PlayoutConfig
from pytest_voicelatency.call.protocol import (
    AgentTimeoutError,
    AudioFormat,
    VoiceAgent,
    check_agent,
)
from pytest_voicelatency.call.runner import CallRun, sweep
from pytest_voicelatency.call.scope import call_scope, settle
from pytest_voicelatency.call.script import (
    Background,
    BargeIn,
    Say,
    Step,
    check_script,
    describe,
    resolve_clip,
)
from pytest_voicelatency.clock import Clock, default_clock
from pytest_voicelatency.errors import VoiceLatencyUsageError, VoiceLatencyWarning
from pytest_voicelatency.spans.capture import Capture, active_captures
from pytest_voicelatency.spans.instrument import TRACER_NAME
from pytest_voicelatency.spans.samples import DISCARDED
from pytest_voicelatency.vclock import VirtualClock

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["Caller", "CallResult", "AgentTimeoutError", "Policy", "Unanswered", "ClockSpec",
           "make_clock", "next_session_number"]

Policy = Literal["warn", "fail", "retry"]
Unanswered = Literal["missed", "raise"]
AgentLike = VoiceAgent | Callable[[], VoiceAgent]
#: What ``Caller(clock=...)`` takes: a Clock, ``"real"`` (the default) or ``"virtual"``.
ClockSpec = Clock | Literal["real", "virtual"] | None
_T = TypeVar("_T")


# session numbers per (test, prefix): keyed by the active capture, so they restart at 1 in each
# test (readable, and the same on every run under virtual time) but never repeat inside one
_numbers: weakref.WeakKeyDictionary[Capture, dict[str, int]] = weakref.WeakKeyDictionary()
_test_numbers: dict[str, dict[str, int]] = {}


def next_session_number(prefix: str) -> int:
    """The next call number for ``prefix`` in the current test, shared by every caller in it.

    With span captures active, the number is one more than the highest any of them has given
    out, and every one of them records it: each capture the call's spans reach (the test's, a
    module's, one opened per hypothesis example) sees distinct session ids, so turns of
    different calls never merge in any of them. With none, counted per pytest test
    (``PYTEST_CURRENT_TEST``), else per process."""
    captures = active_captures()
    if captures:
        counts = [_numbers.setdefault(capture, {}) for capture in captures]
        number = 1 + max(c.get(prefix, 0) for c in counts)
        for c in counts:
            c[prefix] = number
        return number
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    if test not in _test_numbers:
        _test_numbers.clear()  # one test at a time: forget the previous one
    counts_here = _test_numbers.setdefault(test, {})
    counts_here[prefix] = counts_here.get(prefix, 0) + 1
    return counts_here[prefix]


def _failures(failed: Sequence[tuple[str, BaseException]]) -> str:
    """The failed calls of a batch, one entry per distinct error: the first in full above, so
    the same error again is named, not repeated, and others are cut at a word, marked '…'."""
    first = failed[0][1]
    groups: dict[tuple[str, str], list[str]] = {}
    for sid, error in failed:
        groups.setdefault((type(error).__name__, str(error)), []).append(sid)
    parts = []
    for (kind, text), sids in groups.items():
        if (kind, text) == (type(first).__name__, str(first)):
            parts.append(f"{', '.join(sids)}: {kind}, the error shown")
        else:
            short = text if len(text) <= 200 else text[:200].rsplit(" ", 1)[0] + " …"
            parts.append(f"{', '.join(sids)}: {kind}: {short}")
    return "; ".join(parts)


def make_clock(spec: ClockSpec) -> Clock:
    """The clock ``spec`` names: ``None``/``"real"`` the real clock, ``"virtual"`` a fresh
    :class:`~pytest_voicelatency.vclock.VirtualClock`, a Clock itself."""
    if spec is None or spec == "real":
        return default_clock()
    if spec == "virtual":
        return VirtualClock()
    if isinstance(spec, Clock):
        return spec
    raise VoiceLatencyUsageError(
        f"clock must be 'real', 'virtual' or a Clock such as VirtualClock(...), got {spec!r}")


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
    (needed for several calls and for the ``retry`` policy). ``clock`` is ``"real"`` (default),
    ``"virtual"`` or a :class:`~pytest_voicelatency.clock.Clock`. ``unanswered`` is what an
    ``answer()`` (left ``required=None``) nothing answers does: ``"missed"`` (a missed sample,
    the script goes on) or ``"raise"``. ``grace_ms`` is the real time a cancelled agent task
    gets to finish before it is abandoned with an error naming it.
    """

    def __init__(self, *, clock: ClockSpec = None, tracer: Tracer | None = None,
                 format: AudioFormat | None = None, playout: PlayoutConfig | None = None,
                 pacing_limit_ms: float = 5.0, unreliable: Policy = "warn", max_attempts: int = 3,
                 agent_timeout_ms: float = 10_000.0, session_prefix: str = "call",
                 unanswered: Unanswered = "missed", grace_ms: float = 2000.0) -> None:
        if unreliable not in ("warn", "fail", "retry"):
            raise VoiceLatencyUsageError(
                f"unreliable must be 'warn', 'fail' or 'retry', got {unreliable!r}")
        if not isinstance(max_attempts, int) or not 1 <= max_attempts <= 10:
            raise VoiceLatencyUsageError(
                f"max_attempts must be an int from 1 to 10, got {max_attempts!r}")
        if unanswered not in ("missed", "raise"):
            raise VoiceLatencyUsageError(
                f"unanswered must be 'missed' or 'raise', got {unanswered!r}")
        if isinstance(grace_ms, bool) or not isinstance(grace_ms, (int, float)) \
                or not 0 < grace_ms <= 60_000:
            raise VoiceLatencyUsageError(
                f"grace_ms must be a number of ms in (0, 60000], got {grace_ms!r}")
        if not pacing_limit_ms > 0:
            raise VoiceLatencyUsageError(f"pacing_limit_ms must be > 0, got {pacing_limit_ms!r}")
        self.clock = make_clock(clock)
        self.tracer = tracer
        self.format = format or AudioFormat()
        self.playout = playout or PlayoutConfig()
        self.pacing_limit_ms = float(pacing_limit_ms)
        self.unreliable = unreliable
        self.max_attempts = max_attempts
        self.agent_timeout_ms = agent_timeout_ms
        self.session_prefix = session_prefix
        self.unanswered: Unanswered = unanswered
        self.grace_ms = float(grace_ms)
        self.results: list[CallResult] = []
        self._count = 0

    # -------------------------------------------------------------- async API

    def call(self, agent: AgentLike, script: Sequence[Step], *, session_id: str | None = None,
             start_offset_ms: float = 0.0) -> Coroutine[Any, Any, CallResult]:
        """Run one call (retrying unreliable ones under the ``retry`` policy); emit its spans.
        Await it on the running loop: ``result = await caller.call(agent, script)``.

        An agent error, a timeout or a malformed event is raised after the call was torn down
        and its measurements so far were emitted. Tasks the call created (the agent's) that are
        still running afterwards are cancelled; one that ignores it for ``grace_ms`` is
        abandoned and named in an :class:`AgentTimeoutError` (:mod:`~.scope`); the loop's other
        tasks are never touched.
        """
        site = _Site.of_caller()
        return self._scoped(
            lambda notes: self._call(agent, script, notes, session_id, start_offset_ms), site)

    def calls(self, agent: AgentLike, scripts: Sequence[Sequence[Step]], *,
              stagger: bool = True) -> Coroutine[Any, Any, list[CallResult]]:
        """Run one call per script concurrently on this event loop (``agent`` must be a factory).
        Await it: ``results = await caller.calls(MyAgent, scripts)``.

        With ``stagger`` call ``k`` of ``n`` starts ``k/n`` of a frame later, as real callers are
        not aligned. If calls fail, every call still finishes and is recorded; then the first
        error is raised, with a note naming every failed session and its error. Leftover agent
        tasks are handled as in :meth:`call`.
        """
        site = _Site.of_caller()
        return self._scoped(lambda notes: self._calls(agent, scripts, notes, stagger), site)

    # -------------------------------------------------------------- sync API

    def run(self, agent: AgentLike, script: Sequence[Step], *, session_id: str | None = None,
            start_offset_ms: float = 0.0) -> CallResult:
        """:meth:`call` from synchronous code (runs its own event loop, virtual or real)."""
        _no_running_loop("run", "call")
        notes: list[VoiceLatencyWarning] = []
        try:
            return self._sync(self._call(agent, script, notes, session_id, start_offset_ms), notes)
        finally:
            _warn(notes)

    def run_calls(self, agent: AgentLike, scripts: Sequence[Sequence[Step]], *,
                  stagger: bool = True) -> list[CallResult]:
        """:meth:`calls` from synchronous code (runs its own event loop, virtual or real)."""
        _no_running_loop("run_calls", "calls")
        notes: list[VoiceLatencyWarning] = []
        try:
            return self._sync(self._calls(agent, scripts, notes, stagger), notes)
        finally:
            _warn(notes)

    def measurements(self, kind: Literal["response", "barge_in"]) -> list[Measurement]:
        """Every measurement of ``kind`` over all finished calls."""
        return [m for r in self.results
                for m in (r.metrics.responses if kind == "response" else r.metrics.barge_ins)]

    # -------------------------------------------------------------- internals

    def _sync(self, main: Coroutine[Any, Any, _T], notes: list[VoiceLatencyWarning]) -> _T:
        clock = self.clock
        guarded = self._swept(main, notes, lambda: sweep(self.grace_ms / 1000))
        if not isinstance(clock, VirtualClock):
            return asyncio.run(guarded)
        return clock.run(guarded)

    async def _scoped(self, make: Callable[[list[VoiceLatencyWarning]], Coroutine[Any, Any, _T]],
                      site: _Site) -> _T:
        """An async entry point: run the calls in a task scope on the user's loop, settle the
        tasks they left, then issue the warnings at the line that called the entry point."""
        notes: list[VoiceLatencyWarning] = []
        try:
            with call_scope() as scope:
                return await self._swept(make(notes), notes,
                                         lambda: settle(scope, self.grace_ms / 1000))
        finally:
            site.warn(notes)

    async def _swept(self, main: Coroutine[Any, Any, _T], notes: list[VoiceLatencyWarning],
                     sweeper: Callable[[], Awaitable[tuple[list[str], list[str]]]]) -> _T:
        """Run ``main``, then cancel the tasks agents left running (``sweeper``: every task of
        the loop the sync entry points own, or the call's own tasks on the user's loop),
        abandoning (and naming) any that ignore it, so the loop's teardown never waits on agent
        code."""
        error: BaseException | None = None
        try:
            result = await main
        except BaseException as exc:
            error = exc
        found, stubborn = await sweeper()
        if found and self.clock.is_virtual:
            shown = "; ".join(found[:3]) + (" ..." if len(found) > 3 else "")
            notes.append(VoiceLatencyWarning(
                f"{len(found)} task(s) still ran after the calls ended and every agent's "
                f"close() returned: an agent leaks tasks (cancel them in close(), e.g. with "
                f"SessionTasks.cancel_all()): {shown}"))
        if stubborn:
            message = (f"{len(stubborn)} agent task(s) still ran after the calls ended and "
                       f"ignored their cancellation for {self.grace_ms:g} ms: abandoned "
                       f"{', '.join(stubborn)} (let CancelledError propagate; cancel your "
                       f"tasks in close())")
            if error is None:
                raise AgentTimeoutError(message)
            error.add_note(message)
        if error is not None:
            raise error
        return result

    async def _calls(self, agent: AgentLike, scripts: Sequence[Sequence[Step]],
                     notes: list[VoiceLatencyWarning], stagger: bool) -> list[CallResult]:
        if len(scripts) > 1 and _factory(agent) is None:
            raise VoiceLatencyUsageError(
                "several calls need an agent factory (e.g. the agent class or a lambda), one agent "
                "per call; got a single agent instance")
        frame = self.format.frame_ms
        numbers = [self._number() for _ in scripts]
        outcomes = await asyncio.gather(*(
            self._call(agent, script, notes, None,
                       (k * frame / len(scripts)) if stagger else 0, number)
            for k, (script, number) in enumerate(zip(scripts, numbers))),
            return_exceptions=True)
        failed = [(f"{self.session_prefix}-{n}", o) for n, o in zip(numbers, outcomes)
                  if isinstance(o, BaseException)]
        if failed:
            first = failed[0][1]
            first.add_note(f"{len(failed)} of {len(scripts)} calls failed ({_failures(failed)}); "
                           f"every other call finished and its measurements were recorded")
            raise first
        return [o for o in outcomes if isinstance(o, CallResult)]

    def _number(self) -> int:
        self._count += 1
        return next_session_number(self.session_prefix)

    async def _call(self, agent: AgentLike, script: Sequence[Step],
                    notes: list[VoiceLatencyWarning], session_id: str | None,
                    start_offset_ms: float, number: int | None = None) -> CallResult:
        clock = self.clock
        if isinstance(clock, VirtualClock) and not clock.owns_running_loop():
            raise VoiceLatencyUsageError(
                "a Caller on a virtual clock was awaited on a real event loop, where virtual time "
                "cannot pass: call caller.run()/run_calls() from a plain (sync) test, or run your "
                "coroutine on the clock's own loop with caller.clock.run(main())")
        steps = _resolve(check_script(script), self.format.sample_rate)
        factory = _factory(agent)
        if number is None:
            number = self._number()
        session_id = session_id or f"{self.session_prefix}-{number}"
        playout = replace(self.playout, seed=self.playout.seed + self._count - 1)
        discarded: list[CallMetrics] = []
        attempt = 0
        while True:
            attempt += 1
            instance = factory() if factory is not None else agent
            check_agent(instance)
            if clock.is_virtual and not getattr(instance, "honours_clock", False):
                name = type(instance).__name__
                if isinstance(getattr(type(instance), "honours_clock", None), property) \
                        and getattr(clock, "wall_clock", None) == "guard":
                    raise VoiceLatencyUsageError(  # it decides per clock: a framework agent
                        f"{name} cannot run on this virtual clock: it reads time.monotonic()/"
                        f"time.time() directly, and its honours_clock is True only when those "
                        f"follow the call's clock. Use Caller(clock=VirtualClock("
                        f"wall_clock='virtual')) (from pytest_voicelatency.vclock), or run it "
                        f"with clock='real'")
                raise VoiceLatencyUsageError(
                    f"{name} cannot run on a virtual clock: its honours_clock is not True, so it "
                    f"may read real time or sleep outside the call's clock and its numbers would "
                    f"be nonsense. Make it read session.clock.now_ns() and wait with "
                    f"session.clock.sleep_until() (or asyncio.sleep), then set "
                    f"{name}.honours_clock = True; if it reads time.monotonic()/time.time() "
                    f"directly, also use Caller(clock=VirtualClock(wall_clock='virtual')); or run "
                    f"it with clock='real'")
            sid = session_id if attempt == 1 else f"{session_id}.retry{attempt - 1}"
            run = CallRun(instance, steps, sid, playout,  # type: ignore[arg-type]
                          round(start_offset_ms * 1e6), clock=clock, format=self.format,
                          tracer=self.tracer, agent_timeout_ms=self.agent_timeout_ms,
                          unanswered=self.unanswered, grace_ms=self.grace_ms)
            error = await run.run()
            with _harness(clock):
                metrics = measure(run.log, pacing_limit_ms=self.pacing_limit_ms,
                                  playout=run.line.playout)
            if error is None and not metrics.reliable and self.unreliable == "retry" \
                    and attempt < self.max_attempts:
                if factory is not None:
                    notes.append(VoiceLatencyWarning(
                        f"session {sid}: {_late(metrics)}; retrying the call (attempt "
                        f"{attempt + 1} of {self.max_attempts})"))
                    discarded.append(metrics)
                    _discard(self.tracer, clock, sid)
                    continue
                notes.append(VoiceLatencyWarning(
                    f"session {sid}: {_late(metrics)}; cannot retry: pass an agent factory (e.g. "
                    f"the class) instead of an instance"))
            elif not metrics.reliable:
                notes.append(VoiceLatencyWarning(
                    f"session {sid}: {_late(metrics)}; those measurements are marked "
                    f"unreliable"))
            notes.extend(VoiceLatencyWarning(f"session {sid}: {note}") for note in metrics.notes)
            with _harness(clock):
                _emit(self.tracer, clock, metrics)
            result = CallResult(sid, metrics, run.log, attempt, tuple(discarded))
            self.results.append(result)
            if error is not None:
                raise error
            return result


class _Site:
    """Where user code called an async entry point (``caller.call(...)``), found when the
    coroutine is made: its warnings are issued there. Run as a task (``asyncio.run(caller.call(
    ...))``, ``gather``), the coroutine's caller frame is asyncio's own loop callback."""

    __slots__ = ("filename", "lineno", "module", "globals")

    def __init__(self, filename: str, lineno: int, module: str,
                 globals: dict[str, Any]) -> None:
        self.filename, self.lineno, self.module, self.globals = filename, lineno, module, globals

    @classmethod
    def of_caller(cls) -> _Site:
        frame = sys._getframe(1).f_back  # 0: here, 1: Caller.call / calls, 2: the user's code
        if frame is None:  # called from C (no Python frame): the entry point's own line
            frame = sys._getframe(1)
        return cls(frame.f_code.co_filename, frame.f_lineno,
                   str(frame.f_globals.get("__name__", "<string>")), frame.f_globals)

    def warn(self, notes: Sequence[VoiceLatencyWarning]) -> None:
        registry = self.globals.setdefault("__warningregistry__", {})
        for note in notes:
            warnings.warn_explicit(note, type(note), self.filename, self.lineno, self.module,
                                   registry, self.globals)


def _warn(notes: list[VoiceLatencyWarning]) -> None:
    """Issue the warnings a sync entry point collected, at the line of code that called it."""
    for note in notes:
        warnings.warn(note, stacklevel=3)  # 1: here, 2: Caller.run / run_calls, 3: the test


def _harness(clock: Clock) -> AbstractContextManager[None]:
    """The caller's own bookkeeping never counts as an agent blocking a virtual loop."""
    return clock.harness() if isinstance(clock, VirtualClock) else nullcontext()


def _resolve(steps: tuple[Step, ...], rate: int) -> tuple[Step, ...]:
    """Load every clip before the call starts: bad names fail early, no file I/O in the loop."""
    out: list[Step] = []
    for index, step in enumerate(steps, 1):
        if isinstance(step, (Say, BargeIn)) or (isinstance(step, Background)
                                               and step.clip is not None):
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
    spoiled = [f"turn {m.turn_id} {m.kind}" for m in metrics.responses + metrics.barge_ins
               if not m.reliable] + [f"turn {d.turn_id} interruption"
                                     for d in metrics.interruptions if not d.reliable]
    total = len(metrics.responses) + len(metrics.barge_ins) + len(metrics.interruptions)
    return (f"the caller fell behind real time inside {len(spoiled)} of {total} measurement "
            f"windows ({', '.join(spoiled)}: a frame sent more than {p.limit_ms:g} ms late; "
            f"call p99 frame lateness {p.lateness_p99_ms:.1f} ms, max "
            f"{p.lateness_max_ms:.1f} ms, event-loop wake-up p99 {p.wake_p99_ms:.1f} ms)")


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
    tracer = tracer or trace.get_tracer(TRACER_NAME)
    now = clock.span_time_ns(clock.now_ns())
    tracer.start_span(DISCARDED, context=context.Context(), start_time=now, attributes={
        "audio.stage": DISCARDED, "audio.source": "caller", "audio.session_id": session_id,
        "audio.turn_id": "call"}).end(end_time=now)


def _emit(tracer: Tracer | None, clock: Clock, metrics: CallMetrics) -> None:
    """Emit the call's black-box spans, as root spans, on the call's clock."""
    tracer = tracer or trace.get_tracer(TRACER_NAME)
    root = context.Context()
    for span in caller_spans(metrics, virtual_clock=clock.is_virtual):
        s = tracer.start_span(span.name, context=root, start_time=clock.span_time_ns(span.start_ns),
                              attributes=span.attributes)
        s.end(end_time=clock.span_time_ns(span.end_ns))
