"""Specification of the simulated caller, against small agents, in real and in virtual time.

Timing-sensitive numbers are checked against the oracle in ``test_oracle.py``; here the caller's
behaviour is pinned down: spans, concurrency, sync/async use, bad agents, bad input, what a
starved event loop does to the results, and what changes on a virtual clock (exact, repeatable
numbers; agents that block the loop or read the wall clock are named).
"""

from __future__ import annotations

import asyncio
import time
import warnings
from dataclasses import replace

import numpy as np
import pytest

from pytest_voicelatency import assert_p95, assert_p99
from pytest_voicelatency import voice_caller as simulated_caller
from pytest_voicelatency.agents.oracle import OracleAgent, OracleConfig, tone_clip
from pytest_voicelatency.agents.reference import ReferenceServer
from pytest_voicelatency.audio.clips import AudioError, load_clip
from pytest_voicelatency.call.caller import AgentTimeoutError, Caller
from pytest_voicelatency.call.protocol import (
    AgentAudio,
    AgentProtocolError,
    AgentState,
    SessionTasks,
)
from pytest_voicelatency.call.script import answer, background, barge_in, pause, say
from pytest_voicelatency.errors import (
    LatencyAssertionError,
    VoiceLatencyUsageError,
    VoiceLatencyWarning,
)
from pytest_voicelatency.spans.capture import capture_spans
from pytest_voicelatency.vclock import VirtualClock, VirtualTimeError

SHORT = [say(tone_clip(300, lead_ms=100, trail_ms=100)), answer(until="audible")]
QUICK = OracleConfig(response_delay_ms=200, reply_ms=300)


class Silent:
    """An agent that listens and never says anything."""

    honours_clock = True

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed = 0

    async def start(self, session):
        self.session = session

    async def receive(self, pcm: bytes) -> None:
        self.frames.append(pcm)

    async def close(self) -> None:
        self.closed += 1


class RaisesOnReceive(Silent):
    async def receive(self, pcm: bytes) -> None:
        if len(self.frames) == 5:
            raise RuntimeError("boom in receive")
        self.frames.append(pcm)


class FailsInBackground(Silent):
    async def receive(self, pcm: bytes) -> None:
        if not self.frames:
            self.session.fail(ValueError("the TTS provider hung up"))
        self.frames.append(pcm)


class Emits(Silent):
    """Emits one given event on the 3rd inbound frame."""

    def __init__(self, event: object) -> None:
        super().__init__()
        self.event = event

    async def receive(self, pcm: bytes) -> None:
        self.frames.append(pcm)
        if len(self.frames) == 3:
            try:
                self.session.emit(self.event)
            except AgentProtocolError:
                pass  # a sloppy agent swallows it; the caller still fails the call


def test_a_sync_test_runs_a_call_and_gets_caller_spans(raw_spans):
    """run() drives the loop; caller.* spans carry source, session and turn ids."""
    with capture_spans() as cap, simulated_caller() as caller:
        result = caller.run(OracleAgent(QUICK), SHORT, session_id="s-42")
    assert result.session_id == "s-42" and result.metrics.responses[0].outcome == "ok"
    assert sorted(cap.stages()) == ["caller.pacing", "caller.playout", "caller.response"]
    assert_p95(stage="caller.response", lt=2000, capture=cap)  # default metric: latency_ms
    [span] = [s for s in raw_spans.get_finished_spans() if s.name == "caller.response"]
    assert span.attributes["audio.source"] == "caller"
    assert (span.attributes["audio.session_id"], span.attributes["audio.turn_id"]) == ("s-42", "1")
    # reliable unless this machine's own pacing slipped inside the response's window (then it
    # must say so, and consistently: the call is as reliable as its measurements)
    assert span.attributes["audio.reliable"] is result.metrics.responses[0].reliable
    assert result.reliable == result.metrics.responses[0].reliable


