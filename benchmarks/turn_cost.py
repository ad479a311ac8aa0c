"""CPU per user turn on virtual time, for comparing two versions of the harness.

The reference conversation of ``benchmarks/virtual_time.py`` (2 calls x 5 turns) against the
reference agent and against the oracle agent, and the harness alone (silence to an agent that
does nothing, per 3 s): each the best of ``--rounds`` runs of ``time.thread_time``, so a busy
neighbour costs less than in a single run. To compare two commits, run it from each one's tree,
alternating, in the same minutes (``PYTHONPATH=<tree> python <tree>/benchmarks/turn_cost.py``).

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

WORKLOADS = ("reference", "oracle", "silent")


def once(workload: str, block_limit_ms: float = 200.0) -> float:
    """CPU ms per turn (per 3 s for ``silent``) of one run of ``workload``."""
    caller = Caller(clock=VirtualClock(block_limit_ms=block_limit_ms), playout=LINE)
    gc.collect()
    start = time.thread_time()
    if workload == "silent":
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
        f"{w} {best[w]:.2f} ms" + (" per 3 s" if w == "silent" else "") for w in workloads))


if __name__ == "__main__":
    main()
