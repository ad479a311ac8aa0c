"""Virtual time: a call's seconds pass in microseconds, and every run repeats bit for bit.

Why: a barge-in bug hides in a moment (a TTS chunk in flight, the last frame of a reply), and
finding it means trying hundreds of moments. In real time each try costs the seconds of the
conversation and its numbers wobble with the machine's load; on a virtual clock a try costs only
the CPU the code under test uses, and the same inputs always give the same samples.

How time advances: :class:`VirtualEventLoop` is an ordinary asyncio selector loop whose
``time()`` is the :class:`VirtualClock`. Whenever no callback is ready — every task of the call
is waiting — the loop does not block in ``select``: it jumps the clock straight to the next
scheduled timer. So ``clock.sleep_until``, ``asyncio.sleep``, ``asyncio.timeout`` and
``loop.call_at`` all run on virtual time, exact to the nanosecond; CPU work takes none.

What it guards against, because on virtual time such code would silently give nonsense:

* **blocking the loop** (``time.sleep``, a busy loop, blocking I/O): the real time each loop
  iteration spends running callbacks is measured. The call fails, saying how long the loop was
  blocked, when the iteration used more than ``block_limit_ms`` of CPU (a busy loop, heavy
  work) or stalled five times that long without computing (blocking I/O; ``time.sleep`` is
  caught on the spot). Garbage collection and a loaded machine's preemption are not the code's
  doing and do not count;
* **reading the wall clock** (``time.monotonic()``, ``time.perf_counter()``, ``time.time()`` and
  their ``_ns`` forms) from code on the loop: with ``wall_clock="guard"`` (the default) the call
  fails naming the function and line that read it; with ``wall_clock="virtual"`` those functions
  return virtual time instead (see :func:`patch_time`), so third-party code that reads ``time``
  directly runs on the same clock; ``"ignore"`` leaves them alone;
* **a deadlock** (every task waits and nothing is scheduled): an error, never a hang.

Limits: only code that runs on the loop's thread is on virtual time (threads and subprocesses
are not); names bound before the patch (``from time import monotonic``) and C code (such as
``datetime.now()``) keep reading the real clock; nanosecond exactness holds for about 100 hours
of virtual time per clock (asyncio keeps timer deadlines as float seconds).

>>> import asyncio
>>> clock = VirtualClock()
>>> async def nap():
...     start = clock.now_ns()
...     await clock.sleep_until(start + 3_000_000_000)   # three virtual seconds
...     await asyncio.sleep(0.5)                         # asyncio sleeps are virtual too
...     return clock.now_ns() - start
>>> clock.run(nap())
3500000000
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import math
import selectors
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Literal, TypeVar

__all__ = ["VirtualClock", "VirtualEventLoop", "VirtualTimeError", "WallClock", "current_clock",
           "patch_time", "VIRTUAL_EPOCH_NS"]

_T = TypeVar("_T")
WallClock = Literal["guard", "virtual", "ignore"]

#: Span timestamps of virtual calls count from here (2026-01-01T00:00:00Z), so runs repeat.
VIRTUAL_EPOCH_NS = 1_767_225_600_000_000_000
_START_NS = 1_000_000_000_000  # virtual time starts at 1000 s: no agent mistakes it for "unset"
_MAX_NS = 100 * 3600 * 1_000_000_000 + _START_NS  # float timer deadlines stay ns-exact below

_real_ns = time.perf_counter_ns  # bound now: the guard's own stopwatch is never patched
_cpu_ns = time.thread_time_ns
_REAL: dict[str, Callable[..., Any]] = {
    name: getattr(time, name) for name in ("time", "time_ns", "monotonic", "monotonic_ns",
                                           "perf_counter", "perf_counter_ns", "sleep")}
_running_loop = asyncio.events._get_running_loop
_MAX_WAIT_S = 24 * 3600  # asyncio's MAXIMUM_SELECT_TIMEOUT

# readers that are allowed to see the real clock: the standard library (logging stamps records,
# asyncio and threading time their own waits) and test infrastructure
_TRUSTED = frozenset(sys.stdlib_module_names) | {
    "opentelemetry", "hypothesis", "_hypothesis_pytestplugin", "_pytest", "pytest", "pluggy",
    "numpy", "coverage"}


class VirtualTimeError(RuntimeError):
    """A call on virtual time could not be trusted: the loop was blocked, code read the wall
    clock, or every task waited on nothing. The message names what and how to fix it.

    A ``RuntimeError`` rather than a :class:`~pytest_voicelatency.errors.VoiceLatencyError`:
    this module sits in the bottom layer beside ``errors`` and may not import it.
    """


class VirtualClock:
    """A :class:`~pytest_voicelatency.clock.Clock` whose time passes only as its loop waits.

    Run coroutines on it with :meth:`run` (``Caller(clock="virtual")`` does this for you).
    ``now_ns`` can be read anywhere; ``sleep_until`` only on this clock's own loop. Time carries
    on across runs, never backwards. Span timestamps are ``epoch_ns`` plus the virtual time
    elapsed, so identical runs give identical spans.
    """

    def __init__(self, *, block_limit_ms: float = 200.0, wall_clock: WallClock = "guard",
                 idle_limit_s: float = 5.0, epoch_ns: int = VIRTUAL_EPOCH_NS) -> None:
        if not (isinstance(block_limit_ms, (int, float)) and 0 < block_limit_ms < math.inf):
            raise ValueError(f"VirtualClock block_limit_ms must be a positive number of ms, "
                             f"got {block_limit_ms!r}")
        if wall_clock not in ("guard", "virtual", "ignore"):
            raise ValueError(f"VirtualClock wall_clock must be 'guard', 'virtual' or 'ignore', "
                             f"got {wall_clock!r}")
        if not (isinstance(idle_limit_s, (int, float)) and 0 < idle_limit_s < math.inf):
            raise ValueError(f"VirtualClock idle_limit_s must be a positive number of seconds, "
                             f"got {idle_limit_s!r}")
        self.block_limit_ms = float(block_limit_ms)
        #: real seconds to wait for a thread or socket when no task can run and no timer is set
        self.idle_limit_s = float(idle_limit_s)
        self.wall_clock: WallClock = wall_clock
        self.epoch_ns = epoch_ns
        #: tasks still running when the last :meth:`run` finished (their reprs): a leak
        self.leaked: tuple[str, ...] = ()
        self._now = _START_NS
        self._loop: VirtualEventLoop | None = None
        self._watchers: list[tuple[str, Callable[[BaseException], None]]] = []
        self._limit_ns = round(self.block_limit_ms * 1e6)
        self._iteration_start: int | None = None
        self._cpu_start = 0  # CPU clock read at most 1 ms of real time before an iteration
        self._cpu_read = 0
        self._exempt_ns = 0
        self._gc_started = 0
        self._reads = 0
        self._reported: set[str] = set()
        self._polled = 0  # real ns of the last poll for I/O and wake-ups from other threads

    # ------------------------------------------------------------------ the Clock protocol

    def now_ns(self) -> int:
        return self._now

    def span_time_ns(self, instant_ns: int) -> int:
        return self.epoch_ns + (instant_ns - _START_NS)

    async def sleep_until(self, deadline_ns: int) -> int:
        loop = self._own_loop("sleep_until()")
        if deadline_ns > self._now:
            woken = loop.create_future()
            handle = loop.call_at(deadline_ns / 1e9, _wake, woken)
            try:
                await woken
            except BaseException:  # woken early (cancelled): the timer must not fire
                handle.cancel()
                raise
            # else the timer fired: it is out of the heap, nothing to cancel
        else:
            await asyncio.sleep(0)
        return self._now

    @property
    def is_virtual(self) -> bool:
        return True

    def call_at(self, deadline_ns: int, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """Run ``callback`` on this clock's loop at ``deadline_ns`` (a cancellable handle)."""
        return self._own_loop("call_at()").call_at(deadline_ns / 1e9, callback)

    def __repr__(self) -> str:
        return f"VirtualClock(now={(self._now - _START_NS) / 1e9:.6f} s)"

    # ------------------------------------------------------------------ running

    def run(self, main: Coroutine[Any, Any, _T]) -> _T:
        """Run ``main`` to completion on a fresh :class:`VirtualEventLoop` of this clock.

        Like :func:`asyncio.run`: tasks still running afterwards are cancelled (and listed in
        :attr:`leaked`), then the loop is closed. With ``wall_clock="virtual"`` the ``time``
        functions read virtual time on the loop meanwhile; with ``"guard"`` a read fails the run.
        """
        if _running_loop() is not None:
            main.close()
            raise VirtualTimeError(
                "VirtualClock.run() was called while an event loop is running in this thread; "
                "await the coroutine there, or call run() from synchronous code")
        if self._loop is not None:
            main.close()
            raise VirtualTimeError("this VirtualClock is already running a loop (one at a time)")
        loop = VirtualEventLoop(self)
        self._loop, self.leaked, self._reported = loop, (), set()
        gc.callbacks.append(self._collecting)
        try:
            with _time_patched(self.wall_clock != "ignore"), \
                    asyncio.Runner(loop_factory=lambda: loop) as runner:
                self._iteration_start = None
                result = runner.run(main)
                self._iteration_start = None
                for _ in range(3):  # let cancelled tasks finish before calling the rest leaks
                    runner.run(asyncio.sleep(0))
                self.leaked = tuple(repr(t) for t in asyncio.all_tasks(loop) if not t.done())
                self._iteration_start = None  # closing cancels the leaks: not the agent's time
                return result
        finally:
            gc.callbacks.remove(self._collecting)
            self._loop = None
            self._iteration_start = None

    def owns_running_loop(self) -> bool:
        """True when the caller runs on this clock's loop (so ``sleep_until`` works here)."""
        loop = _running_loop()
        return loop is not None and loop is self._loop

    @contextmanager
    def watch(self, on_error: Callable[[BaseException], None], label: str = "") -> Iterator[None]:
        """Send this clock's problems (a blocked loop, a wall-clock read) to ``on_error`` while
        inside; without a watcher they are raised out of the loop instead. ``label`` (e.g. the
        agent and its session) is named in the messages."""
        entry = (label, on_error)
        self._watchers.append(entry)
        try:
            yield
        finally:
            self._watchers.remove(entry)

    def _collecting(self, phase: str, info: dict[str, int]) -> None:
        """Garbage collection is the interpreter's pause, not the code's: exempt it."""
        if phase == "start":
            self._gc_started = _real_ns()
        elif self._gc_started:
            self._exempt_ns += _real_ns() - self._gc_started
            self._gc_started = 0

    @contextmanager
    def harness(self) -> Iterator[None]:
        """Real time spent inside is the harness's own work: it never counts as blocking."""
        started = _real_ns()
        try:
            yield
        finally:
            self._exempt_ns += _real_ns() - started

    # ------------------------------------------------------------------ internals

    def _own_loop(self, what: str) -> VirtualEventLoop:
        loop = self._loop
        if loop is None or _running_loop() is not loop:
            raise VirtualTimeError(
                f"VirtualClock.{what} needs the clock's own event loop, but "
                f"{'no loop' if _running_loop() is None else 'a real loop'} is running here: "
                f"virtual time only passes on a VirtualEventLoop; run the coroutine with "
                f"clock.run(...) or Caller(clock=...).run(...)")
        return loop

    def _report(self, kind: str, error: VirtualTimeError) -> None:
        """Fail every watching call with ``error`` (else raise it); once per kind per run.

        A deadlock that outlives its report (nothing woke even after the calls were failed)
        is raised out of the loop: waiting again would hang.
        """
        if kind in self._reported:
            if kind == "deadlock":
                raise error
            return
        self._reported.add(kind)
        if not self._watchers:
            raise error
        for _, watcher in list(self._watchers):
            watcher(error)

    def _select(self, select: Callable[[float | None], list[Any]], timeout: float | None,
                sockets: bool) -> list[Any]:
        """The loop's wait: check the iteration that just ran, then jump instead of blocking.

        Real I/O is polled (never waited for) before a jump (by the loop's shortcut at least
        once per millisecond of real time, see :meth:`VirtualEventLoop._run_once`), and on every
        iteration while sockets are open; callbacks from other threads reach the ready queue
        without a poll.
        """
        now = _real_ns()
        self._check_blocked(now)
        if timeout != 0 or sockets:
            self._polled = now
        events = select(0) if timeout != 0 or sockets else []
        if not events and timeout is None:
            events = select(self.idle_limit_s)
            if not events:
                self._iteration_start = None
                self._report("deadlock", VirtualTimeError(
                    f"deadlock on virtual time{self._running()}: every task is waiting, no timer "
                    f"is scheduled and no thread or socket woke the loop within "
                    f"{self.idle_limit_s:g} s of real time; a task awaits an event nobody sets"))
        elif not events and timeout:
            self._jump(timeout, now)
            return events
        self._start_iteration(now)
        return events

    def _jump(self, timeout: float, now: int) -> None:
        """Advance to the next timer (``timeout`` s away) and run the timers due then."""
        self._now += max(1, math.ceil(timeout * 1e9 - 1e-3))
        if self._now > _MAX_NS:
            self._report("overflow", VirtualTimeError(
                "this VirtualClock ran past 100 hours of virtual time, where asyncio's float "
                "timer deadlines stop being exact to the nanosecond; use a new VirtualClock"))
        self._start_iteration(now)
        self._fire_due()

    def _check_blocked(self, now: int) -> None:
        """Report the iteration that just ended if it held the loop too long (see class doc)."""
        if self._iteration_start is not None:
            busy = now - self._iteration_start - self._exempt_ns
            if busy > self._limit_ns:
                cpu = _cpu_ns() - self._cpu_start - self._exempt_ns  # over by < 1 ms
                if cpu > self._limit_ns or busy > 5 * self._limit_ns:
                    self._report("blocked", VirtualTimeError(
                        f"the event loop was blocked for {busy / 1e6:.0f} ms of real time "
                        f"({max(cpu, 0) / 1e6:.0f} ms of CPU) in one iteration (limit "
                        f"{self.block_limit_ms:g} ms){self._running()}: something ran without "
                        f"awaiting (a busy loop, blocking I/O or heavy CPU work). Virtual time "
                        f"cannot see such work and a real loop would stall every call "
                        f"meanwhile: await instead (clock.sleep_until, asyncio.sleep, "
                        f"asyncio.to_thread), or raise VirtualClock(block_limit_ms=...)"))
        self._exempt_ns = 0

    def _start_iteration(self, now: int) -> None:
        self._reads = 0
        self._iteration_start = now
        if now - self._cpu_read >= 1_000_000:  # a syscall: once per ms, not per iteration
            self._cpu_start, self._cpu_read = _cpu_ns(), now

    def _fire_due(self) -> None:
        """Run the timers that fell due with the jump now, in the order asyncio would.

        asyncio's iteration moves due timers to the ready queue and runs them; what they wake
        (a sleeping task's next step) runs one iteration later. Running them here, inside the
        wait, in the same order and with the same due test, lets this iteration run those
        wake-ups: one iteration per sleep instead of two, nothing reordered.
        """
        loop = self._loop
        if loop is None:
            return
        scheduled = loop._scheduled  # type: ignore[attr-defined]
        end_time = loop.time() + loop._clock_resolution
        heappop = heapq.heappop
        while scheduled and scheduled[0]._when < end_time:
            handle = heappop(scheduled)
            handle._scheduled = False
            if not handle._cancelled:
                handle._run()

    def _running(self) -> str:
        labels = [label for label, _ in self._watchers if label]
        shown = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
        return f" (while running {shown})" if labels else ""

    def _read(self, name: str, frame: FrameType | None) -> int | None:
        """A ``time`` function was called on this clock's loop: virtual ns, or None for real."""
        if self.wall_clock == "virtual":
            self._reads += 1
            if not self._reads & 0x3FF and self._iteration_start is not None \
                    and _real_ns() - self._iteration_start > self._limit_ns:
                error = VirtualTimeError(
                    f"busy-waiting on virtual time: {name}() was read {self._reads} times "
                    f"in one loop iteration at {_where(frame)}; on a virtual clock time never "
                    f"passes while code runs, so the wait never ends: await instead")
                self._iteration_start = None  # reported here: not again as a blocked loop
                self._report("busy", error)
                raise error
            return self._now
        if self.wall_clock == "guard":
            reader = _culprit(frame)
            if reader is not None:
                self._report("wall clock", VirtualTimeError(
                    f"wall clock read on virtual time: {name}() at {_where(reader)}: it reads "
                    f"real time while the call runs on virtual time, so its numbers would be "
                    f"nonsense. Read session.clock.now_ns() instead, or let the time functions "
                    f"follow the virtual clock with VirtualClock(wall_clock='virtual') (or "
                    f"wall_clock='ignore' to allow it)"))
        return None


