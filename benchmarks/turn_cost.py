"""CPU per user turn on virtual time, for comparing two versions of the harness.

The reference conversation of ``benchmarks/virtual_time.py`` (2 calls x 5 turns) against the
reference agent and against the oracle agent, and the harness alone (silence to an agent that
does nothing, per 3 s), and the floor under any of them (``floor``: no harness, one task waking
on the virtual clock every 20 ms to hand a frame to a queue that a second task reads, per 3 s;
the least a per-frame caller and an agent that reads its frames can cost): each the best of
``--rounds`` runs of ``time.thread_time``, so a busy neighbour costs less than in a single run.
To compare two commits, run it from each one's tree, alternating, in the same minutes
(``PYTHONPATH=<tree> python <tree>/benchmarks/turn_cost.py``).

Instruction counts are immune to the neighbours: ``--count N`` runs each workload N times
without timing, so ``valgrind --tool=callgrind`` over ``--count 3`` minus ``--count 1``, divided
by 2 runs x 10 turns, is the instructions per turn (user space only: system calls such as the
selector's poll are not counted).

    python benchmarks/turn_cost.py [--rounds 7]
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/turn_cost.py --count 3 --only oracle
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from virtual_time import LINE, ORACLE, Silent, conversation  # noqa: E402

from pytest_voicelatency.agents.oracle import OracleAgent  # noqa: E402
from pytest_voicelatency.agents.reference import ReferenceServer  # noqa: E402
from pytest_voicelatency.call.caller import Caller  # noqa: E402
from pytest_voicelatency.call.script import pause  # noqa: E402
from pytest_voicelatency.errors import VoiceLatencyWarning  # noqa: E402
from pytest_voicelatency.vclock import VirtualClock  # noqa: E402

WORKLOADS = ("reference", "oracle", "silent", "floor")
PER_3S = ("silent", "floor")


async def _floor(clock: VirtualClock, frames: int) -> None:
    """A pacer task and one reader: a frame every 20 ms of virtual time, nothing else."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    frame = bytes(640)

    async def pace() -> None:
        due = clock.now_ns()
        for _ in range(frames):
            due += 20_000_000
            await clock.sleep_until(due)
            queue.put_nowait(frame)
        queue.put_nowait(None)

    async def read() -> None:
        while await queue.get() is not None:
            pass

    await asyncio.gather(pace(), read())


def once(workload: str, block_limit_ms: float = 200.0) -> float:
    """CPU ms per turn (per 3 s for ``silent`` and ``floor``) of one run of ``workload``."""
    clock = VirtualClock(block_limit_ms=block_limit_ms)
    caller = Caller(clock=clock, playout=LINE)
    gc.collect()
    start = time.thread_time()
    if workload == "floor":
        clock.run(_floor(clock, 150 * 10))
    elif workload == "silent":
        caller.run(Silent(), [pause(3000)] * 10)
    else:
        agent = (lambda: OracleAgent(ORACLE)) if workload == "oracle" else ReferenceServer()
        caller.run_calls(agent, [conversation(k) for k in range(2)])
    return (time.thread_time() - start) * 1000 / 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="runs per workload (best is kept)")
    parser.add_argument("--count", type=int, default=0,
                        help="run each workload this many times untimed (for callgrind)")
    parser.add_argument("--only", choices=WORKLOADS, help="one workload")
    args = parser.parse_args()
    warnings.simplefilter("ignore", VoiceLatencyWarning)
    workloads = (args.only,) if args.only else WORKLOADS
    if args.count:  # under valgrind everything is ~50x slower: no blocked-loop verdicts
        for workload in workloads:
            for _ in range(args.count):
                once(workload, block_limit_ms=600_000)
        return
    for workload in workloads:
        once(workload)  # warm-up: clips, the agent's voice, encoded replies
    best = {w: min(once(w) for _ in range(args.rounds)) for w in workloads}
    print(f"CPU per turn (best of {args.rounds}): " + "  ".join(
        f"{w} {best[w]:.2f} ms" + (" per 3 s" if w in PER_3S else "") for w in workloads))


if __name__ == "__main__":
    main()
