"""Properties of the cancellation paths, on the reference agent, in virtual time.

Each property draws hundreds of calls — a barge-in moment, a sound, a line, the agent's stage
latencies — and runs every one on a virtual clock, where a call costs milliseconds and repeats
exactly. ``pytest -k property`` selects them. The last tests plant the two known bugs (no flush,
a racy flush) and check that the properties find them and shrink them to a readable timeline.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from pytest_voicelatency.agents.reference import (
    BACKCHANNEL_TOLERANT,
    NO_FLUSH,
    RACY_FLUSH,
    ReferenceConfig,
    ReferenceServer,
)
from pytest_voicelatency.audio.clips import Clip
from pytest_voicelatency.call.caller import Caller, CallResult
from pytest_voicelatency.call.log import Received
from pytest_voicelatency.call.metrics import timeline
from pytest_voicelatency.call.playout import PlayoutConfig
from pytest_voicelatency.call.protocol import AgentAudio, AgentClear, AgentState
from pytest_voicelatency.call.script import Step, answer, barge_in, pause, say
from pytest_voicelatency.errors import VoiceLatencyWarning
from pytest_voicelatency.strategies import (
    Interjection,
    Moment,
    assume_landed,
    barge_in_moments,
    call_scripts,
    interjections,
    perturbations,
    playout_configs,
    reference_configs,
)

EXAMPLES = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
REPLY_MS = 1200.0  # shorter replies than the default: the same paths, half the virtual time
FAST = ReferenceConfig(reply_ms=REPLY_MS)
WORDS = interjections(("words",))
MOMENTS = barge_in_moments(reply_ms=REPLY_MS)


class Recorder(SpanProcessor):
    """Every span started and ended on the properties' own tracer provider."""

    def __init__(self) -> None:
        self.started: dict[int, str] = {}
        self.ended: list[ReadableSpan] = []

    def on_start(self, span, parent_context=None):  # type: ignore[no-untyped-def]
        self.started[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


RECORDER = Recorder()
PROVIDER = TracerProvider(shutdown_on_exit=False)
PROVIDER.add_span_processor(RECORDER)
TRACER = PROVIDER.get_tracer("properties")


@dataclass
class Call:
    result: CallResult
    config: ReferenceConfig
    line: PlayoutConfig
    leaked: tuple[str, ...]
    spans: list[ReadableSpan]
    unended: list[str]

    def story(self, around_ns: int | None = None) -> str:
        return "\n" + timeline(self.result.log, around_ns=around_ns, rows=24)


def run(script: list[Step], config: ReferenceConfig = FAST,
        line: PlayoutConfig | None = None) -> Call:
    """One call on the reference agent in virtual time, with every span it emitted."""
    RECORDER.started.clear()
    RECORDER.ended.clear()
    caller = Caller(clock="virtual", playout=line, tracer=TRACER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VoiceLatencyWarning)  # moments that measure nothing
        result = caller.run(ReferenceServer(config), script)
    ended = {s.context.span_id for s in RECORDER.ended}
    unended = [name for span_id, name in RECORDER.started.items() if span_id not in ended]
    return Call(result, config, caller.playout, caller.clock.leaked,  # type: ignore[attr-defined]
                list(RECORDER.ended), unended)


def talk_over(sound: Interjection, moment: Moment, then: list[Step] | None = None,
              clip: Clip | None = None, window_ms: float = 1000.0,
              reply_ms: float = REPLY_MS) -> list[Step]:
    """Say hello, barge in at ``moment`` with ``sound`` (or its perturbed ``clip``), then one
    more turn that must be answered (or ``then``). ``window_ms``: how soon the agent must go
    quiet for words, and must not for other sounds."""
    step = barge_in(clip or sound.clip, after_ms=moment.after_ms, at_state=moment.state,
                    stop_timeout_ms=window_ms)
    follow = [answer(until="audible")] if sound.words else [pause(reply_ms + 400)]
    last = [say("hello"), answer(until="audible")] if then is None else then
    return [say("hello"), step, *follow, *last]


# ---------------------------------------------------------------------- the properties


def check_stops_within_bound(call: Call) -> None:
    """What the listener heard after the user began talking: at most the agent's bound, whether
    the agent stopped (``ok``) or its reply ran out by itself first (``not_interrupted``)."""
    bound = call.config.stop_bound_ms(call.line)
    for m in call.result.metrics.barge_ins:
        assert m.outcome in ("ok", "not_interrupted") and m.heard_ms <= bound, (
            f"the listener heard the agent {m.heard_ms:g} ms after the user started talking over "
            f"it (outcome {m.outcome}; the agent's bound is {bound:g} ms):{call.story(m.start_ns)}")


@EXAMPLES
@given(WORDS, MOMENTS, playout_configs(), reference_configs(reply_ms=REPLY_MS))
def test_property_after_any_barge_in_the_listener_hears_silence_within_the_agents_bound(
        sound, moment, line, config):
    call = run(talk_over(sound, moment), config, line)
    assume_landed(call.result.metrics)
    check_stops_within_bound(call)


def check_no_audio_after_flush(call: Call) -> None:
    """Between the agent's clear and its next turn's 'thinking', it sends no audio."""
    cleared: int | None = None
    for entry in call.result.log.of(Received):
        event = entry.event
        if isinstance(event, AgentClear):
            cleared = entry.arrived_ns
        elif isinstance(event, AgentState) and event.state == "thinking":
            cleared = None
        elif isinstance(event, AgentAudio) and cleared is not None:
            origin = call.result.log.origin_ns
            raise AssertionError(
                f"the agent sent audio {(entry.arrived_ns - cleared) / 1e6:g} ms after its flush "
                f"(flushed at {(cleared - origin) / 1e6:g} ms, before its next turn began): "
                f"{call.story(cleared)}")


def check_clean(call: Call) -> None:
    assert call.unended == [], f"spans never ended: {call.unended}"
    for span in call.spans:
        a = span.attributes or {}
        done = {"audio.tts": "audio.audio_ms", "audio.llm": "audio.tokens",
                "audio.asr": "audio.final_ms"}.get(span.name)
        assert not a.get("audio.error"), f"{span.name} failed: {span.events}"
        if done is not None:
            assert done in a or a.get("audio.cancelled") is True, (
                f"{span.name} of turn {a.get('audio.turn_id')} stopped before finishing "
                f"without audio.cancelled=True")
    assert call.leaked == (), f"tasks still running after close(): {call.leaked}"
    assert call.result.metrics.responses[-1].outcome == "ok"


@EXAMPLES
@given(call_scripts(sounds=WORDS, moments=MOMENTS, reply_ms=REPLY_MS, window_ms=1000),
       reference_configs(reply_ms=REPLY_MS))
def test_property_cancellation_leaves_no_audio_no_open_span_no_task_and_the_next_turn_answered(
        script, config):
    call = run(script, config)
    check_no_audio_after_flush(call)
    check_clean(call)


TOLERANT = replace(FAST, reply_ms=2000.0, **BACKCHANNEL_TOLERANT)


@EXAMPLES
@given(interjections(("words", "backchannel", "cough")),
       barge_in_moments(reply_ms=TOLERANT.reply_ms, max_after_ms=800,
                        anchors=("free", "chunk_boundary")),
       perturbations(noises=(None, "pink_noise"), snr_db=(20, 40), gain_db=(-6, 6),
                     clip_db=(0, 0), lead_ms=(0, 300)))
def test_property_a_tolerant_agent_ignores_backchannels_and_coughs_and_stops_for_words(
        sound, moment, perturbation):
    """Backchannels and coughs must leave at least a second of reply playing; words must stop
    it within the tolerant agent's (longer) bound.

    The envelope is the policy's: it counts voiced time, so a periodic hum under the user
    (``room_tone``) reads as voice and can stretch an "uh-huh" past 500 ms; broadband noise
    down to 20 dB SNR cannot."""
    window = TOLERANT.stop_bound_ms() if sound.words else 1000.0
    script = talk_over(sound, moment, clip=perturbation.apply(sound.clip), window_ms=window,
                       reply_ms=TOLERANT.reply_ms)
    call = run(script, TOLERANT)
    assume_landed(call.result.metrics)
    [decision] = call.result.metrics.interruptions
    if sound.words:  # stopped in time, or its reply ran out by itself within the bound
        check_stops_within_bound(call)
    else:
        assert not decision.stopped, (
            f"a {sound.kind} ({sound.clip}) stopped the agent:{call.story(decision.onset_ns)}")
        assert not any(s.name == "audio.barge_in" for s in call.spans)
    check_clean(call)


@settings(max_examples=30, deadline=None, database=None)
@given(st.lists(st.tuples(interjections(), MOMENTS), min_size=1, max_size=3))
def test_property_missed_and_false_interruptions_become_0_1_samples_a_gate_can_read(turns):
    """Each landed sound gives one sample: barge_in.missed for words, barge_in.false else."""
    script: list[Step] = []
    for sound, moment in turns:
        script += talk_over(sound, moment, then=[])
    call = run(script + [say("hello"), answer(until="audible")])
    names = [s.name for s in call.spans if s.name.startswith("barge_in.")]
    decisions = call.result.metrics.interruptions
    assert names == [f"barge_in.{'missed' if d.intended else 'false'}" for d in decisions]
    for span, d in zip([s for s in call.spans if s.name.startswith("barge_in.")], decisions):
        value = span.attributes[f"audio.{span.name.split('.')[1]}"]  # type: ignore[index]
        assert value == float(d.missed or d.false)


# ---------------------------------------------------------------------- found and shrunk

FIND = settings(max_examples=200, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def test_the_stop_property_finds_the_no_flush_incident_and_shrinks_it_to_a_timeline():
    @FIND
    @given(WORDS, MOMENTS)
    def stops_in_time(sound, moment):
        call = run(talk_over(sound, moment), replace(FAST, **NO_FLUSH))
        assume_landed(call.result.metrics)
        check_stops_within_bound(call)

    with pytest.raises(AssertionError) as failure:
        stops_in_time()
    message = str(failure.value)
    assert "the listener heard the agent" in message and "the agent's bound is 220 ms" in message
    assert "user talks over the agent with" in message and "agent state: interrupted" in message
    assert "listener stops hearing the agent" in message


def test_the_flush_property_finds_the_racy_flush_and_shrinks_it_to_a_chunk_in_flight():
    examples: list[bool] = []  # passed or failed, in the order hypothesis ran them

    @FIND
    @given(WORDS, MOMENTS)
    def no_audio_after_flush(sound, moment):
        examples.append(False)
        call = run(talk_over(sound, moment), replace(FAST, **RACY_FLUSH))
        check_no_audio_after_flush(call)
        examples[-1] = True

    with pytest.raises(AssertionError, match="the agent sent audio .* ms after its flush") as info:
        no_audio_after_flush()
    message = str(info.value)
    assert "agent clears the client's buffer" in message and "agent sends audio" in message
    assert examples.index(False) < 200          # found within 200 examples (then shrunk)
    assert True in examples                     # and not on every moment: it is a race
