"""The one clock: every instant the plugin stamps, and every sleep it takes, goes through a Clock.

Why one object: latency is a difference of two instants, and both must come from the same time
base. :class:`RealClock` reads the monotonic performance counter (wall time can jump under NTP
and poison percentiles with negative latencies). Callers, pacers, playout models, span stamping
and agents receive the clock they should use instead of calling :mod:`time` or
:func:`asyncio.sleep` themselves, so :class:`~pytest_voicelatency.vclock.VirtualClock` (time that
passes only while the program waits) can replace it without touching them.

Inside the plugin, time is integer nanoseconds on that monotonic base. OpenTelemetry wants wall
clock epoch nanoseconds; :meth:`Clock.span_time_ns` converts once, at that boundary, with an
anchor taken when the clock is made, so span start/end times stay monotonic-consistent.

>>> clock = RealClock()
>>> t0 = clock.now_ns()
>>> clock.now_ns() >= t0
True
>>> abs(clock.span_time_ns(t0) - (clock.epoch_anchor_ns + t0 - clock.monotonic_anchor_ns))
0
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "RealClock", "default_clock", "ns_to_ms"]


@runtime_checkable
class Clock(Protocol):
    """What the plugin needs from time: read it, map it to span time, and wait for it."""

    def now_ns(self) -> int:
        """Monotonic instant in integer nanoseconds (arbitrary origin)."""
        ...

    def span_time_ns(self, instant_ns: int) -> int:
        """The OpenTelemetry (epoch) timestamp for a monotonic instant of this clock."""
        ...

    async def sleep_until(self, deadline_ns: int) -> int:
        """Wait until ``deadline_ns`` (or return at once if past); return the instant woken."""
        ...

    @property
    def is_virtual(self) -> bool:
        """True when time only advances as the program waits (no real seconds pass)."""
        ...


class RealClock:
    """Real monotonic time: :func:`time.perf_counter_ns` and :func:`asyncio.sleep`.

    ``sleep_until`` returns the instant it actually woke, so a caller can report its own
    lateness: on shared VMs event-loop wake-ups can be tens of milliseconds late.
    """

    __slots__ = ("epoch_anchor_ns", "monotonic_anchor_ns")

    def __init__(self) -> None:
        self.monotonic_anchor_ns = time.perf_counter_ns()
        self.epoch_anchor_ns = time.time_ns()

    def now_ns(self) -> int:
        return time.perf_counter_ns()

    def span_time_ns(self, instant_ns: int) -> int:
        return self.epoch_anchor_ns + (instant_ns - self.monotonic_anchor_ns)

    async def sleep_until(self, deadline_ns: int) -> int:
        delay = deadline_ns - time.perf_counter_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        else:
            await asyncio.sleep(0)
        return time.perf_counter_ns()

    @property
    def is_virtual(self) -> bool:
        return False

    def call_at(self, deadline_ns: int, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """Run ``callback`` on the running loop at ``deadline_ns`` (a cancellable handle): a
        wait without a task, for code that waits once per frame."""
        delay = (deadline_ns - time.perf_counter_ns()) / 1e9
        return asyncio.get_running_loop().call_later(max(delay, 0.0), callback)

    def __repr__(self) -> str:
        return "RealClock()"


_DEFAULT = RealClock()


def default_clock() -> RealClock:
    """The process-wide real clock used when no clock is passed explicitly."""
    return _DEFAULT


def ns_to_ms(duration_ns: int) -> float:
    """Nanoseconds to milliseconds, rounded to the microsecond (the precision we report)."""
    return round(duration_ns / 1e6, 3)
