"""Specification of the virtual clock: time passes only while every task waits, exactly, and code
that would make virtual numbers nonsense (blocking the loop, reading the wall clock, waiting on
nothing) is named instead of trusted.

No timing bounds here: how fast virtual time runs is benchmarks/virtual_time.py's business.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from pytest_voicelatency.clock import Clock
from pytest_voicelatency.vclock import (
    VirtualClock,
    VirtualEventLoop,
    VirtualTimeError,
    current_clock,
    patch_time,
)

S = 1_000_000_000


def test_it_is_a_clock_and_time_moves_only_while_everything_waits():
    clock = VirtualClock()
    assert isinstance(clock, Clock) and clock.is_virtual

    async def main():
        start = clock.now_ns()
        sum(range(200_000))                          # CPU work: no virtual time
        busy = clock.now_ns() - start
        await clock.sleep_until(start + 3 * S)
        return busy, clock.now_ns() - start

    assert clock.run(main()) == (0, 3 * S)


def test_sleeps_wake_exactly_on_their_deadline_in_order_ties_first_come_first_served():
    clock = VirtualClock()
    woke: list[tuple[str, int]] = []

    async def sleeper(name, at):
        woke.append((name, await clock.sleep_until(at)))

    async def main():
        t0 = clock.now_ns()
        await asyncio.gather(sleeper("c", t0 + 7), sleeper("a", t0 + 1), sleeper("b", t0 + 7),
                             sleeper("past", t0 - 5))
        return t0

    t0 = clock.run(main())
    assert woke == [("past", t0), ("a", t0 + 1), ("c", t0 + 7), ("b", t0 + 7)]


def test_asyncio_timers_run_on_virtual_time_too():
    clock = VirtualClock()

    async def main():
        start = clock.now_ns()
        await asyncio.sleep(0.25)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), timeout=2)
        async with asyncio.timeout(1.5):
            await asyncio.sleep(1)
        return clock.now_ns() - start

    assert clock.run(main()) == 3_250_000_000
    assert clock.now_ns() > 3 * S            # time carries on across runs, never back


def test_spans_times_are_the_epoch_plus_virtual_time_so_runs_repeat():
    a, b = VirtualClock(), VirtualClock()
    assert a.span_time_ns(a.now_ns()) == b.span_time_ns(b.now_ns()) == a.epoch_ns
    assert a.span_time_ns(a.now_ns() + 5) - a.span_time_ns(a.now_ns()) == 5


def test_the_running_loop_tells_whose_clock_it_is():
    clock = VirtualClock()

    async def main():
        return current_clock(), isinstance(asyncio.get_running_loop(), VirtualEventLoop)

    assert clock.run(main()) == (clock, True)
    assert current_clock() is None
    assert asyncio.run(asyncio.sleep(0, current_clock())) is None


def test_sleeping_on_it_from_a_real_loop_says_how_to_run_it():
    clock = VirtualClock()
    with pytest.raises(VirtualTimeError, match=r"needs the clock's own event loop, but a real "
                                               r"loop is running.*clock.run\(...\)"):
        asyncio.run(clock.sleep_until(clock.now_ns() + S))


def test_run_refuses_inside_a_running_loop_and_runs_one_loop_at_a_time():
    clock = VirtualClock()

    async def nested():
        clock.run(asyncio.sleep(0))

    with pytest.raises(VirtualTimeError, match="while an event loop is running"):
        asyncio.run(nested())


def test_tasks_left_running_are_cancelled_and_listed_as_leaks():
    clock = VirtualClock()

    async def forgotten():
        await asyncio.sleep(3600)

    async def main():
        asyncio.ensure_future(forgotten())
        await asyncio.sleep(1)

    clock.run(main())
    assert len(clock.leaked) == 1 and "forgotten" in clock.leaked[0]
    clock.run(asyncio.sleep(0))
    assert clock.leaked == ()


# ---------------------------------------------------------------------- the wall clock


async def _reads_the_wall_clock():
    before = time.monotonic()                                    # this line is named
    await asyncio.sleep(2)
    return time.monotonic() - before


def test_a_wall_clock_read_on_the_loop_is_named_with_its_line():
    clock = VirtualClock()
    with pytest.raises(VirtualTimeError, match=r"wall clock read on virtual time: "
                                               r"time.monotonic\(\) at .*test_virtual_clock.py:\d+ "
                                               r"in _reads_the_wall_clock.*wall_clock='virtual'"):
        clock.run(_reads_the_wall_clock())


def test_the_standard_library_may_read_it_logging_stamps_records():
    clock = VirtualClock()

    async def main():
        logging.getLogger("virtual").info("stamped with time.time()")
        await asyncio.sleep(1)

    clock.run(main())


def test_patched_time_functions_follow_the_virtual_clock_on_its_loop_only():
    clock = VirtualClock(wall_clock="virtual")
    real = (time.monotonic, time.perf_counter, time.time, time.monotonic_ns)
    seen: dict[str, float] = {}

    def other_thread():
        seen["thread"] = time.monotonic()

    async def main():
        seen["elapsed"] = await _reads_the_wall_clock()
        seen["epoch"] = time.time()
        seen["ns"] = time.perf_counter_ns()
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()

    clock.run(main())
    assert seen["elapsed"] == 2.0
    assert seen["epoch"] == clock.span_time_ns(clock.now_ns()) / S
    assert seen["ns"] == clock.now_ns()
    assert abs(seen["thread"] - real[0]()) < 60          # the thread read the real clock
    assert (time.monotonic, time.perf_counter, time.time, time.monotonic_ns) == real


def test_patch_time_restores_the_real_functions_also_when_the_block_fails():
    clock = VirtualClock()
    real = time.monotonic
    with pytest.raises(KeyError), patch_time(clock):
        assert time.monotonic is not real
        assert clock.run(_reads_the_wall_clock()) == 2.0
        raise KeyError("the test failed inside the block")
    assert time.monotonic is real and clock.wall_clock == "guard"


def test_time_sleep_on_the_loop_fails_on_the_spot_naming_the_line():
    clock = VirtualClock()

    async def main():
        time.sleep(0.2)

    with pytest.raises(VirtualTimeError, match=r"time.sleep\(0.2\) at .*test_virtual_clock.py"):
        clock.run(main())


def test_busy_waiting_on_patched_time_is_stopped_not_left_to_hang():
    clock = VirtualClock(wall_clock="virtual", block_limit_ms=20)

    async def main():
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:     # virtual time never moves in here
            pass

    with pytest.raises(VirtualTimeError, match="busy-waiting on virtual time: time.monotonic"):
        clock.run(main())


# ---------------------------------------------------------------------- blocking and deadlocks


def _burn_cpu(ms: float) -> None:
    start = time.thread_time()
    while time.thread_time() - start < ms / 1000:
        pass


def test_a_callback_that_blocks_the_loop_is_reported_with_how_long():
    clock = VirtualClock(block_limit_ms=20)

    async def main():
        await asyncio.sleep(0.1)
        _burn_cpu(60)
        await asyncio.sleep(0.1)

    with pytest.raises(VirtualTimeError, match=r"the event loop was blocked for \d+ ms of real "
                                               r"time \(\d+ ms of CPU\).*limit 20 ms"):
        clock.run(main())


def test_a_watching_call_is_failed_instead_and_the_loop_goes_on():
    clock = VirtualClock(block_limit_ms=20)
    failures: list[BaseException] = []

    async def main():
        with clock.watch(failures.append, "ToyAgent in session s1"):
            _burn_cpu(60)
            await asyncio.sleep(1)
        return "finished"

    assert clock.run(main()) == "finished"
    [error] = failures
    assert "(while running ToyAgent in session s1)" in str(error)


def test_the_harness_own_work_is_not_the_agents_blocking():
    clock = VirtualClock(block_limit_ms=20)

    async def main():
        with clock.harness():
            _burn_cpu(60)
        await asyncio.sleep(1)

    clock.run(main())


def test_a_deadlock_is_an_error_naming_it_never_a_hang():
    clock = VirtualClock(idle_limit_s=0.05)
    with pytest.raises(VirtualTimeError, match="deadlock on virtual time: every task is waiting"):
        clock.run(asyncio.Event().wait())


def test_work_handed_to_a_thread_wakes_the_loop_without_a_deadlock():
    clock = VirtualClock(idle_limit_s=30)

    async def main():
        return await asyncio.to_thread(lambda: threading.current_thread().name)

    assert clock.run(main()) != threading.current_thread().name


@pytest.mark.parametrize("kwargs, message", [
    ({"block_limit_ms": 0}, "block_limit_ms must be a positive"),
    ({"wall_clock": "sometimes"}, "wall_clock must be 'guard', 'virtual' or 'ignore'"),
    ({"idle_limit_s": -1}, "idle_limit_s must be a positive"),
])
def test_bad_settings_say_what_is_accepted(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VirtualClock(**kwargs)
