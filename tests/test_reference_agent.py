"""The reference agent: its spans follow the seeds, and each seed incident knob is caught.

The two knob tests run the example suite as shipped (``examples/``) with ``--incident``: the
suite must fail on exactly the stage at fault, with a message naming it. The fix — the default,
healthy configuration — passing the same suite is ``tests/test_examples.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest
from helpers import copy_examples

from pytest_voicelatency.agents.reference import (
    BACKCHANNEL_TOLERANT,
    NO_FLUSH,
    RACY_FLUSH,
    AsrPool,
    Latency,
    PoolConfig,
    ReferenceConfig,
    ReferenceServer,
)
from pytest_voicelatency.call.caller import Caller, CallResult
from pytest_voicelatency.call.log import Received
from pytest_voicelatency.call.playout import PlayoutConfig
from pytest_voicelatency.call.protocol import AgentAudio, AgentClear, AgentState
from pytest_voicelatency.call.script import answer, barge_in, pause, say
from pytest_voicelatency.clock import RealClock
from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.gate.crosscheck import disagreements, spans_lie
from pytest_voicelatency.spans.capture import capture_spans


@pytest.mark.slow  # real time: a whole pytest run of real-time calls
@pytest.mark.parametrize("incident, stage, metric, table_warning", [
    ("cold-asr-pool", "handoff.vad_to_asr", "duration_ms", None),
    ("no-flush", "caller.barge_in", "latency_ms",
     "warning: spans lie: barge_in silence_ms (agent) is more than 50 ms below "
     "caller.barge_in latency_ms (heard)*"),
])
def test_each_seed_incident_fails_the_example_suite_naming_the_stage(pytester, incident, stage,
                                                                     metric, table_warning):
    """Each knob fails exactly the stage at fault; without the flush, the run-wide table also
    warns that the agent's barge_in span disagrees with what the caller heard."""
    copy_examples(pytester)
    result = pytester.runpytest_subprocess("--voice-latency", "-p", "no:cacheprovider",
                                           "--incident", incident)
    result.assert_outcomes(failed=1, passed=8)
    result.stdout.fnmatch_lines([
        f"*LatencyAssertionError: {stage} {metric} p95 = * ms, limit < * ms (n=*) -> FAIL",
        *([table_warning] if table_warning else []),
        f"FAILED *test_{stage.replace('.', '_')}*",
    ])
    if table_warning is None:
        assert "spans lie" not in result.stdout.str()


def test_flush_on_barge_in_is_what_the_listener_needs_and_the_spans_alone_cannot_tell():
    """Without the flush the agent's own barge_in span still looks fast; the caller hears
    ~500 ms more and the crosscheck says the spans lie. With it, both agree under 200 ms."""
    script = [say("hello"), answer(until="audible"), barge_in("wait_stop", after_ms=300)]

    async def main():
        return await asyncio.gather(
            Caller(session_prefix="flush").calls(ReferenceServer(), [script] * 2),
            Caller(session_prefix="noflush").calls(ReferenceServer(**NO_FLUSH), [script] * 2))

    with capture_spans() as cap:
        flush, no_flush = asyncio.run(main())
    assert all(m.value_ms < 200 for r in flush for m in r.metrics.barge_ins)
    assert all(m.value_ms > 350 for r in no_flush for m in r.metrics.barge_ins)
    assert all(s.value < 200 for s in cap.samples(stage="barge_in", metric="silence_ms"))
    found, paired = disagreements(cap.table, margin_ms=100)
    assert sum(paired.values()) == 4
    assert {d.session_id.split("-")[0] for d in found} == {"noflush"} and len(found) == 2
    [line] = spans_lie(cap.table, margin_ms=100)
    assert line.startswith("spans lie: barge_in silence_ms (agent) is more than 100 ms below "
                           "caller.barge_in latency_ms (heard) in 2 of 4 paired turns")
    metrics = cap.sample_set().metrics_by_stage()
    assert {"first_byte_ms", "final_ms", "partials", "revision_words"} <= set(metrics["asr"])
    assert {"vad_detect_ms", "cancel_ms", "silence_ms"} <= set(metrics["barge_in"])
    assert "first_byte_ms" in metrics["llm"] and "max_gap_ms" in metrics["tts"]


def handoffs(config: PoolConfig, calls: int, hold_ms: float) -> list[float]:
    """Handoff times (ms) of ``calls`` turns starting together, each holding its connection."""
    pool, clock = AsrPool(config), RealClock()

    async def turn(seed: int) -> float:
        started = clock.now_ns()
        conn = await pool.acquire(clock, np.random.default_rng(seed))
        handoff = (clock.now_ns() - started) / 1e6
        await clock.sleep_until(clock.now_ns() + round(hold_ms * 1e6))
        pool.release(conn)
        return handoff

    async def main():
        return await asyncio.gather(*(turn(k) for k in range(calls)))

    return asyncio.run(main())


def test_a_cold_lazy_pool_queues_handoffs_and_a_warm_one_is_a_borrow():
    """Lazy opens go one at a time; past the pool's size a turn waits for another to finish."""
    fixed = dict(connect=Latency(30, 30), borrow=Latency(5, 5))
    cold = sorted(handoffs(PoolConfig(size=3, prewarm=False, keepalive=False, **fixed), 4, 100))
    assert cold[:3] == pytest.approx([35, 65, 95], abs=15)
    assert cold[3] == pytest.approx(35 + 100 + 30 + 5, abs=25)
    warm = handoffs(PoolConfig(size=4, **fixed), 4, 100)
    assert max(warm) < 20


