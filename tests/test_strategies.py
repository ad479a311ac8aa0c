"""Specification of the hypothesis strategies: what each draws, that drawn values are valid as
drawn, and that a moment that cannot exist is rejected, never a flaky failure."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from pytest_voicelatency.agents.backend import (
    FAULTS,
    BackendCall,
    BackendError,
    BackendProfile,
    ScriptedBackend,
    merge_timelines,
)
from pytest_voicelatency.agents.reference import ReferenceConfig, ReferenceServer
from pytest_voicelatency.audio.clips import load_clip
from pytest_voicelatency.call.caller import Caller
from pytest_voicelatency.call.script import Answer, BargeIn, Pause, Say, check_script
from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.strategies import (
    NETWORKS,
    Interjection,
    Moment,
    Perturbation,
    assume_landed,
    backend_calls,
    backend_faults,
    backend_profiles,
    barge_in_moments,
    call_scripts,
    interjection_clips,
    interjections,
    perturbations,
    playout_configs,
    reference_configs,
)
from pytest_voicelatency.vclock import VirtualClock

SOME = settings(max_examples=60, deadline=None, database=None)


@SOME
@given(barge_in_moments(reply_ms=1000, tts_chunk_ms=200, lead_ms=30))
def test_moments_are_where_their_anchor_says(moment: Moment):
    assert 0 <= moment.after_ms <= 1000
    if moment.anchor == "before_audio":
        assert moment.state == "thinking" and moment.after_ms <= 300
    elif moment.anchor == "chunk_boundary":
        offset = (moment.after_ms + 30) % 200
        assert min(offset, 200 - offset) <= 10            # within 10 ms of a chunk's start
    elif moment.anchor == "last_frame":
        assert 970 <= moment.after_ms <= 990
    assert moment.state in (None, "speaking", "thinking")
    assert "ms after the" in moment.describe()


def test_a_moment_that_cannot_exist_is_rejected_not_failed():
    """A reply of one chunk has no chunk boundary: every draw is rejected, so hypothesis says
    the strategy is unsatisfiable instead of running a call that means nothing."""
    @settings(max_examples=10, deadline=None, database=None,
              suppress_health_check=[HealthCheck.filter_too_much])
    @given(barge_in_moments(anchors=("chunk_boundary",), reply_ms=150, tts_chunk_ms=400))
    def boundary(moment):
        raise AssertionError(f"drew {moment}")

    with pytest.raises(Unsatisfiable):
        boundary()


@SOME
@given(interjections())
def test_interjections_are_labelled_bundled_clips(sound: Interjection):
    clip = load_clip(sound.clip)
    assert clip.onset_ms is not None
    if sound.words:
        assert clip.kind in ("utterance", "interruption")
        assert clip.offset_ms - clip.onset_ms >= 1000 or clip.kind == "interruption"
    else:
        assert clip.kind == {"backchannel": "backchannel", "cough": "cough", "babble": "babble",
                             "bark": "bark"}[sound.kind]


def test_the_kinds_come_from_the_labels_and_words_leave_out_single_short_words():
    assert interjection_clips("backchannel") == ("mm_hm", "uh_huh")
    assert interjection_clips("cough") == ("cough",)
    assert interjection_clips("bark") == ("dog_bark",)
    words = interjection_clips("words")
    assert {"wait_stop", "meant_tuesday", "confirm_order"} <= set(words)
    assert "hello" not in words


@SOME
@given(perturbations(), st.sampled_from(["wait_stop", "mm_hm", "confirm_order"]))
def test_a_perturbation_keeps_the_ground_truth_exact(perturbation: Perturbation, name: str):
    clip = load_clip(name)
    out = perturbation.apply(clip)
    assert out.kind == clip.kind and abs(out.samples).max() <= 1.0
    assert out.onset_ms == pytest.approx(clip.onset_ms + perturbation.lead_ms, abs=1 / 16)
    assert out.offset_ms - out.onset_ms == pytest.approx(clip.offset_ms - clip.onset_ms)
    assert out.samples.size == clip.samples.size + round(perturbation.lead_ms * 16)


@SOME
@given(playout_configs(("4g",)))
def test_line_profiles_vary_around_their_network(line):
    delay, jitter, buffer = NETWORKS["4g"]
    assert line.buffer_ms == buffer
    assert 0.5 * delay <= line.delay_ms <= 1.5 * delay
    assert 0.5 * jitter <= line.jitter_ms <= 1.5 * jitter


@SOME
@given(reference_configs(racy_flush=True, reply_ms=900.0))
def test_agent_profiles_draw_stage_latencies_and_keep_fixed_knobs(config: ReferenceConfig):
    assert config.racy_flush and config.reply_ms == 900.0
    for latency in (config.asr_first_partial, config.llm_first_token, config.tts_chunk):
        assert 0 < latency.median_ms <= latency.p95_ms <= 2 * latency.median_ms
    assert config.cancel.max_ms is not None      # capped: the stop bound is exact


@SOME
@given(call_scripts(turns=(1, 3)))
def test_call_scripts_are_valid_scripts_that_end_with_a_turn_that_must_be_answered(script):
    assert check_script(script) == tuple(script)
    assert isinstance(script[-2], Say) and isinstance(script[-1], Answer)
    for step, following in zip(script, script[1:]):
        if isinstance(step, BargeIn):
            assert isinstance(following, (BargeIn, Answer, Pause))
            assert step.stop_timeout_ms == 1500


@pytest.mark.filterwarnings("ignore:.*nothing to barge in on")
@settings(max_examples=15, deadline=None, database=None)
@given(call_scripts(turns=(1, 1), perturb=perturbations(lead_ms=(0, 100)), reply_ms=1000.0),
       reference_configs(reply_ms=1000.0))
def test_drawn_calls_run_on_the_reference_agent_in_virtual_time(script, config):
    result = Caller(clock="virtual").run(ReferenceServer(config), script)
    assume_landed(result.metrics)
    assert result.metrics.responses[-1].outcome == "ok"


@pytest.mark.parametrize("make, message", [
    (lambda: barge_in_moments(anchors=("midnight",)), "anchor must be one of"),
    (lambda: barge_in_moments(states=()), "at least one anchor and one state"),
    (lambda: interjections(()), "at least one kind"),
    (lambda: interjection_clips("whistle"), "interjection kind must be one of"),
    (lambda: perturbations(snr_db=(30, 10)), "snr_db: low 30 > high 10"),
    (lambda: playout_configs(("dialup",)), "networks must be among"),
    (lambda: reference_configs(warp_drive=True), "no ReferenceConfig knob"),
    (lambda: call_scripts(turns=(2, 1)), "turns must be 1 <= low <= high"),
    (lambda: backend_faults(("meteor",)), "backend faults must be among"),
    (lambda: backend_calls(latency_ms=(500, 100)), "latency_ms must be 0 <= low <= high"),
    (lambda: backend_calls(timeout_ms=0), "timeout_ms must be a positive number"),
    (lambda: backend_profiles(requests=(3, 1)), "requests must be 0 <= low <= high"),
    (lambda: BackendCall(-5.0), "latency_ms must be a finite number >= 0"),
    (lambda: BackendCall(10.0, "meteor"), "fault must be one of"),  # type: ignore[arg-type]
    (lambda: BackendProfile.from_json({"calls": [[10, "none", 3]]}), "a backend profile is"),
])
def test_bad_arguments_fail_at_once_naming_what_is_accepted(make, message):
    with pytest.raises(VoiceLatencyUsageError, match=message):
        make()


# ---------------------------------------------------------------------- an agent's backend


@SOME
@given(backend_profiles(requests=(1, 3), latency_ms=(0, 900), faults=("none", "hang"),
                        then=BackendCall(20.0)))
def test_backend_profiles_draw_requests_within_their_ranges_and_round_trip_as_json(profile):
    assert 1 <= len(profile.calls) <= 3 and profile.then == BackendCall(20.0)
    assert all(0 <= c.latency_ms <= 900 and c.fault in ("none", "hang") for c in profile.calls)
    assert profile.call(len(profile.calls)) == profile.then
    assert BackendProfile.from_json(profile.to_json()) == profile


def test_with_a_timeout_half_the_drawn_latencies_fall_near_it():
    near: list[bool] = []

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(backend_calls(latency_ms=(0, 20_000), timeout_ms=400))
    def draw(call: BackendCall) -> None:
        near.append(350 <= call.latency_ms <= 450)

    draw()
    assert sum(near) >= len(near) // 4, f"{sum(near)} of {len(near)} within 50 ms of 400"


def test_faults_cover_every_kind_and_shrink_towards_the_first():
    assert set(FAULTS) == {"none", "error", "commit_error", "lost_reply", "hang"}
    drawn: set[str] = set()

    @settings(max_examples=100, deadline=None, database=None)
    @given(backend_faults())
    def draw(fault: str) -> None:
        drawn.add(fault)

    draw()
    assert drawn == set(FAULTS)
    assert find(backend_faults(("hang", "error")), lambda f: True) == "hang"


def _call_backend(profile: BackendProfile, *, timeout_s: float, idempotent: bool = False
                  ) -> tuple[ScriptedBackend, list[str]]:
    """One tool-like caller on virtual time: two tries, each waiting ``timeout_s``."""
    backend = ScriptedBackend(profile, name="db")
    seen: list[str] = []

    async def caller() -> None:
        for _ in range(2):
            try:
                commit = await asyncio.wait_for(
                    backend.commit("k", idempotency_key="k" if idempotent else None), timeout_s)
                seen.append(f"ok #{commit.request}")
                break
            except TimeoutError:
                seen.append("timeout")
            except BackendError:
                seen.append("error")
        await asyncio.sleep(5.0)  # late commits land

    VirtualClock().run(caller())
    return backend, seen


@pytest.mark.parametrize("fault, seen, committed", [
    ("none", ["ok #0"], [(0, True)]),
    ("error", ["error", "ok #1"], [(1, True)]),
    ("commit_error", ["error", "ok #1"], [(0, True), (1, True)]),
    ("lost_reply", ["timeout", "ok #1"], [(0, True), (1, True)]),
    ("hang", ["timeout", "ok #1"], [(1, True)]),
])
def test_each_fault_commits_and_replies_as_documented(fault, seen, committed):
    backend, got = _call_backend(BackendProfile((BackendCall(100.0, fault),)), timeout_s=0.5)
    assert got == seen
    assert [(c.request, c.caller_waiting) for c in backend.commits] == committed
    assert backend.requests == len(seen)


def test_a_commit_after_its_caller_gave_up_is_recorded_as_such_and_is_a_duplicate():
    backend, seen = _call_backend(BackendProfile((BackendCall(700.0),), BackendCall(50.0)),
                                  timeout_s=0.5)
    assert seen == ["timeout", "ok #1"]
    first, late = backend.commits
    assert (first.request, late.request, late.caller_waiting) == (1, 0, False)
    assert late.at_ns - backend.gave_up_ns(0) == 200_000_000  # virtual time: exact
    assert backend.duplicates() == (late,)
    rows = backend.timeline(origin_ns=late.at_ns - 700_000_000).splitlines()
    assert rows[-1] == "    700.000 ms  db commits 'k' (#0) (its caller gave up 200 ms before)"


def test_an_idempotency_key_commits_once_whatever_the_order():
    backend, seen = _call_backend(BackendProfile((BackendCall(700.0),), BackendCall(50.0)),
                                  timeout_s=0.5, idempotent=True)
    assert seen == ["timeout", "ok #1"] and [c.request for c in backend.commits] == [1]
    assert backend.duplicates() == ()
    assert any("#0 deduplicated: 'k' already committed by #1" in t for _, t in backend.events)


def test_merged_timelines_are_in_time_order():
    assert merge_timelines("     20.000 ms  b\n    100.000 ms  d", ["     10.000 ms  a",
                                                                    "     50.000 ms  c"]) == (
        "     10.000 ms  a\n     20.000 ms  b\n     50.000 ms  c\n    100.000 ms  d")
