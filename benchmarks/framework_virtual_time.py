"""Virtual vs real time for one Pipecat turn, and the same calls' numbers side by side.

    .venv/bin/python benchmarks/framework_virtual_time.py [N]

1. One turn (``say confirm_order, answer``) of tests/pipecat_services.py's pipeline through
   ``PipecatAgent``: its wall time on the real clock, and the mean wall and CPU time
   (``time.thread_time``) over N turns on ``VirtualClock(wall_clock="virtual")`` after one
   warm-up call (imports, first use), and their ratio (issue 13 asks for >= 100x); then the
   same turn's CPU with fewer of Pipecat's observers (what tracing costs; not how the tests
   run it).
2. The script of tests/test_framework_real_vs_virtual.py on real and on virtual time, for the
   Pipecat pipeline and the LiveKit ``AgentSession`` (tests/livekit_fakes.py): each stage's
   samples side by side, the tolerance the test allows (from the real run's own pacing), and
   each call's wall and CPU time. docs/frameworks.md shows this table.

The machine is shared: CPU time says what a turn costs, wall time what it took here.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loguru import logger  # noqa: E402
from pipecat_services import EnergyVAD, build_pipeline  # noqa: E402
from test_framework_real_vs_virtual import (  # noqa: E402
    disagreements,
    livekit_agent,
    pipecat_agent,
    run_on,
    table,
)
from virtual_time import Silent  # noqa: E402 - an agent that does nothing

from pytest_voicelatency import load_clip  # noqa: E402
from pytest_voicelatency.audio import frames as split_frames  # noqa: E402
from pytest_voicelatency.call.caller import Caller  # noqa: E402
from pytest_voicelatency.call.script import answer, pause, say  # noqa: E402
from pytest_voicelatency.frameworks.pipecat import PipecatAgent  # noqa: E402
from pytest_voicelatency.vclock import VirtualClock  # noqa: E402

logger.remove()  # Pipecat's DEBUG logging costs more than the call itself
TURN = [say("confirm_order"), answer()]


#: what Pipecat's observers cost on virtual time: with RTVI (a processor and a fourth
#: observer, with a task of its own woken by every hop of every frame), Pipecat's queue and
#: task per observer (``inline_observers=False``), PipecatAgent's settings (tracing on: three
#: observers, called inline), and — NOT what the tests run, for the record only — tracing off
#: (turn tracking's observer left), and no observer at all
OBSERVERS = {
    "with RTVI (Pipecat's default; PipecatAgent turns it off)": {
        "worker_options": {"enable_rtvi": True}},
    "observers on Pipecat's queues and tasks (inline_observers=False)": {
        "inline_observers": False},
    "as the tests run it (tracing on, observers inline)": {},
    "tracing off (no stage spans)": {"enable_tracing": False},
    "tracing and turn tracking off": {"enable_tracing": False,
                                      "worker_options": {"enable_turn_tracking": False}},
}


class Timed(PipecatAgent):
    """PipecatAgent, with the CPU seconds of its start and close and its inbound frames
    counted (``SPENT``): how much of a turn is set-up and tear-down, how much per frame."""

    async def start(self, session: Any) -> None:
        cpu = time.thread_time()
        await super().start(session)
        SPENT["start"] += time.thread_time() - cpu

    async def receive(self, pcm: bytes) -> None:
        SPENT["frames"] += 1
        await super().receive(pcm)

    async def close(self) -> None:
        cpu = time.thread_time()
        await super().close()
        SPENT["close"] += time.thread_time() - cpu


SPENT = dict.fromkeys(("start", "close", "frames"), 0.0)


def one(clock: object, **options: Any) -> tuple[float, float]:
    """Wall and CPU seconds of one turn on ``clock``."""
    wall, cpu = time.perf_counter(), time.thread_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a real run on a busy machine warns about its pacing
        Caller(clock=clock).run(Timed(build_pipeline, **options), TURN)  # type: ignore[arg-type]
    return time.perf_counter() - wall, time.thread_time() - cpu


def virtual_turns(n: int, **options: Any) -> tuple[float, float]:
    """Mean wall and CPU seconds of ``n`` turns on virtual time, after a warm-up turn."""
    one(VirtualClock(wall_clock="virtual"), **options)  # warm-up: imports, first-use setup
    runs = [one(VirtualClock(wall_clock="virtual"), **options) for _ in range(n)]
    return statistics.fmean(w for w, _ in runs), statistics.fmean(c for _, c in runs)


def harness_alone(seconds: float, rounds: int = 5) -> float:
    """CPU seconds of the caller pacing ``seconds`` of silence (best of ``rounds``)."""
    best = float("inf")
    for _ in range(rounds):
        cpu = time.thread_time()
        Caller(clock="virtual").run(Silent(), [pause(round(seconds * 1000))])
        best = min(best, time.thread_time() - cpu)
    return best


def vad_loudness_s(rounds: int = 5) -> float:
    """CPU seconds per 20 ms frame of the volume Pipecat's ``VADAnalyzer`` computes for every
    frame it analyses (``_get_smoothed_volume``: pyloudnorm), on the test pipeline's analyser
    (best of ``rounds`` passes over a bundled utterance, four times each)."""
    vad = EnergyVAD()
    vad.set_sample_rate(16_000)
    pcm = list(split_frames(load_clip("confirm_order"), 20)) * 4
    best = float("inf")
    for _ in range(rounds):
        cpu = time.thread_time()
        for frame in pcm:
            vad._get_smoothed_volume(frame)
        best = min(best, (time.thread_time() - cpu) / len(pcm))
    return best


def main(n: int = 20) -> None:
    one(VirtualClock(wall_clock="virtual"))  # warm-up, not counted
    SPENT.update(dict.fromkeys(SPENT, 0.0))
    wall, cpu = virtual_turns(n)
    start, close, frames = (SPENT[k] / (n + 1) for k in ("start", "close", "frames"))
    real_wall, real_cpu = one(None)
    print(f"one Pipecat turn: real {real_wall * 1000:.0f} ms wall ({real_cpu * 1000:.0f} ms CPU); "
          f"virtual {wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU (mean of {n}); "
          f"{real_wall / wall:.0f}x by wall time, {real_wall / cpu:.0f}x by CPU time")
    print(f"  of its CPU on virtual time: agent start {start * 1000:.1f} ms, close "
          f"{close * 1000:.1f} ms; the rest over {frames:.0f} inbound frames, "
          f"{(cpu - start - close) / frames * 1000:.2f} ms each")
    print(f"  the simulated caller alone, pacing as long a call to an agent that does nothing: "
          f"{harness_alone(real_wall) * 1000:.1f} ms CPU")
    loudness = vad_loudness_s()
    print(f"  Pipecat's VADAnalyzer loudness (pyloudnorm) alone: {loudness * 1e6:.1f} us per "
          f"inbound frame, {loudness * frames * 1000:.1f} ms over the turn's frames")
    print("\nthe same turn's CPU on virtual time, by Pipecat's observers:")
    for label, options in OBSERVERS.items():
        _, cpu = virtual_turns(n, **options)
        print(f"  {label}: {cpu * 1000:.1f} ms CPU, {real_wall / cpu:.0f}x")
    rows = []
    for name, make in (("Pipecat", pipecat_agent), ("LiveKit", livekit_agent)):
        run_on("virtual", make)  # warm-up
        rows.append((name, run_on("real", make), run_on("virtual", make)))
    print("\nthe same script on real and on virtual time "
          "(tests/test_framework_real_vs_virtual.py):\n")
    print(table(rows))
    for name, real, virtual in rows:
        for problem in disagreements(real, virtual):
            print(f"{name} disagrees: {problem}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
