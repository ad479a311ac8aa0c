"""A latency suite for a voice agent, run against the bundled reference agent.

Copy this suite for your own agent (a pip install ships it inside the package: the README shows
the one-line copy): change the ``agent_factory`` fixture in ``conftest.py``, keep the call mix,
adjust the budgets. Run it with ``pytest --voice-latency examples/``.

Ten callers talk to the agent at once (one event loop holds them all), five user turns each:
three plain turns and two barge-ins, over a line with network delay and jitter, some with
background noise. That is 50 turns including 20 barge-ins, in about half a minute. Then every
budget is a separate test, so a failure names the stage at fault:

* white box, the agent's own spans: handoff, ASR first partial, LLM first token, TTS first chunk,
  the gaps between them, and its barge-in handling;
* black box, what the simulated caller heard: response latency (end of the user's speech to the
  first audible agent sample) and barge-in latency (onset of the interruption to the agent's
  audio going quiet at the listener).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_voicelatency import Capture, assert_p95, voice_caller, voice_spans
from pytest_voicelatency.call import PlayoutConfig, Step, answer, background, barge_in, say

pytestmark = pytest.mark.voice_latency

UTTERANCES = ["confirm_order", "cancel_order", "late_pizza", "book_table", "change_address",
              "open_tomorrow", "hello"]
INTERRUPTIONS = ["wait_stop", "meant_tuesday"]
LINE = PlayoutConfig(buffer_ms=60, delay_ms=20, jitter_ms=10)  # the client and its network


def conversation(k: int) -> list[Step]:
    """Call ``k``: five user turns, two of them spoken over the agent's reply."""
    u = [UTTERANCES[(k + i) % len(UTTERANCES)] for i in range(3)]
    noise: list[Step] = [background("pink_noise", gain_db=-35)] if k % 3 == 0 else []
    return noise + [
        say(u[0]), answer(),
        say(u[1]), barge_in(INTERRUPTIONS[k % 2], after_ms=300 + 100 * (k % 4)), answer(),
        say(u[2]), barge_in(INTERRUPTIONS[(k + 1) % 2], after_ms=700), answer(),
    ]


@pytest.fixture(scope="module")
def calls(agent_factory, concurrent_calls: int) -> Iterator[Capture]:
    """Run the whole call mix once; every budget below reads the spans it produced.

    Module-scoped, so the fixtures' twins: ``voice_spans()`` and ``voice_caller()`` (both follow
    the ``voice_latency_unreliable`` ini, as the fixtures do).
    """
    with voice_spans() as spans, voice_caller(playout=LINE) as caller:
        caller.run_calls(agent_factory, [conversation(k) for k in range(concurrent_calls)])
        yield spans


# -- white box: what the agent's spans say ------------------------------------------------------

def test_handoff_vad_to_asr(calls):
    assert_p95(stage="handoff.vad_to_asr", lt=250, capture=calls)


def test_asr_first_partial(calls):
    assert_p95(stage="asr", lt=150, capture=calls)


def test_gaps_between_asr_llm_and_tts(calls):
    assert_p95(stage="gap.asr_to_llm", lt=50, capture=calls)
    assert_p95(stage="gap.llm_to_tts", lt=50, capture=calls)


def test_llm_first_token(calls):
    assert_p95(stage="llm", lt=400, capture=calls)


def test_tts_first_chunk(calls):
    assert_p95(stage="tts", lt=350, capture=calls)


def test_agent_barge_in_handling(calls):
    assert_p95(stage="barge_in", lt=200, capture=calls)


# -- black box: what the caller heard -----------------------------------------------------------

def test_caller_response(calls):
    assert_p95(stage="caller.response", lt=1400, capture=calls)


def test_caller_barge_in(calls):
    assert_p95(stage="caller.barge_in", lt=200, capture=calls)


def test_caller_playout_jitter(calls):
    assert_p95(stage="caller.playout", lt=20, capture=calls)  # jitter_ms
