"""How many concurrent real-time calls can one process drive with reliable pacing?

Runs ``n`` concurrent calls of the same short conversation (a tone utterance, the answer, a
tone utterance, a barge-in over the reply, the answer: ~5 s of audio) against
:class:`~pytest_voicelatency.agents.oracle.OracleAgent`, which does almost no work, so what is
measured is the caller itself: its pacer, playout model and log, and asyncio, on one event loop
in one process. For each ``n`` it runs the calls twice:

* **aligned**: every call's frames are due on the same 20 ms tick (``stagger=False``), so each
  tick is a burst of ``n`` frames and the last ones in the burst are late;
* **staggered**: call ``k`` of ``n`` starts ``k/n`` of a frame later (``stagger=True``, the
  default of ``Caller.calls``), so the frames are spread over the tick.

Prints, per run: the process's CPU share (CPU time / wall time: 1.0 is one whole core), the
p50/p99/max lateness of all inbound frames (actual send − deadline) over all calls, how many
calls the caller marked unreliable (their own p99 over ``pacing_limit_ms``, 5 ms), and the
machine's load average (1 min) when the row finished: on a shared machine the neighbours'
load, not this process, sets the tail.

    python benchmarks/realtime_scaling.py [--calls 10 20 40 100] [--rounds 1]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
import warnings

import numpy as np

from pytest_voicelatency.agents.oracle import OracleAgent, OracleConfig, tone_clip
from pytest_voicelatency.call.caller import Caller, CallResult
from pytest_voicelatency.call.script import Step, answer, barge_in, say
from pytest_voicelatency.errors import VoiceLatencyWarning

CONFIG = OracleConfig(response_delay_ms=300, reply_ms=800, stop_delay_ms=60, send_jitter_ms=0)


def script() -> list[Step]:
    return [say(tone_clip(500)), answer(), say(tone_clip(500)),
            barge_in(tone_clip(500), after_ms=250), answer()]


def run(calls: int, stagger: bool) -> tuple[float, float, list[CallResult]]:
    """(wall s, CPU s, results) of ``calls`` concurrent oracle calls in real time."""
    caller = Caller(clock="real")
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    results = caller.run_calls(lambda: OracleAgent(CONFIG), [script() for _ in range(calls)],
                               stagger=stagger)
    return time.perf_counter() - wall, time.process_time() - cpu, results


def lateness_ms(results: list[CallResult]) -> np.ndarray:
    return np.array([(f.sent_ns - f.scheduled_ns) / 1e6 for r in results
                     for f in r.log.frames], dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[10, 20, 40, 100])
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs per row; the row shows the run with the median p99")
    args = parser.parse_args()
    print("$ python benchmarks/realtime_scaling.py " + " ".join(sys.argv[1:]))
    print(f"Python {platform.python_version()}, {platform.machine()}, {platform.system()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the run")
    warnings.simplefilter("ignore", VoiceLatencyWarning)
    run(2, True)  # warm-up: imports, clips
    print("\n| calls | schedule | frames | CPU share | lateness p50 (ms) | p99 (ms) | max (ms) "
          "| unreliable calls | load avg |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for calls in args.calls:
        for stagger in (False, True):
            rows = []
            for _ in range(args.rounds):
                wall, cpu, results = run(calls, stagger)
                late = lateness_ms(results)
                rows.append((float(np.percentile(late, 99)), wall, cpu, late, results))
            rows.sort(key=lambda row: row[0])
            p99, wall, cpu, late, results = rows[len(rows) // 2]
            unreliable = sum(not r.metrics.pacing.reliable for r in results)
            print(f"| {calls} | {'staggered' if stagger else 'aligned'} | {late.size} "
                  f"| {cpu / wall:.2f} | {np.percentile(late, 50):.2f} | {p99:.2f} "
                  f"| {late.max():.2f} | {unreliable} of {calls} | {os.getloadavg()[0]:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
