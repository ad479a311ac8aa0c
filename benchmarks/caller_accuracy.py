"""How exact is the simulated caller? Measure it against the oracle agent, in real time.

The oracle (:mod:`pytest_voicelatency.agents.oracle`) knows to the nanosecond when the user's speech
ended or began and when it answered or stopped; the caller measures the same turns as a listener
would. This script runs four scenarios at once on one event loop — paced frames jittered off the
caller's grid, 100 ms of leading comfort noise, the whole reply in one burst, and jittered stops
— and prints caller-measured minus truth (p50 / p99 / max, ms) per scenario, next to the event
loop's own wake-up lateness on this machine (idle, and during the run). For contrast it also
prints the error of the naive "first audio arrived" response number. With ``--virtual`` the same
scenarios run on a virtual clock, where nothing wobbles: every error must be 0 to the µs.

    python benchmarks/caller_accuracy.py [--calls 3] [--rounds 8] [--virtual]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from dataclasses import replace

import numpy as np

from pytest_voicelatency.agents.oracle import (
    OracleAgent,
    OracleConfig,
    OracleTurn,
    expected_barge_in_ms,
    expected_response_ms,
    tone_clip,
)
from pytest_voicelatency.call.caller import Caller, CallResult
from pytest_voicelatency.call.playout import PlayoutConfig
from pytest_voicelatency.call.script import Step, answer, barge_in, say
from pytest_voicelatency.clock import RealClock
from pytest_voicelatency.stats.quantiles import nearest_rank

BASE = OracleConfig(response_delay_ms=300, reply_ms=600, stop_delay_ms=60, send_jitter_ms=0)
SCENARIOS = {
    "paced (frames jittered 0-7 ms)": replace(BASE, send_jitter_ms=7.0),
    "100 ms leading silence": replace(BASE, leading_silence_ms=100.0, comfort_noise_dbfs=-60.0),
    "burst delivery": replace(BASE, mode="burst"),
    "stop jitter (0-80 ms)": replace(BASE, stop_jitter_ms=80.0),
}


def script(rounds: int) -> list[Step]:
    unit: list[Step] = [say(tone_clip(500)), answer(), say(tone_clip(500)),
                        barge_in(tone_clip(500), after_ms=250), answer()]
    return unit * rounds


def nearest(turns: list[OracleTurn], instant: int, attribute: str) -> OracleTurn:
    return min(turns, key=lambda t: abs((getattr(t, attribute) or 0) - instant))


def errors(agent: OracleAgent, result: CallResult, playout: PlayoutConfig
           ) -> tuple[list[float], list[float], list[float]]:
    """(response errors, barge-in errors, naive first-arrival response errors), ms."""
    response, barge, naive = [], [], []
    for m in result.metrics.responses:
        truth = nearest(agent.turns, m.start_ns, "user_end_ns")
        response.append(m.value_ms - expected_response_ms(truth, playout))
        if m.arrival_ms is not None:
            naive.append(m.arrival_ms - expected_response_ms(truth, playout))
    for m in result.metrics.barge_ins:
        truth = nearest([t for t in agent.turns if t.barge_onset_ns], m.start_ns, "barge_onset_ns")
        expected = expected_barge_in_ms(truth, playout)
        if m.outcome == "ok" and expected is not None:
            barge.append(m.value_ms - expected)
    return response, barge, naive


async def idle_wakeups(clock: RealClock, count: int, period_ms: float) -> np.ndarray:
    origin = clock.now_ns()
    late = []
    for k in range(1, count + 1):
        deadline = origin + round(k * period_ms * 1e6)
        late.append((await clock.sleep_until(deadline) - deadline) / 1e6)
    return np.array(late)


def row(label: str, values: list[float] | np.ndarray) -> str:
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return f"| {label} | 0 | - | - | - |"
    a = np.abs(x)
    return (f"| {label} | {x.size} | {nearest_rank(x, 0.5):+.3f} | {nearest_rank(a, 0.99):.3f} | "
            f"{a.max():.3f} |")


def errors_table(agents: dict[str, list[OracleAgent]], by_agent: dict[OracleAgent, CallResult],
                 playout: PlayoutConfig) -> dict[str, list[float]]:
    """Print the error table; return the naive errors per scenario."""
    print("\nerror = caller-measured - truth, ms (p50 signed; p99 and max of |error|)\n")
    print("| scenario / measurement | n | p50 | p99 | max |\n|---|---:|---:|---:|---:|")
    naive_all: dict[str, list[float]] = {}
    for name, group in agents.items():
        response: list[float] = []
        barge: list[float] = []
        naive: list[float] = []
        for agent in group:
            r, b, n = errors(agent, by_agent[agent], playout)
            response += r
            barge += b
            naive += n
        naive_all[name] = naive
        print(row(f"{name}: response", response))
        print(row(f"{name}: barge-in", barge))
    return naive_all


def virtual(calls: int, rounds: int) -> None:
    """The same scenarios on a virtual clock: the caller's own error, with no machine noise."""
    caller = Caller(clock="virtual")
    agents = {name: [OracleAgent(replace(cfg, seed=k)) for k in range(calls)]
              for name, cfg in SCENARIOS.items()}
    flat = [a for group in agents.values() for a in group]

    async def run_all() -> list[CallResult]:
        return await asyncio.gather(*(caller.call(agent, script(rounds)) for agent in flat))

    started = time.perf_counter()
    results = caller.clock.run(run_all())  # type: ignore[attr-defined]
    wall = time.perf_counter() - started
    print(f"\nin virtual time: the same {len(results)} calls in {wall:.2f} s")
    errors_table(agents, dict(zip(flat, results)), caller.playout)