def test_many_calls_share_one_event_loop_from_async_code():
    """calls() runs the calls concurrently on one loop: every call starts before any ends."""
    caller = Caller()
    results = asyncio.run(caller.calls(lambda: OracleAgent(QUICK), [SHORT] * 3))
    assert [r.session_id for r in results] == ["call-1", "call-2", "call-3"]
    starts = [r.log.origin_ns for r in results]
    ends = [r.log.ended.at_ns for r in results]
    assert max(starts) < min(ends)
    assert len(caller.results) == 3


def test_run_inside_a_running_loop_says_to_await_instead():
    async def main():
        Caller().run(Silent(), SHORT)

    with pytest.raises(VoiceLatencyUsageError, match=r"await caller.call\(...\)"):
        asyncio.run(main())


def test_an_agent_that_never_answers_is_measured_missed_and_the_script_goes_on():
    agent = Silent()
    script = [say(tone_clip(200, lead_ms=50, trail_ms=50)), answer(300),
              say(tone_clip(200, lead_ms=50, trail_ms=50)), answer(300)]
    with capture_spans() as cap:
        result = Caller(clock="virtual").run(agent, script)
    assert agent.closed == 1 and result.log.ended is not None
    assert result.log.ended.reason == "done"
    samples = cap.samples(stage="caller.response", metric="latency_ms")
    assert [(s.missed, s.value) for s in samples] == [(True, 300), (True, 300)]


@pytest.mark.parametrize("caller, step", [
    (lambda: Caller(clock="virtual"), answer(300, required=True)),
    (lambda: Caller(clock="virtual", unanswered="raise"), answer(300)),
], ids=["required=True", "unanswered=raise"])
def test_an_unanswered_turn_raises_when_asked_naming_the_turn_and_is_measured_missed(caller, step):
    agent = Silent()
    with capture_spans() as cap, pytest.raises(
            AgentTimeoutError, match="turn 1: the agent did not answer within 300 ms"):
        caller().run(agent, [say(tone_clip(200, lead_ms=50, trail_ms=50)), step])
    assert agent.closed == 1
    [sample] = cap.samples(stage="caller.response", metric="latency_ms")
    assert sample.missed and sample.value == 300


def test_an_agent_that_raises_surfaces_its_error_and_the_call_is_torn_down():
    agent = RaisesOnReceive()
    with capture_spans() as cap, pytest.raises(RuntimeError, match="boom in receive") as info:
        Caller().run(agent, SHORT)
    assert agent.closed == 1
    assert any("session call-1" in note for note in info.value.__notes__)
    assert "caller.pacing" in cap.stages()  # what was measured is still reported


class HangsInReceive(Silent):
    async def receive(self, pcm: bytes) -> None:
        if len(self.frames) == 3:
            await asyncio.Event().wait()  # never returns
        self.frames.append(pcm)


def test_an_agent_whose_receive_never_returns_is_timed_out_not_waited_for():
    agent = HangsInReceive()
    with pytest.raises(AgentTimeoutError, match="receive\\(\\) is blocking"):
        Caller(agent_timeout_ms=300).run(agent, SHORT)
    assert agent.closed == 1


def test_a_failure_reported_from_an_agent_task_ends_the_call():
    with pytest.raises(ValueError, match="TTS provider hung up"):
        Caller().run(FailsInBackground(), SHORT)


def test_an_agent_that_keeps_talking_after_barge_in_is_measured_missed_not_hung():
    agent = OracleAgent(replace(QUICK, stop_delay_ms=None, reply_ms=2500))
    script = [say(tone_clip(200, lead_ms=50, trail_ms=50)),
              barge_in(tone_clip(200, lead_ms=50, trail_ms=50), after_ms=100, stop_timeout_ms=400)]
    result = Caller().run(agent, script)
    [m] = result.metrics.barge_ins
    assert (m.outcome, m.value_ms) == ("missed", 400)
    assert result.log.ended is not None and result.log.ended.reason == "done"