def test_latency_draws_follow_their_median_and_p95_and_repeat_with_the_seed():
    rng = np.random.default_rng(7)
    draws = np.array([Latency(100, 200).draw(rng) for _ in range(4000)])
    assert np.median(draws) == pytest.approx(100, rel=0.05)
    assert np.percentile(draws, 95) == pytest.approx(200, rel=0.08)
    assert Latency(50, 50).draw(rng) == 50
    again = np.random.default_rng(7)
    assert Latency(100, 200).draw(again) == draws[0]


def test_a_server_shares_one_pool_and_its_agents_honour_the_clock():
    server = ReferenceServer()
    first, second = server(), server()
    assert first.pool is second.pool is server.pool
    assert first.honours_clock and not np.array_equal(first.rng.random(3), second.rng.random(3))


def _barge_in_pairs(heard_ms):
    """A table with one agent barge_in span (45 ms) and one caller span per turn."""
    from pytest_voicelatency.spans.otel import SpanRecord
    from pytest_voicelatency.spans.rows import SpanTable

    t = SpanTable()
    for i, heard in enumerate(heard_ms):
        start = i * 10_000_000_000
        t.add(SpanRecord("audio.barge_in", "barge_in", "s", str(i), 0, start + 30_000_000,
                         start + 40_000_000, (("silence_ms", 45.0),), True), "test")
        t.add(SpanRecord("caller.barge_in", "caller.barge_in", "s", str(i), 0, start,
                         start + int(heard * 1e6), (("latency_ms", heard),), False), "test")
    return t


def test_one_noisy_turn_in_twenty_is_not_called_a_lie_but_two_are():
    """The warning means the agent's p95 misrepresents what was heard: > 5 % of paired turns."""
    assert spans_lie(_barge_in_pairs([60.0] * 19 + [400.0])) == []
    [line] = spans_lie(_barge_in_pairs([60.0] * 18 + [400.0, 420.0]))
    assert "in 2 of 20 paired turns" in line


# ---------------------------------------------------------------------- knobs, in virtual time

SHORT_REPLY = ReferenceConfig(reply_ms=1600)


def _talk_over(clip: str, knobs: dict, after_ms: float = 300) -> CallResult:
    config = replace(SHORT_REPLY, **knobs)
    script = [say("hello"), barge_in(clip, after_ms=after_ms, stop_timeout_ms=1000),
              pause(2000), say("hello"), answer(until="audible")]
    return Caller(clock="virtual").run(ReferenceServer(config), script)


def _log_events(result: CallResult) -> list[object]:
    return [entry.event for entry in result.log.of(Received)]


@pytest.mark.parametrize("clip, stops", [("mm_hm", False), ("uh_huh", False), ("cough", False),
                                         ("wait_stop", True), ("meant_tuesday", True)])
def test_a_backchannel_tolerant_agent_keeps_talking_through_mm_hm_but_not_through_words(
        clip, stops):
    result = _talk_over(clip, BACKCHANNEL_TOLERANT)
    [decision] = result.metrics.interruptions
    assert decision.stopped is stops and not decision.false and not decision.missed
    assert any(isinstance(e, AgentClear) for e in _log_events(result)) is stops
    assert result.metrics.responses[-1].outcome == "ok"     # and the next turn is answered


def test_without_the_policy_the_same_backchannel_cuts_the_reply_short():
    [decision] = _talk_over("uh_huh", {}).metrics.interruptions
    assert decision.false                                    # a false interruption, counted


def test_the_racy_flush_lets_a_chunk_in_flight_play_after_the_clear():
    """150 ms into the reply TTS is still generating: its chunk in flight lands after the
    flush and plays; the healthy agent drops it."""
    for knobs, leaked in ((RACY_FLUSH, True), ({}, False)):
        events = _log_events(_talk_over("wait_stop", knobs, after_ms=150))
        clear = next(i for i, e in enumerate(events) if isinstance(e, AgentClear))
        thinking = next(i for i, e in enumerate(events[clear:], clear)
                        if isinstance(e, AgentState) and e.state == "thinking")
        assert any(isinstance(e, AgentAudio) for e in events[clear:thinking]) is leaked


def test_speech_on_a_replys_last_words_flushes_what_the_client_still_plays():
    """The agent has sent everything, the listener is still hearing it (a slow line): a
    barge-in all the same. Found by the stop-bound property."""
    line = PlayoutConfig(buffer_ms=160, delay_ms=150, jitter_ms=50)
    script = [say("hello"), barge_in("book_table", after_ms=1580, at_state="speaking"),
              answer(until="audible")]
    heard = {}
    for margin in (500.0, 0.0):
        config = ReferenceConfig(reply_ms=1600, client_margin_ms=margin)
        result = Caller(clock="virtual", playout=line).run(ReferenceServer(config), script)
        [m] = result.metrics.barge_ins
        heard[margin] = m.value_ms
    assert heard[500.0] <= ReferenceConfig().stop_bound_ms(line)
    assert heard[500.0] < heard[0.0] - 100                    # the whole buffered tail is cut


def test_a_capped_latency_never_draws_past_its_cap_so_the_stop_bound_is_exact():
    rng = np.random.default_rng(3)
    draws = [Latency(20, 40, max_ms=45).draw(rng) for _ in range(2000)]
    assert max(draws) == 45 and min(draws) > 0
    assert Latency(20, 40).bound_ms == 160 and Latency(20, 40, max_ms=45).bound_ms == 45
    with pytest.raises(VoiceLatencyUsageError, match="max_ms >= p95_ms"):
        Latency(20, 40, max_ms=30)
    line = PlayoutConfig(delay_ms=30, jitter_ms=10)
    assert ReferenceConfig().stop_bound_ms(line) == 100 + 100 + 20 + 30 + 10
    assert ReferenceConfig(min_interruption_ms=500).stop_bound_ms() == 100 + 1500 + 100 + 20