async def main(calls: int, rounds: int) -> None:
    clock = RealClock()
    idle = await idle_wakeups(clock, 500, 20.0)
    caller = Caller(clock=clock)
    agents = {name: [OracleAgent(replace(cfg, seed=k)) for k in range(calls)]
              for name, cfg in SCENARIOS.items()}
    started = time.perf_counter()
    results = await asyncio.gather(*(caller.call(agent, script(rounds))
                                     for group in agents.values() for agent in group))
    wall = time.perf_counter() - started
    by_agent = dict(zip([a for group in agents.values() for a in group], results))
    print(f"caller accuracy vs the oracle: {calls} calls x {rounds} rounds per scenario, "
          f"{len(results)} calls at once, {wall:.1f} s; Python {platform.python_version()}, "
          f"{platform.machine()}, {platform.system()}")
    naive_all = errors_table(agents, by_agent, caller.playout)
    print("\nfor contrast, the naive response (first agent audio *arrived*) minus truth:\n")
    print("| scenario | n | p50 | p99 | max |\n|---|---:|---:|---:|---:|")
    for name, naive in naive_all.items():
        print(row(name, naive))
    frames = [f for r in results for f in r.log.frames]
    woke = np.array([(f.woke_ns - f.scheduled_ns) / 1e6 for f in frames])
    sent = np.array([(f.sent_ns - f.scheduled_ns) / 1e6 for f in frames])
    unreliable = sum(not r.reliable for r in results)
    print("\nthis machine's event loop, lateness after a deadline, ms:\n")
    print("| wake-ups | n | p50 | p99 | max |\n|---|---:|---:|---:|---:|")
    print(row("idle loop, one sleeper, 20 ms period", idle))
    print(row(f"during the run: {len(results)} pacers (wake-up)", woke))
    print(row("during the run: inbound frame sent", sent))
    print(f"\ncalls marked unreliable (p99 frame lateness > 5 ms): {unreliable} of {len(results)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3, help="calls per scenario (default 3)")
    parser.add_argument("--rounds", type=int, default=8,
                        help="say/answer/say/barge-in/answer rounds per call (default 8)")
    parser.add_argument("--virtual", action="store_true",
                        help="also run the scenarios on a virtual clock (error must be 0)")
    args = parser.parse_args()
    print("$ python benchmarks/caller_accuracy.py " + " ".join(sys.argv[1:]))
    asyncio.run(main(args.calls, args.rounds))
    if args.virtual:
        virtual(args.calls, args.rounds)
