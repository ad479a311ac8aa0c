"""How much faster is virtual time, and does a long run stay flat in memory?

1. **Side by side**: the example suite's reference conversation (five user turns, two of them
   barge-ins, over a line with delay and jitter) against the bundled reference agent, once in
   real time and once on a virtual clock, in one run. Prints wall time, CPU time, the speed-up
   and the wall time per user turn, and checks the two runs measured the same kind of call.
   The virtual rows are the best of three runs (by CPU time). Next to them, the same
   conversation on virtual time against
   :class:`~pytest_voicelatency.agents.oracle.OracleAgent` (a 2.4 s reply, no VAD, no ASR/LLM/TTS
   work): what the harness costs per turn, so the reference agent's own share is the difference.
2. **What a frame costs**: a call that only sends silence to an agent that does nothing: the
   harness's own CPU per 3 s of conversation (150 frames), on virtual time.
3. **Soak**: ``--soak-turns`` user turns (default 10 000) on virtual time, call after call, with
   ``tracemalloc`` on over the first and the last thousand; prints resident memory after each
   thousand turns and what each traced window kept, with its largest block, and the size of a
   rebuild of CPython's interned-string table in the same process (the soak's one large
   "kept" block). The caller keeps every result it is given, so the soak drops each
   call's result once it is measured, as a long-running user would.

    python benchmarks/virtual_time.py [--calls 1] [--soak-turns 10000] [--skip-real]
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
import tracemalloc
import warnings

from pytest_voicelatency.agents.oracle import OracleAgent, OracleConfig
from pytest_voicelatency.agents.reference import ReferenceServer
from pytest_voicelatency.call.caller import Caller, CallResult
from pytest_voicelatency.call.playout import PlayoutConfig
from pytest_voicelatency.call.script import Step, answer, background, barge_in, pause, say
from pytest_voicelatency.errors import VoiceLatencyWarning

UTTERANCES = ["confirm_order", "cancel_order", "late_pizza", "book_table", "change_address",
              "open_tomorrow", "hello"]
INTERRUPTIONS = ["wait_stop", "meant_tuesday"]
LINE = PlayoutConfig(buffer_ms=60, delay_ms=20, jitter_ms=10)
TURNS_PER_CALL = 5
#: the oracle answering the reference conversation: it must hold through the pauses inside
#: "wait ... stop" (end_hold_ms=300), and replies as long as the reference agent does
ORACLE = OracleConfig(end_hold_ms=300, response_delay_ms=400, reply_ms=2400)


def conversation(k: int) -> list[Step]:
    """Call ``k`` of examples/test_reference_agent_latency.py: five turns, two barge-ins."""
    u = [UTTERANCES[(k + i) % len(UTTERANCES)] for i in range(3)]
    noise: list[Step] = [background("pink_noise", gain_db=-35)] if k % 3 == 0 else []
    return noise + [
        say(u[0]), answer(),
        say(u[1]), barge_in(INTERRUPTIONS[k % 2], after_ms=300 + 100 * (k % 4)), answer(),
        say(u[2]), barge_in(INTERRUPTIONS[(k + 1) % 2], after_ms=700), answer(),
    ]


def timed(clock: str, calls: int, oracle: bool = False) -> tuple[float, float, list[CallResult]]:
    """(wall s, CPU s, results) of ``calls`` concurrent conversations on ``clock``."""
    caller = Caller(clock=clock, playout=LINE)  # type: ignore[arg-type]
    gc.collect()
    agent = (lambda: OracleAgent(ORACLE)) if oracle else ReferenceServer()
    wall, cpu = time.perf_counter(), time.process_time()
    results = caller.run_calls(agent, [conversation(k) for k in range(calls)])
    return time.perf_counter() - wall, time.process_time() - cpu, results


def heard(results: list[CallResult]) -> str:
    values = [m.value_ms for r in results for m in r.metrics.responses + r.metrics.barge_ins]
    return f"{len(values)} measurements, mean {sum(values) / len(values):.0f} ms"


class Silent:
    honours_clock = True

    async def start(self, session: object) -> None:
        pass

    async def receive(self, pcm: bytes) -> None:
        pass

    async def close(self) -> None:
        pass


def frame_cost(rounds: int = 7) -> float:
    """CPU ms the harness spends per 3 s of conversation (best of ``rounds`` 30 s calls)."""
    best = float("inf")
    for _ in range(rounds):
        caller = Caller(clock="virtual")
        start = time.thread_time()
        caller.run(Silent(), [pause(3000)] * 10)
        best = min(best, (time.thread_time() - start) * 1000 / 10)
    return best


def _rss_mib() -> float:
    """Resident memory now (Linux /proc), MiB; 0 where unavailable."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * 4096 / 2**20
    except OSError:
        return 0.0


