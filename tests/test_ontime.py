"""The virtual-time watchdog of ``frameworks.ontime`` judges a stalled loop by the loop thread's
own CPU time: a loop that spins is interrupted, a loop that a busy machine keeps waiting (or
that waits in a call burning no CPU) is not, until the much longer real-time backstop."""

from __future__ import annotations

import threading
import time

from pytest_voicelatency.frameworks.ontime import (
    STALL_WALL_FACTOR,
    LoopStalled,
    OnVirtualTime,
    _thread_cpu,
)


def _watched(work, stall_limit_s: float) -> BaseException | None:
    """Run ``work`` in a thread watched by an ``OnVirtualTime`` watchdog that sees no frame."""
    ontime = OnVirtualTime("test", stall_limit_s=stall_limit_s)
    raised: list[BaseException] = []
    ready = threading.Event()

    def target() -> None:
        ready.wait()
        try:
            work()
        except LoopStalled as error:
            raised.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    watchdog = threading.Thread(target=ontime._watch, args=(thread.ident,), daemon=True)
    watchdog.start()
    ready.set()
    thread.join(60)
    ontime._stop.set()
    watchdog.join(5)
    return raised[0] if raised else None


def test_a_thread_spinning_on_cpu_is_interrupted():
    def spin() -> None:
        end = time.perf_counter() + 30  # a hang guard only: the watchdog ends it long before
        while time.perf_counter() < end:
            pass

    assert isinstance(_watched(spin, stall_limit_s=0.2), LoopStalled)


def test_a_thread_waiting_without_cpu_is_not_taken_for_a_stalled_loop():
    """A descheduled or blocked loop burns no CPU: 1 s of waiting at a 0.2 s limit is fine
    (the real-time backstop is STALL_WALL_FACTOR x the limit = 3 s)."""
    assert STALL_WALL_FACTOR * 0.2 > 1.0
    assert _watched(lambda: threading.Event().wait(1.0), stall_limit_s=0.2) is None


def test_the_loop_threads_cpu_clock_counts_its_work_not_others():
    done = threading.Event()
    ident: list[int] = []

    def idle() -> None:
        ident.append(threading.get_ident())
        done.wait(5)

    thread = threading.Thread(target=idle)
    thread.start()
    while not ident:
        time.sleep(0.001)
    cpu = _thread_cpu(ident[0])
    before = cpu()
    end = time.perf_counter() + 0.2
    while time.perf_counter() < end:  # this thread's work, not the idle one's
        pass
    assert cpu() - before < 0.1
    done.set()
    thread.join()
