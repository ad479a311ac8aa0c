"""Properties of an unmodified Pipecat 1.14 pipeline whose LLM calls a booking tool through
Pipecat's own function calling (tests/pipecat_tools.py), on ``VirtualClock(wall_clock="virtual")``.
``pytest -k property`` selects them.

The model says "One moment, I am booking it." and calls ``book_table``; the handler registered
with ``register_function`` (Pipecat's defaults: ``cancel_on_interruption=True``) commits to a
:class:`ScriptedBackend` whose latency and faults hypothesis draws, waiting 400 ms per request
and retrying once on a timeout or an error. The user may talk over the agent while the tool runs
(a drawn moment). The property: **a booking whose caller gave up is not committed twice; the
next turn is answered; every span ends.** The caller gives up two ways here: the handler's own
client timeout, and Pipecat cancelling the handler on the barge-in — the backend commits anyway,
the context says "CANCELLED", and the model calls the tool again on the next turn. Without an
idempotency key hypothesis finds the duplicate, shrinks it to a minimal timeline printed in the
failure, the test saves it as a replay file and replays it with the same samples and commits.
With the key the property holds.
"""

from __future__ import annotations

import sys
import time

import pytest

pytest.importorskip("pipecat", reason="pipecat-ai is not installed: pip install "
                    "'pytest-voicelatency[pipecat]' to run a real Pipecat pipeline")

import pipecat_tools  # noqa: E402 - the replay factory's module
from helpers import recording  # noqa: E402
from hypothesis import given  # noqa: E402
from loguru import logger  # noqa: E402
from pipecat_tools import BACKENDS, LLMS, TOOL_TIMEOUT_S  # noqa: E402
from tool_property import (  # noqa: E402
    FIND,
    PREAMBLE_MS,
    books_twice_after_a_slow_commit,
    check,
    found_shrunk_saved_replayed,
    holds_with_a_key,
    profiles,
)
from tool_property import script as booking_script  # noqa: E402

from pytest_voicelatency.agents import BackendProfile, ScriptedBackend  # noqa: E402
from pytest_voicelatency.call.caller import Caller, CallResult  # noqa: E402
from pytest_voicelatency.call.log import Received  # noqa: E402
from pytest_voicelatency.call.protocol import AgentClear  # noqa: E402
from pytest_voicelatency.call.script import Step  # noqa: E402
from pytest_voicelatency.strategies import Moment, backend_profiles, barge_in_moments  # noqa: E402
from pytest_voicelatency.vclock import VirtualClock  # noqa: E402

PROFILES = profiles(TOOL_TIMEOUT_S)
FACTORY = "pipecat_tools:make_booking_pipeline"

logger.remove()  # Pipecat's DEBUG logging costs more than the call itself
logger.add(sys.stderr, level="WARNING")


def script(moment: Moment | None, word: str = "wait_stop") -> list[Step]:
    """The booking script, with 3 s at the end for what follows the last turn to play out: a
    tool call on that turn makes a second reply, and a call hung up mid-reply leaves that
    reply's ``tts`` span open in Pipecat 1.14 (tests/test_framework_properties.py)."""
    return booking_script(moment, word, settle_ms=3000)


def run(steps: list[Step], profile: BackendProfile, *, idempotent: bool,
        cancel_on_interruption: bool | None = None) -> tuple[CallResult, ScriptedBackend]:
    with recording():
        agent = pipecat_tools.make_booking_pipeline(
            profile=profile.to_json(), idempotent=idempotent,
            cancel_on_interruption=cancel_on_interruption)
        result = Caller(clock=VirtualClock(wall_clock="virtual")).run(agent, steps)
    return result, BACKENDS[-1]


def test_property_a_non_idempotent_pipecat_tool_is_found_committing_twice_shrunk_and_replayed(
        tmp_path):
    found_shrunk_saved_replayed(run, script, FACTORY, BACKENDS, TOOL_TIMEOUT_S, tmp_path)


@pytest.mark.slow
def test_property_an_idempotent_pipecat_tool_commits_once_the_next_turn_is_answered_spans_end():
    def cancelled(result: CallResult, backend: ScriptedBackend) -> bool:
        """The model saw a call Pipecat had cancelled on a barge-in."""
        return any("cancelled" in states for states in LLMS[-1].seen)

    holds_with_a_key(run, script, TOOL_TIMEOUT_S, cancelled,
                     "the model saw a call Pipecat had cancelled on a barge-in")


def test_a_slow_commit_after_the_client_timeout_books_twice_without_an_idempotency_key():
    """The failure the property searches for, written by hand (tests/tool_property.py), with
    Pipecat's own spans."""
    books_twice_after_a_slow_commit(run, script, {"conversation", "turn", "stt", "llm", "tts"})