def soak(turns: int) -> None:
    """Memory is traced (tracemalloc) over the first and the last thousand turns only: it slows
    this code ~4x. Each window reports what its turns allocated and kept, and the largest block
    it kept (see :func:`interned_table_rebuild`)."""
    calls = -(-turns // TURNS_PER_CALL)
    window = 1000 // TURNS_PER_CALL
    caller = Caller(clock="virtual", playout=LINE)
    server = ReferenceServer()
    kept: list[tuple[float, float, str]] = []  # (KiB kept, KiB of its largest block, where)
    rss: list[tuple[int, float, float]] = []  # (turns done, RSS MiB, wall s)
    started = time.perf_counter()
    for k in range(calls):
        if k in (0, calls - window):
            gc.collect()
            tracemalloc.start(1)  # every block traced from here on was allocated in the window
        caller.run(server, conversation(k))
        caller.results.clear()  # a long run keeps what it needs, not every call's log
        if k + 1 in (window, calls):
            gc.collect()
            largest = max(tracemalloc.take_snapshot().traces, key=lambda trace: trace.size)
            kept.append((tracemalloc.get_traced_memory()[0] / 1024, largest.size / 1024,
                         str(largest.traceback[-1])))
            tracemalloc.stop()
        done = (k + 1) * TURNS_PER_CALL
        if done % 1000 == 0:
            rss.append((done, _rss_mib(), time.perf_counter() - started))
    print(f"\n3. soak: {calls * TURNS_PER_CALL} turns ({calls} calls of {TURNS_PER_CALL}) on "
          f"virtual time\n")
    print("| turns | resident memory (MiB) | wall (s) |\n|---:|---:|---:|")
    for done, mib, wall in rss:
        print(f"| {done} | {mib:.1f} | {wall:.0f} |")
    for label, (total, block, where) in zip(("first", "last"), kept, strict=False):
        print(f"\nPython heap kept (tracemalloc) by the {label} thousand turns: {total:.0f} KiB; "
              f"its largest block {block:.1f} KiB, allocated at {where}")
    print(f"\nCPython's interned-string table rebuilt by churn alone (strings interned and "
          f"dropped, none kept), in this process: {interned_table_rebuild():.0f} KiB in one "
          f"block. A window that sees the rebuild keeps the new table; the old one was "
          f"allocated before the window, so tracemalloc does not count it as freed.")


def interned_table_rebuild() -> float:
    """KiB that tracemalloc reports kept when strings are interned and dropped again and
    nothing else happens: the interned-string dict fills with deleted slots and is rebuilt,
    at the size its live strings need. A one-block "kept" of this size in a soak window is
    that rebuild, not a leak."""
    gc.collect()
    tracemalloc.start(1)
    for i in range(200_000):
        sys.intern(f"soak-churn-{i}")  # interned, then dropped (3.11's interned are mortal)
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] / 1024
    tracemalloc.stop()
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1,
                        help="concurrent conversations in the side-by-side run (default 1)")
    parser.add_argument("--soak-turns", type=int, default=10_000,
                        help="user turns in the soak (default 10000; 0 to skip)")
    parser.add_argument("--skip-real", action="store_true", help="skip the real-time run")
    args = parser.parse_args()
    if 0 < args.soak_turns < 2000:
        parser.error(f"--soak-turns {args.soak_turns}: the soak compares the first and the "
                     f"last thousand turns, so it needs at least 2000 (or 0 to skip it)")
    print("$ python benchmarks/virtual_time.py " + " ".join(sys.argv[1:]))
    print(f"Python {platform.python_version()}, {platform.machine()}, {platform.system()}")
    warnings.simplefilter("ignore", VoiceLatencyWarning)
    turns = args.calls * TURNS_PER_CALL
    timed("virtual", 1)  # warm-up: clips, the agent's voice, imports
    # the best of three runs (by CPU), as for the oracle below: one run on a busy machine
    # can lose its core for a while, which inflates wall time, not the work
    v_wall, v_cpu, v_results = min((timed("virtual", args.calls) for _ in range(3)),
                                   key=lambda run: run[1])
    print(f"\n1. the reference conversation, {args.calls} call(s) x {TURNS_PER_CALL} turns\n")
    print("| clock | wall (s) | CPU (s) | wall per turn (ms) | what the caller heard |")
    print("|---|---:|---:|---:|---|")
    if not args.skip_real:
        r_wall, r_cpu, r_results = timed("real", args.calls)
        print(f"| real | {r_wall:.2f} | {r_cpu:.2f} | {r_wall * 1000 / turns:.0f} | "
              f"{heard(r_results)} |")
    print(f"| virtual | {v_wall:.3f} | {v_cpu:.3f} | {v_wall * 1000 / turns:.1f} | "
          f"{heard(v_results)} |")
    timed("virtual", 1, oracle=True)
    o_wall, o_cpu, o_results = min((timed("virtual", args.calls, oracle=True) for _ in range(3)),
                                   key=lambda run: run[1])
    print(f"| virtual, oracle agent (harness) | {o_wall:.3f} | {o_cpu:.3f} | "
          f"{o_wall * 1000 / turns:.1f} | {heard(o_results)} |")
    if not args.skip_real:
        print(f"\nvirtual time is {r_wall / v_wall:.0f}x faster in wall time; it needs "
              f"{v_cpu / r_cpu:.2f}x the CPU of the real-time run (the same work, no waiting)")
    print(f"\n2. the harness alone (an agent that does nothing): {frame_cost():.2f} ms of CPU "
          f"per 3 s of conversation (150 frames)")
    if args.soak_turns:
        soak(args.soak_turns)


if __name__ == "__main__":
    main()