class _Selector(selectors.DefaultSelector):
    """The real selector, asked only to poll; the clock decides what a wait means."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock
        self._sockets = False  # more than the loop's own self-pipe: poll on every iteration

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        self._sockets = len(self.get_map()) > 1
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = super().unregister(fileobj)
        self._sockets = len(self.get_map()) > 1
        return key

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return self._clock._select(super().select, timeout, self._sockets)


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on a :class:`VirtualClock`: ``time()`` is virtual and idle waits jump."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(_Selector(clock))
        self.clock = clock
        self._clock_resolution = 1e-10  # timers are whole virtual nanoseconds: fire exactly on time

    def time(self) -> float:
        return self.clock._now / 1e9

    def _run_once(self) -> None:
        """asyncio's iteration, without the selector round trip in the two common cases.

        * callbacks are ready: the timers due now join them, and they run (asyncio's own
          order; nothing is polled, as :meth:`VirtualClock._select` would not poll either);
        * nothing is ready and the next timer lies ahead: a jump. The clock advances to that
          timer, runs what fell due (in asyncio's order, see :meth:`VirtualClock._fire_due`)
          and then what they woke.

        Every other case (sockets open, cancelled timers to clean up, nothing scheduled,
        stopping, debug mode) is asyncio's own code. Real I/O and other threads' wake-ups
        (which are in the ready queue before they poke the self-pipe) are still polled before
        a jump at least once per millisecond of real time.
        """
        loop: Any = self  # asyncio's private state, typed loosely
        scheduled, clock, ready = loop._scheduled, self.clock, loop._ready
        count = len(scheduled)
        if loop._stopping or loop._selector._sockets or loop._debug \
                or (count and scheduled[0]._cancelled) \
                or (count > 100 and loop._timer_cancelled_count / count > 0.5):
            return super()._run_once()  # type: ignore[misc, no-any-return]
        now = _real_ns()
        if ready:
            clock._check_blocked(now)
            clock._start_iteration(now)
            if count:
                end_time = clock._now / 1e9 + self._clock_resolution
                while scheduled and scheduled[0]._when < end_time:
                    handle = heapq.heappop(scheduled)
                    handle._scheduled = False
                    ready.append(handle)
        else:
            timeout = min(max(0, scheduled[0]._when - clock._now / 1e9), _MAX_WAIT_S) \
                if count else 0
            if not timeout or now - clock._polled >= 1_000_000:
                return super()._run_once()  # type: ignore[misc, no-any-return]
            clock._check_blocked(now)
            clock._jump(timeout, now)
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()


def current_clock() -> VirtualClock | None:
    """The virtual clock of the event loop running in this thread, if it is virtual."""
    loop = _running_loop()
    return loop.clock if isinstance(loop, VirtualEventLoop) else None


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# ---------------------------------------------------------------------- the time functions


def _where(frame: FrameType | None) -> str:
    if frame is None:
        return "an unknown place"
    code = frame.f_code
    owner = frame.f_locals.get("self")
    function = f"{type(owner).__name__}.{code.co_name}" if owner is not None else code.co_name
    return f"{code.co_filename}:{frame.f_lineno} in {function}"


def _culprit(frame: FrameType | None) -> FrameType | None:
    """The frame to blame for a wall-clock read, or None when a trusted module made it.

    The real clock object of this package is blamed on whoever used it (a ``stage_span`` given
    ``RealClock`` on a virtual call), not on itself.
    """
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
            ("pytest_voicelatency.clock", "pytest_voicelatency.spans.instrument", "contextlib")):
        frame = frame.f_back
    if frame is None:
        return None
    module = frame.f_globals.get("__name__", "")
    return None if module.partition(".")[0] in _TRUSTED else frame


def _seconds(name: str, epoch: bool) -> Callable[[], float]:
    real = _REAL[name]

    def read() -> float:
        clock = current_clock()
        if clock is not None and clock.wall_clock == "virtual" and (clock._reads + 1) & 0x3FF:
            clock._reads += 1  # the common case; every 1024th read goes through _read's check
            return (clock.span_time_ns(clock._now) if epoch else clock._now) / 1e9
        ns = None if clock is None else clock._read(f"time.{name}", sys._getframe(1))
        if ns is None or clock is None:
            return float(real())
        return (clock.span_time_ns(ns) if epoch else ns) / 1e9

    read.__name__ = read.__qualname__ = name
    return read


def _nanoseconds(name: str, epoch: bool) -> Callable[[], int]:
    real = _REAL[name]

    def read() -> int:
        clock = current_clock()
        if clock is not None and clock.wall_clock == "virtual" and (clock._reads + 1) & 0x3FF:
            clock._reads += 1  # as in _seconds
            return clock.span_time_ns(clock._now) if epoch else clock._now
        ns = None if clock is None else clock._read(f"time.{name}", sys._getframe(1))
        if ns is None or clock is None:
            return int(real())
        return clock.span_time_ns(ns) if epoch else ns

    read.__name__ = read.__qualname__ = name
    return read


def _sleep(seconds: float) -> None:
    clock = current_clock()
    if clock is None or clock.wall_clock == "ignore" or not seconds > 0:
        _REAL["sleep"](seconds)
        return
    error = VirtualTimeError(
        f"time.sleep({seconds:g}) at {_where(sys._getframe(1))} blocks the event loop; on "
        f"virtual time no time passes during it, and on a real loop every call would stall: "
        f"use `await asyncio.sleep(...)` or `await session.clock.sleep_until(...)`")
    clock._report("sleep", error)
    raise error


_PATCHED: dict[str, Callable[..., Any]] = {
    "time": _seconds("time", True), "time_ns": _nanoseconds("time_ns", True),
    "monotonic": _seconds("monotonic", False), "monotonic_ns": _nanoseconds("monotonic_ns", False),
    "perf_counter": _seconds("perf_counter", False),
    "perf_counter_ns": _nanoseconds("perf_counter_ns", False), "sleep": _sleep}
_lock = threading.Lock()
_depth = 0
_saved: dict[str, Callable[..., Any]] = {}


@contextmanager
def _time_patched(active: bool = True) -> Iterator[None]:
    """Install the ``time`` wrappers for the block (nested uses share one installation).

    Each wrapper asks which loop runs in the calling thread: on a virtual loop it answers per
    that clock's ``wall_clock`` setting; anywhere else it is the real function. Whatever was
    installed before is put back on exit, also when the block raises.
    """
    global _depth
    if not active:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved.update({name: getattr(time, name) for name in _PATCHED})
            for name, function in _PATCHED.items():
                setattr(time, name, function)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for name, function in _saved.items():
                    setattr(time, name, function)
                _saved.clear()


@contextmanager
def patch_time(clock: VirtualClock) -> Iterator[VirtualClock]:
    """Put ``time.time``/``monotonic``/``perf_counter`` (and ``_ns``) on ``clock`` for the block.

    For code that reads :mod:`time` directly instead of a session clock (frameworks such as
    Pipecat stamp frames with ``time.time()``): while inside, every such read made on the
    clock's loop returns virtual time (``time.time`` counts from ``clock.epoch_ns``), and
    ``time.sleep`` there fails instead of blocking. Other threads keep the real clock. The real
    functions are restored on exit, also after an error.

    >>> import time
    >>> clock = VirtualClock()
    >>> async def stamp():
    ...     before = time.monotonic()
    ...     await asyncio.sleep(2.5)
    ...     return time.monotonic() - before
    >>> real = time.monotonic
    >>> with patch_time(clock):
    ...     clock.run(stamp())
    2.5
    >>> time.monotonic is real
    True
    """
    previous = clock.wall_clock
    clock.wall_clock = "virtual"
    try:
        with _time_patched():
            yield clock
    finally:
        clock.wall_clock = previous