#: the backend commits 350 ms after the request: within the tool's 400 ms timeout, but after a
#: barge-in 100 ms into the preamble has reached the LLM (audible 160 ms after the request)
IN_TIME = BackendProfile.from_json({"calls": [[350, "none"]]})


def test_a_barge_in_while_the_tool_runs_cancels_it_the_backend_commits_the_next_turn_books_again():
    """Pipecat 1.14 registers a tool with ``cancel_on_interruption=True`` by default: the
    barge-in's InterruptionFrame cancels the running handler (its ``wait_for`` gives up at the
    instant the agent clears its audio), the backend commits anyway, the context says
    "CANCELLED", and the model calls the tool again on the barge-in's own turn — a second
    booking with no timeout involved, unless the tool sends an idempotency key."""
    result, backend = run(script(Moment(100.0)), IN_TIME, idempotent=False)
    sent = backend.events[0][0]  # request #0: the tool started
    clear = min(e.arrived_ns for e in result.log.of(Received)
                if isinstance(e.event, AgentClear) and e.arrived_ns > sent)
    assert backend.gave_up_ns(0) == clear  # Pipecat cancelled the handler on the interruption
    assert [(c.request, c.caller_waiting) for c in backend.commits] == [(0, False), (1, True)]
    assert backend.commits[0].at_ns > clear
    model = LLMS[-1]
    assert model.calls == 2 and "cancelled" in model.seen[1]
    with pytest.raises(AssertionError, match="committed 2 times"):
        check(result, backend, Moment(100.0), IN_TIME)

    result, backend = run(script(Moment(100.0)), IN_TIME, idempotent=True)
    assert [(c.request, c.caller_waiting) for c in backend.commits] == [(0, False)]
    assert any("#1 deduplicated" in text for _, text in backend.events)
    check(result, backend, Moment(100.0), IN_TIME)


def test_with_cancel_on_interruption_false_the_tool_outlives_the_barge_in_and_books_once():
    """Registered as an async tool (``cancel_on_interruption=False``) the handler keeps waiting
    through the barge-in, gets the commit, and the model, seeing the result, does not call the
    tool again: the same call books once without a key. (Its own client timeout can still
    book twice: that path needs the key either way.)"""
    result, backend = run(script(Moment(100.0)), IN_TIME, idempotent=False,
                          cancel_on_interruption=False)
    assert [(c.request, c.caller_waiting) for c in backend.commits] == [(0, True)]
    assert backend.gave_up_ns(0) is None and LLMS[-1].calls == 1
    check(result, backend, Moment(100.0), IN_TIME)


#: a backend that always answers within the tool's timeout, and a barge-in every time, in the
#: preamble's first 300 ms (the tool runs from 160 ms before the audio until at most 399 ms
#: after the request): the only way left to a second booking is Pipecat cancelling the tool
IN_TIME_PROFILES = backend_profiles(requests=(1, 1), latency_ms=(0, 399), faults=("none",))
BARGE_INS = barge_in_moments(anchors=("free",), states=(None,), reply_ms=PREAMBLE_MS,
                             max_after_ms=300)


@pytest.mark.slow
def test_property_a_barge_in_cancelling_the_tool_is_found_booking_twice_without_a_timeout():
    examples: list[tuple[Moment, BackendProfile]] = []
    failing: list[tuple[Moment, BackendProfile, CallResult, ScriptedBackend]] = []
    started = time.process_time()

    @FIND
    @given(BARGE_INS, IN_TIME_PROFILES)
    def booked_once(moment: Moment, profile: BackendProfile) -> None:
        examples.append((moment, profile))
        result, backend = run(script(moment), profile, idempotent=False)
        try:
            check(result, backend, moment, profile)
        except AssertionError:
            failing.append((moment, profile, result, backend))
            raise

    with pytest.raises(AssertionError, match="committed 2 times") as info:
        booked_once()
    cpu_s = time.process_time() - started
    moment, profile, result, backend = failing[-1]  # the shrunk one: re-run last
    first = next(i for i, e in enumerate(examples) if e in [(f[0], f[1]) for f in failing])
    assert [(c.request, c.caller_waiting) for c in backend.commits] == [(0, False), (1, True)]
    assert "gives up waiting" in str(info.value)
    # shrunk to the boundary: a barge-in as the audio starts, and the shortest latency whose
    # commit lands after Pipecat cancelled the tool (1 ms after)
    sent, gave_up = backend.events[0][0], backend.gave_up_ns(0)
    assert gave_up is not None and moment.after_ms == 0
    assert profile.calls[0].latency_ms == (gave_up - sent) / 1e6 + 1
    print(f"\nfound after {first + 1} of {len(examples)} examples ({cpu_s:.1f} s of CPU), "
          f"shrunk to {moment.describe()}, {profile.describe()}:\n{info.value}")
