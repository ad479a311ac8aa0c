"""The caller measured against the oracle agent, whose every delay is known and logged.

Four scenarios at once on one event loop: paced frames off the caller's grid, 100 ms of leading
comfort noise, the whole reply in one burst, and jittered stops. In real time the tolerance is
generous (10 ms) so a noisy CI machine passes (``benchmarks/caller_accuracy.py`` reports the
precise errors); in virtual time nothing wobbles, so the caller must be exact to 1 µs.
"""

from __future__ import annotations

import asyncio

import pytest

from pytest_voicelatency.agents.oracle import (
    OracleAgent,
    OracleConfig,
    expected_barge_in_ms,
    expected_response_ms,
    tone_clip,
)
from pytest_voicelatency.call.caller import Caller
from pytest_voicelatency.call.script import answer, barge_in, say
from pytest_voicelatency.errors import VoiceLatencyUsageError

TOLERANCE_MS = 10.0
SCENARIOS = {
    "paced": OracleConfig(send_jitter_ms=7.0),
    "leading_silence": OracleConfig(leading_silence_ms=100.0, comfort_noise_dbfs=-60.0),
    "burst": OracleConfig(mode="burst"),
    "stop_jitter": OracleConfig(stop_jitter_ms=80.0, seed=5),
}
SCRIPT = [say(tone_clip(500)), answer(), say(tone_clip(400)),
          barge_in(tone_clip(500), after_ms=250), answer()]


def run_scenarios(caller: Caller, run=asyncio.run):
    """Run every scenario once, concurrently; keep each oracle (its truth) and call result."""
    agents = {name: OracleAgent(config) for name, config in SCENARIOS.items()}

    async def main():
        return await asyncio.gather(*(caller.call(agent, SCRIPT) for agent in agents.values()))

    results = run(main())
    return caller, {name: (agents[name], result) for name, result in zip(agents, results)}


@pytest.fixture(scope="module")
def runs():
    return run_scenarios(Caller())


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_in_virtual_time_the_caller_is_exact_to_a_microsecond(scenario):
    caller = Caller(clock="virtual")
    _, by_name = run_scenarios(caller, caller.clock.run)  # type: ignore[attr-defined]
    agent, result = by_name[scenario]
    truths = [t for t in agent.turns if t.barge_onset_ns is None]
    responses = result.metrics.responses
    assert [m.outcome for m in responses] == ["ok", "ok"]
    for measured, truth in zip(responses, truths):
        assert measured.value_ms == pytest.approx(expected_response_ms(truth, caller.playout),
                                                  abs=1e-3)
    [measured] = result.metrics.barge_ins
    [truth] = [t for t in agent.turns if t.barge_onset_ns is not None]
    assert measured.start_ns == truth.barge_onset_ns
    assert measured.value_ms == pytest.approx(expected_barge_in_ms(truth, caller.playout),
                                              abs=1e-3)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_caller_response_matches_the_oracle_truth(runs, scenario):
    caller, by_name = runs
    agent, result = by_name[scenario]
    responses = result.metrics.responses
    assert [m.outcome for m in responses] == ["ok", "ok"]
    truths = [t for t in agent.turns if t.barge_onset_ns is None]
    for measured, truth in zip(responses, truths):
        assert measured.value_ms == pytest.approx(expected_response_ms(truth, caller.playout),
                                                  abs=TOLERANCE_MS)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_caller_barge_in_matches_the_oracle_truth(runs, scenario):
    caller, by_name = runs
    agent, result = by_name[scenario]
    [measured] = result.metrics.barge_ins
    [truth] = [t for t in agent.turns if t.barge_onset_ns is not None]
    assert measured.outcome == "ok"
    assert measured.start_ns == pytest.approx(truth.barge_onset_ns, abs=TOLERANCE_MS * 1e6)
    assert measured.value_ms == pytest.approx(expected_barge_in_ms(truth, caller.playout),
                                              abs=TOLERANCE_MS)


def test_leading_silence_is_not_counted_as_the_agent_speaking(runs):
    """The naive first-arrival number is ~100 ms short; the audible number is not."""
    _, by_name = runs
    _, result = by_name["leading_silence"]
    for m in result.metrics.responses:
        assert m.arrival_ms is not None
        assert m.value_ms - m.arrival_ms == pytest.approx(40 + 100, abs=2)  # buffer + silence


def test_a_reply_sent_in_one_burst_is_queued_and_its_barge_in_still_measured(runs):
    _, by_name = runs
    _, result = by_name["burst"]
    assert result.metrics.playout.buffer_ms >= 1000      # the whole reply sat in the buffer
    assert result.metrics.barge_ins[0].outcome == "ok"


def test_stop_jitter_really_varies_the_stop_delay(runs):
    _, by_name = runs
    agent, _ = by_name["stop_jitter"]
    [truth] = [t for t in agent.turns if t.stop_ns is not None]
    assert truth.stop_ns - truth.barge_onset_ns > 50e6  # 50 ms + a seeded share of 80 ms


def test_tone_clip_ground_truth_is_exact():
    clip = tone_clip(600, lead_ms=200)
    assert (clip.onset_ms, clip.offset_ms) == (200.0, 800.0)
    assert clip.samples[3199] == 0
    assert abs(clip.samples[3200]) > 0.2 and abs(clip.samples[12799]) > 0.2


def test_a_response_delay_shorter_than_the_end_hold_is_refused():
    with pytest.raises(VoiceLatencyUsageError, match="end_hold_ms"):
        OracleConfig(response_delay_ms=100, end_hold_ms=150)
