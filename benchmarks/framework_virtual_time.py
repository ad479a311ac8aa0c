"""Virtual vs real wall time for one Pipecat turn (tests/pipecat_services.py's pipeline).

    .venv/bin/python benchmarks/framework_virtual_time.py [N]

Prints the wall time of one turn (say + answer) on the real clock and the mean over N turns
on VirtualClock(wall_clock="virtual"), and their ratio (target >= 100x).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from loguru import logger  # noqa: E402
from pipecat_services import build_pipeline  # noqa: E402

from pytest_voicelatency.call.caller import Caller  # noqa: E402
from pytest_voicelatency.call.script import answer, say  # noqa: E402
from pytest_voicelatency.frameworks.pipecat import PipecatAgent  # noqa: E402
from pytest_voicelatency.vclock import VirtualClock  # noqa: E402

logger.remove()
TURN = [say("confirm_order"), answer()]


def one(clock: object) -> float:
    started = time.perf_counter()
    Caller(clock=clock).run(PipecatAgent(build_pipeline), TURN)  # type: ignore[arg-type]
    return time.perf_counter() - started


def main(n: int = 20) -> None:
    one(VirtualClock(wall_clock="virtual"))  # warm-up: imports, first-use setup
    virtual = sum(one(VirtualClock(wall_clock="virtual")) for _ in range(n)) / n
    real = one(None)
    print(f"one Pipecat turn: real {real * 1000:.0f} ms, virtual {virtual * 1000:.1f} ms "
          f"(mean of {n}), {real / virtual:.0f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
