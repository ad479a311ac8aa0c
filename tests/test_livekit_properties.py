"""Properties of a real LiveKit ``AgentSession`` (livekit-agents 1.8, offline: fake VAD/STT/LLM/TTS
of tests/livekit_fakes.py, no room) with a tool, on ``VirtualClock(wall_clock="virtual")``.
``pytest -k property`` selects them.

The agent books a table: its ``book_table`` tool commits to a :class:`ScriptedBackend` whose
latency and faults hypothesis draws, waiting 400 ms per request and retrying once on a timeout
or an error. The user may talk over the agent while the tool runs (a drawn moment). The
property: **a booking whose caller gave up is not committed twice; the next turn is answered;
every span ends.** Without an idempotency key the tool books twice when a commit lands after
its caller gave up (a slow commit, a lost reply, an error after the write): hypothesis finds it,
shrinks it to a minimal timeline printed in the failure, the test saves it as a replay file and
replays it with the same samples and the same commits. With an idempotency key the property
holds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("livekit.agents", reason="livekit-agents is not installed: pip install "
                    "'pytest-voicelatency[livekit]' to run a real AgentSession")

import livekit_fakes  # noqa: E402 - the replay factory's module
from helpers import recording  # noqa: E402
from livekit_fakes import BACKENDS, TOOL_TIMEOUT_S  # noqa: E402
from tool_property import (  # noqa: E402
    books_twice_after_a_slow_commit,
    check,
    found_shrunk_saved_replayed,
    holds_with_a_key,
    profiles,
    script,
)

from pytest_voicelatency.agents import BackendProfile, ScriptedBackend  # noqa: E402
from pytest_voicelatency.call.caller import Caller, CallResult  # noqa: E402
from pytest_voicelatency.call.log import Received  # noqa: E402
from pytest_voicelatency.call.metrics import timeline  # noqa: E402
from pytest_voicelatency.call.protocol import AgentClear  # noqa: E402
from pytest_voicelatency.call.script import Step  # noqa: E402
from pytest_voicelatency.replay import samples_of  # noqa: E402
from pytest_voicelatency.strategies import Moment  # noqa: E402
from pytest_voicelatency.vclock import VirtualClock  # noqa: E402

PROFILES = profiles(TOOL_TIMEOUT_S)


def run(steps: list[Step], profile: BackendProfile, *, idempotent: bool
        ) -> tuple[CallResult, ScriptedBackend]:
    with recording():
        agent = livekit_fakes.make_booking_agent(profile=profile.to_json(), idempotent=idempotent)
        result = Caller(clock=VirtualClock(wall_clock="virtual")).run(agent, steps)
    return result, BACKENDS[-1]


def test_property_a_non_idempotent_booking_tool_is_found_committing_twice_shrunk_and_replayed(
        tmp_path):
    found_shrunk_saved_replayed(run, script, "livekit_fakes:make_booking_agent", BACKENDS,
                                TOOL_TIMEOUT_S, tmp_path)


@pytest.mark.slow
def test_property_an_idempotent_booking_tool_commits_once_the_next_turn_is_answered_spans_end():
    def barged(result: CallResult, backend: ScriptedBackend) -> bool:
        """The user cut the agent off while the backend was busy."""
        clears = [e.arrived_ns for e in result.log.of(Received)
                  if isinstance(e.event, AgentClear)]
        return bool(backend.events) and any(
            backend.events[0][0] <= at <= backend.events[-1][0] for at in clears)

    holds_with_a_key(run, script, TOOL_TIMEOUT_S, barged,
                     "the user cut the agent off while the backend was busy")


def test_a_slow_commit_after_the_client_timeout_books_twice_without_an_idempotency_key():
    """The failure the property searches for, written by hand (tests/tool_property.py), with
    LiveKit's own spans, the tool's among them."""
    result, backend = books_twice_after_a_slow_commit(
        run, script, {"agent_session", "agent_turn", "function_tool"})
    assert backend.commits[0].at_ns > result.log.origin_ns


def test_a_barge_in_while_the_tool_runs_interrupts_the_speech_but_livekit_waits_for_the_tool():
    """LiveKit 1.8.9 does not cancel a running tool when the user talks over the agent: the
    retry's caller is still waiting when its commit lands, after the agent cleared its audio;
    the tool's output is kept, so the next turn does not book again."""
    profile = BackendProfile.from_json({"calls": [[1500, "hang"], [300, "none"]]})
    result, backend = run(script(Moment(100.0)), profile, idempotent=False)
    [clear] = [e.arrived_ns for e in result.log.of(Received) if isinstance(e.event, AgentClear)]
    [commit] = backend.commits
    assert clear < commit.at_ns and commit.caller_waiting and backend.gave_up_ns(1) is None
    assert backend.requests == 2  # the timed-out request and its retry; no third booking
    check(result, backend, Moment(100.0), profile)


def test_a_tool_that_failed_after_a_write_is_called_again_next_turn_and_books_twice():
    """No timeout at all: the first request commits but replies an error, the retry fails, the
    model answers "could not book"; on the next turn it calls the tool again (as a model does
    after a failure), which books a second table — unless the tool sends an idempotency key."""
    profile = BackendProfile.from_json({"calls": [[100, "commit_error"], [100, "error"]]})
    result, backend = run(script(None), profile, idempotent=False)
    assert [c.request for c in backend.commits] == [0, 2]
    assert backend.gave_up_ns(0) is None  # it got its (error) reply
    with pytest.raises(AssertionError, match="committed 2 times"):
        check(result, backend, None, profile)
    result, backend = run(script(None), profile, idempotent=True)
    assert [c.request for c in backend.commits] == [0]
    check(result, backend, None, profile)


def test_the_same_slow_commit_with_an_idempotency_key_commits_once_and_the_call_repeats():
    profile = BackendProfile.from_json({"calls": [[600, "none"]]})
    first, backend = run(script(None), profile, idempotent=True)
    check(first, backend, None, profile)
    assert [c.request for c in backend.commits] == [1]
    assert any("#0 deduplicated" in text for _, text in backend.events)
    second, again = run(script(None), profile, idempotent=True)
    assert samples_of(first) == samples_of(second) and again.events == backend.events
    assert timeline(first.log, rows=500) == timeline(second.log, rows=500)


DOC = Path(__file__).resolve().parents[1] / "docs" / "frameworks.md"


@pytest.mark.slow
def test_the_frameworks_doc_tool_recipe_runs_as_written(tmp_path):
    """docs/frameworks.md's recipe for a tool whose caller gave up: found, saved, replayed."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"),
                                    flags=re.S) if "make_booking_agent" in b]
    (block,) = blocks
    example = tmp_path / "tool_recipe.py"
    example.write_text(block, encoding="utf-8")
    result = subprocess.run([sys.executable, "-W", "ignore", str(example)], capture_output=True,
                            text=True, timeout=600, check=False, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(DOC.parents[1] / "tests")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "booked twice (#0 " in result.stdout, result.stdout[-3000:]
    assert re.search(r"replayed double_booking.json after \d+ calls: the same samples and "
                     r"commits", result.stdout), result.stdout[-3000:]