def test_barge_in_at_a_chosen_agent_state():
    """at_state="speaking": the interruption lands after_ms after the agent says it speaks."""
    script = [say(tone_clip(200, lead_ms=50, trail_ms=50)),
              barge_in(tone_clip(200, lead_ms=50, trail_ms=50), at_state="speaking", after_ms=100)]
    result = Caller().run(OracleAgent(replace(QUICK, reply_ms=1500)), script)
    [m] = result.metrics.barge_ins
    assert m.outcome == "ok" and m.value_ms < 200


@pytest.mark.parametrize("event, message", [
    (AgentAudio(b"\x01\x02\x03", 16_000), "3 bytes; 16-bit PCM needs a positive, even number"),
    (AgentAudio(np.zeros(320, np.int16), 16_000),  # type: ignore[arg-type]
     "numpy int16 array; send 16-bit little-endian PCM bytes"),
    (AgentAudio(bytes(640), 8_000), "8000 Hz on a 16000 Hz line; resample"),
    (AgentAudio(bytes(640), 16_000, channels=2), "2 channels; the line is mono"),
    ("hello", "emit one of AgentAudio"),
    (AgentState(""), "AgentState.state must be a non-empty string"),
])
def test_malformed_agent_events_fail_the_call_with_a_message_naming_the_fix(event, message):
    with pytest.raises(AgentProtocolError, match=message.replace("(", r"\(")):
        Caller().run(Emits(event), SHORT)


def test_bad_input_fails_before_the_call_with_the_fix():
    caller = Caller()
    with pytest.raises(AudioError,
                       match="no bundled clip named 'nope'; available: .*confirm_order"):
        caller.run(Silent(), [say("nope"), answer()])
    with pytest.raises(VoiceLatencyUsageError, match="8000 Hz but the line is 16000 Hz"):
        caller.run(Silent(), [say(load_clip("hello", sample_rate=8000)), answer()])
    with pytest.raises(VoiceLatencyUsageError, match="script step 1 .*nothing to answer yet"):
        caller.run(Silent(), [answer(), say("hello")])
    with pytest.raises(AgentProtocolError, match="object.start is missing"):
        caller.run(object(), SHORT)  # type: ignore[arg-type]
    with pytest.raises(VoiceLatencyUsageError, match="several calls need an agent factory"):
        caller.run_calls(Silent(), [SHORT, SHORT])
    with pytest.raises(VoiceLatencyUsageError, match="no ground truth"):
        caller.run(Silent(), [say("pink_noise"), answer()])


def test_background_noise_is_mixed_under_everything_sent():
    agent = Silent()
    Caller().run(agent, [background("pink_noise", gain_db=-20), pause(100),
                         background(None), pause(60)])
    levels = [np.abs(np.frombuffer(f, "<i2")).max() for f in agent.frames]
    assert min(levels[:5]) > 0 and levels[-1] == 0


async def _hog(seconds_blocked: float, every: float) -> None:
    """Starve the event loop: block it outright, again and again (like CPU steal)."""
    while True:
        time.sleep(seconds_blocked)
        await asyncio.sleep(every)


class StarvedOracle(OracleAgent):
    """An oracle that, for the first call only, runs a task blocking the loop 50 ms in 70: every
    measurement window holds a frame sent >= 20 ms late."""

    made = 0

    async def start(self, session):
        StarvedOracle.made += 1
        self._hog = asyncio.ensure_future(_hog(0.05, 0.02)) if StarvedOracle.made == 1 else None
        await super().start(session)

    async def close(self):
        if self._hog is not None:
            self._hog.cancel()
        await super().close()


def test_a_starved_event_loop_marks_the_call_unreliable_instead_of_reporting_good_numbers():
    StarvedOracle.made = 0
    with capture_spans() as cap, pytest.warns(VoiceLatencyWarning, match="fell behind real time"):
        result = Caller().run(StarvedOracle(QUICK), SHORT)
    assert not result.reliable and result.metrics.pacing.lateness_max_ms > 20
    samples = cap.samples(stage="caller.response")
    assert samples and all(s.unreliable for s in samples)
    assert cap.select("caller.pacing").unreliable == 1


