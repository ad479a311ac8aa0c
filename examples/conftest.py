"""Setup for the example latency suite: which agent is under test, and how many calls at once.

Two options replay the seed incidents on the bundled reference agent, so you can watch the suite
catch them::

    pytest --voice-latency examples/ --incident cold-asr-pool   # handoff.vad_to_asr fails
    pytest --voice-latency examples/ --incident no-flush        # caller.barge_in fails
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_voicelatency.agents import COLD_ASR_POOL, NO_FLUSH, ReferenceServer

INCIDENTS: dict[str, dict[str, Any]] = {
    "none": {},
    "cold-asr-pool": {"asr_pool": COLD_ASR_POOL},  # lazily opened, not sized for the burst
    "no-flush": NO_FLUSH,  # audio shipped 360 ms ahead, never cleared on barge-in
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("voice-latency examples")
    group.addoption("--incident", choices=sorted(INCIDENTS), default="none",
                    help="replay a seed incident on the reference agent (default: none)")
    group.addoption("--example-calls", type=int, default=10, metavar="N",
                    help="concurrent calls in the example suite (default: 10)")


@pytest.fixture(scope="session")
def agent_factory(pytestconfig: pytest.Config) -> ReferenceServer:
    """The agent under test: replace this with a factory of your own agent (one per call)."""
    return ReferenceServer(**INCIDENTS[pytestconfig.getoption("incident")])


@pytest.fixture(scope="session")
def concurrent_calls(pytestconfig: pytest.Config) -> int:
    return int(pytestconfig.getoption("example_calls"))
