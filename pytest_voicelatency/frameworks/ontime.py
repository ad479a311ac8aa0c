"""Put a framework (Pipecat, LiveKit Agents) on the call's virtual clock, and say when it can't.

Frameworks read :mod:`time` directly and wait with asyncio. On a
``VirtualClock(wall_clock="virtual")`` both follow the virtual clock for the duration of the call
(:func:`pytest_voicelatency.vclock.patch_time`), and the real functions are restored afterwards.
What that cannot cover is made explicit here, per call, by :class:`OnVirtualTime`:

* **executor work** (``loop.run_in_executor`` / ``asyncio.to_thread``; Pipecat's VAD analyser
  runs in its own one-thread executor): on virtual time it runs *inline* on the loop, so it takes
  no virtual time and its ``time`` reads are virtual, as CPU work on the loop is. Work that blocks
  is then caught by the clock's block detection, which says how long it blocked;
* **a thread the call started** (a thread sleeping on wall time, a native thread of a C
  extension): its time is real while the call's jumps ahead. Detected on the next inbound frame
  and named (thread name and target; native threads by their OS name): the call fails;
* **a time function bound before the patch** (``from time import monotonic`` in a framework
  module: a version that *moved its time calls*): found before the call by scanning the modules
  the call uses (the framework's and those of the user's processors) and named with module and
  line; the call fails. Sites known to be unused by the adapter on the pinned versions are listed
  in :data:`KNOWN_BOUND`;
* **a loop that never yields** (a processor spinning forever): a watchdog thread sees that the
  loop's thread spent ``stall_limit_s`` of its own CPU time without accepting an inbound frame
  (or that none was accepted for :data:`STALL_WALL_FACTOR` times that in real time: a blocking
  call that burns no CPU) and raises :class:`LoopStalled` inside the loop's thread; the clock's
  block detection then fails the call saying how long the loop was blocked. CPU time, not real
  time, so a loaded machine that keeps the process waiting for a core (a CI runner with
  ``-n 2``) never passes for a stalled loop.

May import: vclock, errors (the frameworks layer's own rules apply).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import os
import re
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pytest_voicelatency.call.runner import HARNESS_THREAD
from pytest_voicelatency.vclock import VirtualClock, VirtualTimeError, current_clock

__all__ = ["OnVirtualTime", "LoopStalled", "run_inline", "bound_wall_clocks",
           "KNOWN_BOUND", "can_follow_clock"]

_READS = frozenset({"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter",
                    "perf_counter_ns"})
#: ``module: names`` — module globals bound to a ``time`` function at import (``from time import
#: x``) in the pinned framework versions (pipecat-ai 1.14: none; livekit-agents 1.8.x: the
#: adaptive interruption detector). These are *rebound* to functions that look ``time.x`` up at
#: each call, so they follow the virtual clock during a call and read real time otherwise. Any
#: other bound time function — a framework version that moved its time calls — fails the call,
#: naming module and line. Default factories of dataclass and pydantic fields
#: (``field(default_factory=time.time)``: Pipecat's VAD frame timestamps, LiveKit's event and
#: chat-message ``created_at``) and parameter defaults (``time_source=time.time``: Pipecat's
#: user-to-bot latency observer) are always rebound the same way: they stamp at construction.
KNOWN_BOUND: dict[str, frozenset[str]] = {
    "livekit.agents.inference.interruption": frozenset({"perf_counter_ns"}),
}
#: ``module.Class.field`` of every default factory rebound so far (for the curious)
REBOUND: list[str] = []
_FRAMEWORKS = ("pipecat", "livekit")
#: a loop that accepted no inbound frame for this many times ``stall_limit_s`` of *real* time
#: is stalled even if it burned no CPU (a blocking call); CPU time decides sooner
STALL_WALL_FACTOR = 15
#: the OpenTelemetry SDK stamps spans with ``time_ns`` bound at import: during a virtual call
#: it is pointed at ``time.time_ns`` (so framework spans count from ``clock.epoch_ns`` like the
#: caller's), and put back after the last such call
_SPAN_STAMPS = (("opentelemetry.sdk.trace", "time_ns"),)
_stamps_lock = threading.Lock()
_stamps_users = 0
_stamps_saved: dict[tuple[str, str], Any] = {}


def _virtual_span_stamps(on: bool) -> None:
    global _stamps_users
    with _stamps_lock:
        _stamps_users += 1 if on else -1
        if on and _stamps_users == 1:
            for module_name, attr in _SPAN_STAMPS:
                module = sys.modules.get(module_name)
                if module is not None and _is_wall_clock(getattr(module, attr, None)):
                    _stamps_saved[(module_name, attr)] = getattr(module, attr)
                    setattr(module, attr, _late(attr))
        elif not on and _stamps_users == 0:
            for (module_name, attr), real in _stamps_saved.items():
                setattr(sys.modules[module_name], attr, real)
            _stamps_saved.clear()
_clean: set[str] = set()  # modules already scanned and found clean (module dicts only grow)
_NATIVE = "/proc/self/task"


def can_follow_clock() -> bool:
    """True when the running loop is real, or virtual with ``wall_clock="virtual"``: then a
    framework's ``time`` reads follow the call's clock (an adapter's ``honours_clock``)."""
    clock = current_clock()
    return clock is None or clock.wall_clock == "virtual"


def _is_wall_clock(value: object) -> bool:
    return (isinstance(value, types.BuiltinFunctionType) and value.__self__ is time
            and value.__name__ in _READS)


def _line(module: types.ModuleType, name: str) -> int:
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return 0
    pattern = re.compile(rf"^\s*from\s+time\s+import\b.*\b{re.escape(name)}\b", re.M)
    match = pattern.search(source) or re.search(rf"\btime\.{re.escape(name)}\b", source)
    return source.count("\n", 0, match.start()) + 1 if match else 0


def _late(name: str) -> Callable[[], Any]:
    """``time.<name>`` looked up at each call: virtual inside a patched call, real elsewhere."""
    def read() -> Any:
        return getattr(time, name)()

    read.__name__ = read.__qualname__ = name
    read.__module__ = __name__
    return read


def _rebind_factory(cls: type, field: Any, late: Callable[[], Any]) -> None:
    """A dataclass's ``__init__`` holds its default factories in closure cells: repoint them.
    A pydantic model's validator holds them in its compiled schema: rebuild it."""
    real = field.default_factory
    field.default_factory = late
    if "__pydantic_fields__" in vars(cls):
        rebuild = getattr(cls, "model_rebuild", None)
        if rebuild is not None:
            rebuild(force=True)
        return
    init = vars(cls).get("__init__")
    for cell in getattr(init, "__closure__", None) or ():
        try:
            if cell.cell_contents is real:
                cell.cell_contents = late
        except ValueError:  # an empty cell
            continue


def _factories(cls: type) -> Iterator[tuple[str, Any]]:
    fields = vars(cls).get("__pydantic_fields__") or vars(cls).get("__dataclass_fields__") or {}
    for name, field in dict(fields).items():
        factory = getattr(field, "default_factory", None)
        if _is_wall_clock(factory):
            yield name, field


def _functions(owner: object) -> Iterator[tuple[str, types.FunctionType]]:
    """The plain functions of a module or class namespace (methods unwrapped)."""
    for attr, value in list(vars(owner).items()):
        value = getattr(value, "__func__", value)  # staticmethod / classmethod
        if isinstance(value, types.FunctionType):
            yield attr, value


def _rebind_defaults(function: types.FunctionType) -> bool:
    """Repoint a parameter default bound to a real ``time`` function
    (``def __init__(self, time_source=time.time)``: Pipecat 1.14's ``UserBotLatencyObserver``)
    at a late lookup, as default factories are. True when one was found."""
    found = False
    defaults = function.__defaults__
    if defaults and any(_is_wall_clock(d) for d in defaults):
        function.__defaults__ = tuple(_late(d.__name__) if _is_wall_clock(d) else d
                                      for d in defaults)
        found = True
    kwdefaults = function.__kwdefaults__
    if kwdefaults and any(_is_wall_clock(d) for d in kwdefaults.values()):
        function.__kwdefaults__ = {k: _late(d.__name__) if _is_wall_clock(d) else d
                                   for k, d in kwdefaults.items()}
        found = True
    return found


def bound_wall_clocks(modules: Iterable[str]) -> list[str]:
    """``file:line (module: name)`` of every real ``time`` function the modules bind as a global
    (``from time import monotonic``): reads through it escape the virtual clock. Those listed in
    :data:`KNOWN_BOUND`, and every dataclass/pydantic field's ``default_factory=time.x``, are
    and every parameter default ``=time.x`` of a function or method defined there, are rebound
    to follow the clock instead; clean modules are remembered."""
    found: list[str] = []
    for name in modules:
        module = sys.modules.get(name)
        if module is None or name in _clean:
            continue
        expected = KNOWN_BOUND.get(name, frozenset())
        hits: list[tuple[str, str]] = []
        for attr, value in list(vars(module).items()):
            if _is_wall_clock(value):
                if attr in expected:
                    setattr(module, attr, _late(value.__name__))
                else:
                    hits.append((f"{attr} = time.{value.__name__}", value.__name__))
            elif isinstance(value, type) and value.__module__ == name:
                for field_name, field in list(_factories(value)):
                    _rebind_factory(value, field, _late(field.default_factory.__name__))
                    REBOUND.append(f"{name}.{attr}.{field_name}")
                for method, function in _functions(value):
                    if _rebind_defaults(function):
                        REBOUND.append(f"{name}.{attr}.{method}")
            elif isinstance(value, types.FunctionType) and value.__module__ == name:
                if _rebind_defaults(value):
                    REBOUND.append(f"{name}.{attr}")
        if not hits:
            _clean.add(name)
            continue
        path = getattr(module, "__file__", None) or name
        found += [f"{path}:{_line(module, fn)} ({name}: {hit})" for hit, fn in hits]
    return found


def _modules_of(objects: Iterable[object]) -> set[str]:
    names = {m for m in sys.modules if m.partition(".")[0] in _FRAMEWORKS}
    for obj in objects:
        for cls in type(obj).__mro__:
            if cls.__module__ not in ("builtins", "abc", "typing"):
                names.add(cls.__module__)
    return names


def run_inline(loop: asyncio.AbstractEventLoop, func: Callable[..., Any],
               *args: Any) -> asyncio.Future[Any]:
    """``loop.run_in_executor`` on virtual time: ``func`` runs at once on the loop, where it
    takes no virtual time and reads the virtual clock, and its result (or error) is the loop's
    own future, done at once. (A ``concurrent.futures.Future`` wrapped for the loop would hand
    the result over with ``call_soon_threadsafe``: three loop callbacks and a self-pipe write
    per call — Pipecat's VAD runs here for every inbound frame.)"""
    future = loop.create_future()
    try:
        future.set_result(func(*args))
    except BaseException as error:  # noqa: BLE001 - the future carries it, as a pool's does
        future.set_exception(error)
    return future


class LoopStalled(VirtualTimeError):
    """Raised inside the loop's thread when it ran code without yielding for too long."""


def _native_threads() -> dict[str, str]:
    try:
        tids = os.listdir(_NATIVE)
    except OSError:
        return {}
    names: dict[str, str] = {}
    for tid in tids:
        try:
            with open(f"{_NATIVE}/{tid}/comm") as f:
                names[tid] = f.read().strip()
        except OSError:
            pass
    return names


def _describe(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    where = getattr(target, "__qualname__", None) or type(thread).__qualname__
    module = getattr(target, "__module__", None) or type(thread).__module__
    return f"{thread.name!r} (running {module}.{where})"


class OnVirtualTime:
    """One call's framework on the virtual clock: start with :meth:`enter` (after the pipeline
    is built: the modules to scan are known), :meth:`check` on each inbound frame, :meth:`exit`
    on close. On a real clock every method does nothing."""

    #: inbound frames between two counts of native threads (a directory listing)
    NATIVE_EVERY = 50

    def __init__(self, label: str, *, stall_limit_s: float = 2.0) -> None:
        self.label = label
        self.stall_limit_s = stall_limit_s
        self.clock: VirtualClock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: the threads alive when the call began, as objects: a thread's ident can be reused by
        #: a new thread once it ended, an object never is
        self._threads: set[threading.Thread] = set()
        self._native: set[str] = set()
        self._frames = 0
        self._beat = 0
        self._watchdog: threading.Thread | None = None
        self._stop = threading.Event()
        self._count = 0

    @contextlib.contextmanager
    def setup(self) -> Iterator[None]:
        """Building the framework's objects (lazy imports, model construction) is setup, not
        the call: on a virtual clock its real time is exempt from block detection."""
        clock = current_clock()
        with clock.harness() if clock is not None else contextlib.nullcontext():
            yield

    def enter(self, used: Iterable[object] = ()) -> None:
        """Scan for bound time functions, run executors inline, note the threads, arm the
        watchdog. Raises :class:`VirtualTimeError` naming a bound time function."""
        clock = current_clock()
        if clock is None or clock.wall_clock == "ignore":
            return
        bound = bound_wall_clocks(sorted(_modules_of(used)))
        if bound and clock.wall_clock == "virtual":
            raise VirtualTimeError(
                f"{self.label}: time functions bound before the call reads real time on virtual "
                f"time: {'; '.join(bound[:5])}{' ...' if len(bound) > 5 else ''}. This framework "
                f"version reads the clock where the virtual clock cannot follow (a moved time "
                f"call); run it on clock='real', or pin the supported version "
                f"(docs/frameworks.md)")
        self.clock = clock
        _virtual_span_stamps(True)
        loop = asyncio.get_running_loop()
        self._loop = loop

        def run_in_executor(executor: Any, func: Callable[..., Any],
                            *args: Any) -> asyncio.Future[Any]:
            return run_inline(loop, func, *args)

        loop.run_in_executor = run_in_executor  # type: ignore[method-assign,assignment]
        self._threads = set(threading.enumerate())
        self._native = set(_native_threads())
        self._stop.clear()
        self._beat = 0
        target = threading.get_ident()
        watchdog = threading.Thread(target=self._watch, args=(target,), daemon=True,
                                    name=f"pytest-voicelatency watchdog ({self.label})")
        watchdog.start()
        if watchdog.ident is not None:
            self._threads.add(watchdog)
        self._watchdog = watchdog
        self._count = threading.active_count()

    def check(self) -> None:
        """On an inbound frame: the loop is alive; a thread started by the call fails it."""
        if self.clock is None:
            return
        self._beat += 1
        self._frames += 1
        # by identity, not by count: a thread of the harness ending (a timer) while the agent's
        # starts leaves the count unchanged
        new = [t for t in threading.enumerate() if t not in self._threads and t.is_alive()
               and not t.name.startswith(HARNESS_THREAD)]
        if new:
            self._threads.update(new)
            raise VirtualTimeError(
                f"{self.label}: a thread started during the call on virtual time: "
                f"{', '.join(_describe(t) for t in new)}. Its time is real while the call's "
                f"jumps ahead, so what it waits for or stamps is not on the clock: run this "
                f"agent on clock='real', or keep its work on the event loop")
        if self._frames % self.NATIVE_EVERY == 0:
            native = _native_threads()
            new_native = {tid: name for tid, name in native.items() if tid not in self._native}
            self._native |= set(native)
            python = {str(t.native_id) for t in threading.enumerate()}
            foreign = {tid: name for tid, name in new_native.items() if tid not in python}
            if foreign:
                raise VirtualTimeError(
                    f"{self.label}: native threads (a C extension's) started during the call on "
                    f"virtual time: {', '.join(sorted(set(foreign.values())))}. Their timers "
                    f"and sleeps run on real time, which virtual time cannot control: run this "
                    f"agent on clock='real'")

    def exit(self) -> None:
        """Disarm the watchdog and restore the loop's executor."""
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(1.0)
            self._watchdog = None
        if self._loop is not None:
            vars(self._loop).pop("run_in_executor", None)
            self._loop = None
        if self.clock is not None:
            _virtual_span_stamps(False)
        self.clock = None

    def _watch(self, target: int) -> None:
        cpu = _thread_cpu(target)
        seen, since, since_cpu = -1, time.perf_counter(), cpu()
        while not self._stop.wait(self.stall_limit_s / 10):
            now, now_cpu = time.perf_counter(), cpu()
            if self._beat != seen:
                seen, since, since_cpu = self._beat, now, now_cpu
            elif (now_cpu - since_cpu > self.stall_limit_s
                  or now - since > self.stall_limit_s * STALL_WALL_FACTOR):
                # the loop thread runs code that never yields: interrupt it there
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target),
                                                           ctypes.py_object(LoopStalled))
                since, since_cpu = now, now_cpu


def _thread_cpu(ident: int) -> Callable[[], float]:
    """The CPU time of thread ``ident`` (``threading.get_ident()``), read from another thread;
    real time where the platform has no per-thread CPU clock."""
    try:
        clock = time.pthread_getcpuclockid(ident)
        time.clock_gettime(clock)
    except (AttributeError, OSError):
        return time.perf_counter
    return lambda: time.clock_gettime(clock)