def test_the_retry_policy_reruns_an_unreliable_call_with_a_fresh_agent():
    StarvedOracle.made = 0
    with capture_spans() as cap, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # 15 ms: the starved attempt is >= 20 ms late; a clean one on a busy CI box is not
        result = Caller(unreliable="retry", pacing_limit_ms=15).run(
            lambda: StarvedOracle(QUICK), SHORT)
    assert result.attempts == 2 and result.reliable
    assert result.session_id == "call-1.retry1" and not result.discarded[0].reliable
    assert any("retrying the call (attempt 2 of 3)" in str(w.message) for w in caught)
    assert {s.session_id for s in cap.samples(stage="caller.response")} == {"call-1.retry1"}
    assert "caller.discarded" in cap.table.stage_names()      # the marker went out...
    assert {s.session_id for s in cap.samples()} == {"call-1.retry1"}   # ...and took call-1


def test_the_fixture_works_in_a_plain_test_and_inside_an_event_loop(pytester):
    pytester.makeini("[pytest]\nvoice_latency_unreliable = retry\n")
    pytester.makepyfile(test_fixture='''
import asyncio
from pytest_voicelatency import assert_p95, assert_p99
from pytest_voicelatency.agents.oracle import OracleAgent, OracleConfig, tone_clip
from pytest_voicelatency.agents.reference import ReferenceServer
from pytest_voicelatency.vclock import VirtualClock, VirtualTimeError
from pytest_voicelatency.call.script import answer, say

SCRIPT = [say(tone_clip(300, lead_ms=100, trail_ms=100)), answer(until="audible")]
AGENT = lambda: OracleAgent(OracleConfig(response_delay_ms=200, reply_ms=300))

def test_sync(voice_caller):
    assert voice_caller.unreliable == "retry"
    voice_caller.run_calls(AGENT, [SCRIPT, SCRIPT])
    assert_p95(stage="caller.response", lt=2000)

def test_async(voice_caller, voice_spans):
    async def main():
        return await voice_caller.calls(AGENT, [SCRIPT])
    [result] = asyncio.run(main())
    assert result.metrics.responses[0].outcome == "ok"
    assert "caller.response" in voice_spans.stages()
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


# ---------------------------------------------------------------------- on virtual time


def test_on_virtual_time_the_same_script_runs_and_its_spans_say_so(raw_spans):
    """No machine can make a virtual call late: reliable, no pacing warning, clock: virtual."""
    with capture_spans() as cap, warnings.catch_warnings():
        warnings.simplefilter("error", VoiceLatencyWarning)
        result = Caller(clock="virtual").run(OracleAgent(QUICK), SHORT)
    assert result.reliable and result.metrics.clock == "virtual"
    assert result.metrics.responses[0].value_ms == 200 + 40    # exact: no wobble
    spans = [s for s in raw_spans.get_finished_spans() if s.name.startswith("caller.")]
    assert {s.attributes["audio.clock"] for s in spans} == {"virtual"}
    assert all(s.attributes["audio.reliable"] is True for s in spans)
    assert sorted(cap.stages()) == ["caller.pacing", "caller.playout", "caller.response"]


def _span_story(raw_spans) -> list[tuple]:
    """Everything about the spans but their random ids."""
    return [(s.name, s.start_time, s.end_time, sorted((s.attributes or {}).items()))
            for s in raw_spans.get_finished_spans()]


def test_a_virtual_call_repeats_bit_for_bit(raw_spans):
    script = [say("hello"), answer(), say("confirm_order"), barge_in("wait_stop", after_ms=300),
              answer()]
    stories, samples = [], []
    for _ in range(2):
        raw_spans.clear()
        with capture_spans() as cap:
            Caller(clock="virtual").run_calls(ReferenceServer(), [script] * 2)
        stories.append(_span_story(raw_spans))
        samples.append([(s.stage, s.metric, s.value, s.session_id, s.turn_id, s.flags)
                        for s in cap.samples()])
    assert stories[0] == stories[1] and samples[0] == samples[1]
    assert len(stories[0]) > 20 and any(name == "audio.barge_in" for name, *_ in stories[0])


def test_awaited_on_a_real_loop_a_virtual_caller_says_where_to_run_instead():
    caller = Caller(clock="virtual")

    async def main():
        await caller.call(OracleAgent(QUICK), SHORT)

    with pytest.raises(VoiceLatencyUsageError, match=r"awaited on a real event loop.*"
                                                     r"caller.clock.run\(main\(\)\)"):
        asyncio.run(main())
    results = caller.clock.run(caller.calls(lambda: OracleAgent(QUICK), [SHORT] * 2))
    assert [r.metrics.responses[0].value_ms for r in results] == [240.0, 240.0]


def test_an_agent_that_does_not_honour_the_clock_is_refused_naming_it_and_the_fix():
    class OwnTime(Silent):
        honours_clock = False

    with pytest.raises(VoiceLatencyUsageError, match=r"OwnTime cannot run on a virtual clock.*"
                                                     r"OwnTime.honours_clock = True.*"
                                                     r"wall_clock='virtual'"):
        Caller(clock="virtual").run(OwnTime(), SHORT)
    with pytest.raises(VoiceLatencyUsageError, match="clock must be 'real', 'virtual' or a Clock"):
        Caller(clock="fast")  # type: ignore[arg-type]


def test_an_agent_deciding_per_clock_is_told_wall_clock_virtual_only_on_a_guarded_clock():
    """A framework-style agent (honours_clock a property) on the guarded clock gets the one fix
    that applies; one that still says no on wall_clock='virtual' gets the general advice, not
    the clock it already has."""
    class PerClock(Silent):
        @property
        def honours_clock(self) -> bool:
            return False

    with pytest.raises(VoiceLatencyUsageError, match=r"PerClock cannot run on this virtual "
                                                     r"clock: it reads time.*wall_clock='virtual'"):
        Caller(clock="virtual").run(PerClock(), SHORT)
    with pytest.raises(VoiceLatencyUsageError, match=r"PerClock cannot run on a virtual clock: "
                                                     r"its honours_clock is not True.*session"):
        Caller(clock=VirtualClock(wall_clock="virtual")).run(PerClock(), SHORT)


def test_warnings_point_at_the_line_that_ran_the_calls():
    """Not at asyncio's events.py: collected during the call, issued from the entry point."""
    late = [say(tone_clip(200, lead_ms=50, trail_ms=50)),
            barge_in(tone_clip(200, lead_ms=50, trail_ms=50), after_ms=900)]  # reply is over
    caller = Caller(clock="virtual")
    with pytest.warns(VoiceLatencyWarning, match="nothing to barge in on") as sync:
        caller.run(OracleAgent(QUICK), late)
    with pytest.warns(VoiceLatencyWarning, match="nothing to barge in on") as many:
        caller.run_calls(lambda: OracleAgent(QUICK), [late] * 2)

    async def main():
        await caller.call(OracleAgent(QUICK), late)

    with pytest.warns(VoiceLatencyWarning, match="nothing to barge in on") as awaited:
        caller.clock.run(main())
    assert {w.filename for w in [*sync, *many, *awaited]} == {__file__}


class SaysGoodbyeLate(OracleAgent):
    """Emits one more frame from close(), after the call ended: a late event."""

    async def start(self, session):
        self.line = session
        await super().start(session)

    async def close(self):
        await super().close()
        self.line.emit(AgentAudio(np.zeros(320, "<i2").tobytes(), 16_000))


def test_late_event_warnings_of_the_async_entry_points_point_at_the_call_site():
    """Run as a task (asyncio.run(caller.call(...)), gather), the entry point's own caller
    frame is asyncio's events.py; the warning still names the line that made the call."""

    async def main():
        calls = [Caller().call(SaysGoodbyeLate(QUICK), SHORT) for _ in range(2)]  # site: gather
        await asyncio.gather(*calls)
        await Caller().calls(lambda: SaysGoodbyeLate(QUICK), [SHORT])  # site: awaited

    with pytest.warns(VoiceLatencyWarning, match="1 agent events arrived after the call ended"
                      ) as caught:
        asyncio.run(Caller().call(SaysGoodbyeLate(QUICK), SHORT))  # site: asyncio.run
        asyncio.run(main())
    late = [w for w in caught if "arrived after the call ended" in str(w.message)]
    assert [(w.filename, w.lineno) for w in late] == [
        (__file__, _site(name)) for name in ("asyncio.run", "gather", "gather", "awaited")]


def _site(name: str) -> int:
    """The line of this file marked ``# site: <name>``."""
    lines = open(__file__).read().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.endswith(f"# site: {name}"))


def test_a_call_on_the_users_loop_chains_and_restores_its_task_factory():
    """The call scope's task factory defers to the user's, sees concurrent calls through, and
    is gone afterwards, after a failing call too; the user's tasks are never its."""
    made: list[str] = []

    def factory(loop, coro, **kwargs):
        made.append(getattr(coro, "__qualname__", "?"))
        return asyncio.Task(coro, loop=loop, **kwargs)

    caller = Caller(clock="virtual")

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_task_factory(factory)
        mine = asyncio.ensure_future(asyncio.sleep(3600))
        await asyncio.gather(caller.call(OracleAgent(QUICK), SHORT),
                             caller.call(OracleAgent(QUICK), SHORT))
        with pytest.raises(RuntimeError, match="boom in receive"):
            await caller.call(RaisesOnReceive(), SHORT)
        restored = loop.get_task_factory() is factory
        alive = not mine.done()
        mine.cancel()
        return restored, alive

    assert caller.clock.run(main()) == (True, True)
    assert made.count("OracleAgent._answer") == 2  # the agents' tasks went through it too


class MonotonicAgent(Silent):
    """Answers 300 ms after the user stops, timing itself with time.monotonic() and
    asyncio.sleep, as frameworks that read the time module do."""

    async def start(self, session):
        self.session, self.talking, self.last_loud = session, False, 0.0
        self.tasks = SessionTasks(session)

    async def receive(self, pcm):
        if np.abs(np.frombuffer(pcm, "<i2")).max() > 1000:
            self.talking, self.last_loud = True, time.monotonic()
        elif self.talking and time.monotonic() - self.last_loud > 0.2:
            self.talking = False
            self.tasks.spawn(self.reply(self.last_loud))

    async def reply(self, stopped):
        await asyncio.sleep(stopped + 0.3 - time.monotonic())
        tone = np.full(4000, 8000, "<i2").tobytes()
        self.session.emit(AgentAudio(tone, 16_000))

    async def close(self):
        await self.tasks.cancel_all()


def test_an_agent_reading_the_time_module_is_named_unless_time_follows_the_virtual_clock():
    real = time.monotonic
    with pytest.raises(VirtualTimeError, match=r"time.monotonic\(\) at .*test_caller.py:\d+ in "
                                               r"MonotonicAgent.receive"):
        Caller(clock="virtual").run(MonotonicAgent(), SHORT)
    assert time.monotonic is real
    values = [Caller(clock=VirtualClock(wall_clock="virtual")).run(MonotonicAgent(), SHORT)
              .metrics.responses[0].value_ms for _ in range(2)]
    assert values[0] == values[1] and 340 <= values[0] <= 360   # 300 + buffer + one frame
    assert time.monotonic is real


class Sleepy(Silent):
    async def receive(self, pcm):
        self.frames.append(pcm)
        if len(self.frames) == 3:
            time.sleep(0.05)


class Busy(Silent):
    async def receive(self, pcm):
        self.frames.append(pcm)
        if len(self.frames) == 3:
            start = time.thread_time()
            while time.thread_time() - start < 0.06:
                pass


def test_an_agent_blocking_the_loop_fails_the_call_saying_how_instead_of_passing():
    agent = Sleepy()
    with pytest.raises(VirtualTimeError, match=r"time.sleep\(0.05\) at .*in Sleepy.receive"):
        Caller(clock="virtual").run(agent, SHORT)
    assert agent.closed == 1
    with pytest.raises(VirtualTimeError, match=r"blocked for \d+ ms of real time .* \(while "
                                               r"running Busy in session call-2\)"):  # 2nd call
        Caller(clock=VirtualClock(block_limit_ms=30)).run(Busy(), SHORT)


class Leaky(Silent):
    async def start(self, session):
        self.forgotten = asyncio.ensure_future(asyncio.sleep(3600))


def test_tasks_an_agent_leaves_running_are_reported():
    with pytest.warns(VoiceLatencyWarning, match=r"1 task\(s\) still ran after the calls ended"):
        Caller(clock="virtual").run(Leaky(), [pause(100)])


@pytest.mark.filterwarnings("ignore:.*says little")
def test_missed_and_false_interruption_rates_can_be_gated_like_latencies():
    """0/1 samples: a quantile below 1 is a rate limit (p99 < 1: at most 1 % are 1)."""
    tone = tone_clip(200, lead_ms=50, trail_ms=50)
    cough = replace(tone_clip(200, lead_ms=50, trail_ms=50), kind="cough")
    stops = OracleAgent(replace(QUICK, reply_ms=1500))
    with capture_spans() as cap:
        Caller(clock="virtual").run(stops, [say(tone), barge_in(tone, after_ms=100),
                                            answer(until="audible"), say(tone),
                                            barge_in(cough, after_ms=100, stop_timeout_ms=500)])
    assert_p99(stage="barge_in.missed", lt=1, capture=cap)        # it stopped for the words
    with pytest.raises(LatencyAssertionError, match="barge_in.false .* p99 = 1.0 ms, limit < 1"):
        assert_p99(stage="barge_in.false", lt=1, capture=cap)    # and for the cough: false


def test_the_microphone_sends_exactly_the_mix_of_what_was_placed():
    """Its shortcuts (shared silence, a clip's PCM sliced, the looping bed in one slice) give
    the same bytes as summing every sample: checked against that sum over a whole call."""
    agent = Silent()
    clip = tone_clip(300, lead_ms=30, trail_ms=30)
    bed = load_clip("pink_noise")
    Caller(clock="virtual").run(agent, [pause(100), say(clip), background(bed, gain_db=-20),
                                        say(clip), pause(2500), background(None), say(clip)])
    received = np.concatenate([np.frombuffer(f, "<i2") for f in agent.frames]).astype(np.int64)
    n = 320
    # where each clip and the bed went, from the frames: the second clip starts right after
    # the first, and so on (say() places a clip at the next frame to be sent)
    starts = [5 * n, 5 * n + clip.samples.size]
    expected = np.zeros(received.size, np.float64)
    quiet_bed = bed.samples * np.float32(10 ** (-20 / 20))
    bed_from, bed_to = starts[1], starts[1] + clip.samples.size + 125 * n
    positions = np.arange(bed_from, bed_to)
    expected[bed_from:bed_to] += quiet_bed[(positions - bed_from) % quiet_bed.size]
    third = -(-bed_to // n) * n
    for start in (*starts, third):
        expected[start:start + clip.samples.size] += clip.samples
    pcm = np.clip(np.round(np.clip(expected.astype(np.float32), -1, 1) * 32768.0), -32768, 32767)
    assert np.array_equal(received, pcm.astype(np.int64))


def test_a_batch_that_fails_the_same_way_names_the_calls_once_each_not_the_error_again():
    """The first error is raised in full; the note names the others without cutting words."""
    class Refuses(Silent):
        honours_clock = False

    with pytest.raises(VoiceLatencyUsageError) as raised:
        Caller(clock="virtual").run_calls(Refuses, [SHORT] * 3)
    [note] = raised.value.__notes__
    assert note.startswith("3 of 3 calls failed (call-1, call-2, call-3: VoiceLatencyUsageError, "
                           "the error shown); every other call finished"), note
