"""Properties of real framework agents on virtual time: an unmodified Pipecat pipeline (Pipecat
1.14's own service bases with injected delays, tests/pipecat_services.py) under the simulated
caller on ``VirtualClock(wall_clock="virtual")``. ``pytest -k property`` selects them.

After any barge-in: no LLM tokens and no TTS audio for the cancelled turn, the listener hears
silence within the bound, the next turn is answered, every span ends. A planted bug — a pacing
processor whose interruption handler races (``RacyPacer(racy=True)``) — is found within 200
examples, shrunk to a minimal timeline printed in the failure, saved as a replay file and
replayed with the same samples. The bad inputs (a moved time call, a thread, a loop that never
yields, a processor blocking the loop) each fail the call naming what and where.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import types
from pathlib import Path

import pytest

pytest.importorskip("pipecat", reason="pipecat-ai is not installed")

import pipecat_services  # noqa: E402, F401 - the replay factory's module
from helpers import RECORDER, recording  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from loguru import logger  # noqa: E402
from pipecat.frames.frames import Frame, InputAudioRawFrame, UserStartedSpeakingFrame  # noqa: E402
from pipecat.observers.base_observer import BaseObserver, FramePushed  # noqa: E402
from pipecat.observers.user_bot_latency_observer import UserBotLatencyObserver  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat_services import TAPS, THREE_SENTENCES, build_pipeline, build_tapped  # noqa: E402

from pytest_voicelatency.call.caller import Caller, CallResult  # noqa: E402
from pytest_voicelatency.call.metrics import timeline  # noqa: E402
from pytest_voicelatency.call.script import Step, answer, barge_in, say  # noqa: E402
from pytest_voicelatency.frameworks.pipecat import PipecatAgent  # noqa: E402
from pytest_voicelatency.replay import load_replay, run_replay, samples_of, save_replay  # noqa: E402
from pytest_voicelatency.vclock import VirtualClock, VirtualTimeError  # noqa: E402

#: the listener hears silence within this of the user starting to talk: the VAD's start
#: (60 ms), the interruption through the pipeline, the client's buffer (40 ms), a frame or two
STOP_BOUND_MS = 250.0
WORDS = st.sampled_from(["wait_stop", "meant_tuesday"])
AFTER_MS = st.integers(min_value=0, max_value=900)
FIND = settings(max_examples=200, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


logger.remove()  # Pipecat's DEBUG logging costs more than the call itself
logger.add(sys.stderr, level="WARNING")


def script(word: str, after_ms: int) -> list[Step]:
    """The next reply plays to its end (``until="done"``), so every span of the call ends. Hung
    up mid-reply (``until="audible"``) Pipecat 1.14 leaves that reply's ``tts`` span open: the
    agent's close cancels the worker, and Pipecat ends a ``tts`` span only on its
    ``TTSStoppedFrame``, completion, an interruption or the context's removal
    (docs/frameworks.md)."""
    return [say("confirm_order"), barge_in(word, after_ms=after_ms, stop_timeout_ms=1000),
            answer(until="done")]


def run(steps: list[Step], **knobs: object) -> CallResult:
    with recording():
        return Caller(clock=VirtualClock(wall_clock="virtual")).run(
            PipecatAgent(lambda: build_tapped(**knobs)), steps)  # type: ignore[arg-type]


def story(result: CallResult) -> str:
    taps = "\n".join(f"   {tap.name}: " + ", ".join(f"{kind}@{t * 1000 - 1e6:.1f}"
                                                      for t, kind in tap.seen) for tap in TAPS)
    return f"\n{timeline(result.log, rows=30)}\n frames (ms of virtual time):\n{taps}"


def check_cancelled_turn_is_silent(result: CallResult) -> None:
    """No LLM tokens (after the LLM) and no TTS audio (after the TTS) between an interruption
    and the next reply's start."""
    for tap in TAPS:
        interrupted_at: float | None = None
        for t, kind in tap.seen:
            if kind == "interruption":
                interrupted_at = t
            elif kind == "reply":
                interrupted_at = None
            elif interrupted_at is not None:
                raise AssertionError(
                    f"{tap.name}: {kind} for the cancelled turn {(t - interrupted_at) * 1000:.1f} "
                    f"ms after the interruption:{story(result)}")


def check_stop_answer_spans(result: CallResult) -> None:
    [stop] = result.metrics.barge_ins
    assert stop.outcome == "ok" and stop.value_ms <= STOP_BOUND_MS, (
        f"the listener heard the agent {stop.value_ms:g} ms into the barge-in "
        f"({stop.outcome}; bound {STOP_BOUND_MS:g} ms):{story(result)}")
    assert result.metrics.responses[-1].outcome == "ok", f"next turn unanswered:{story(result)}"
    assert RECORDER.unended() == [], f"spans never ended: {RECORDER.unended()}"


@pytest.mark.slow
@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(WORDS, AFTER_MS)
def test_property_after_a_pipecat_barge_in_the_cancelled_turn_is_silent_and_the_next_answered(
        word, after_ms):
    result = run(script(word, after_ms))
    check_cancelled_turn_is_silent(result)
    check_stop_answer_spans(result)


#: the planted bug's pipeline: a racy pacer, a reply it paces in three sentences
RACY = {"racy": True, "reply": THREE_SENTENCES}


@pytest.mark.slow
def test_property_a_racy_interruption_handler_is_found_shrunk_saved_and_replayed(tmp_path):
    examples: list[tuple[str, int]] = []
    failing: list[tuple[str, int, CallResult]] = []

    @FIND
    @given(WORDS, AFTER_MS)
    def cancelled_turn_is_silent(word: str, after_ms: int) -> None:
        examples.append((word, after_ms))
        result = run(script(word, after_ms), **RACY)
        try:
            check_cancelled_turn_is_silent(result)
        except AssertionError:
            failing.append((word, after_ms, result))
            raise

    with pytest.raises(AssertionError, match="for the cancelled turn") as info:
        cancelled_turn_is_silent()
    message = str(info.value)
    assert "agent clears the client's buffer" in message and "line_tap" in message
    first = next(i for i, e in enumerate(examples) if e in [(w, a) for w, a, _ in failing])
    assert first < 200
    word, after_ms, result = failing[-1]  # the shrunk example: hypothesis re-runs it last
    path = save_replay(tmp_path / "racy.json", script=script(word, after_ms),
                       factory="pipecat_services:make_agent", knobs=RACY,
                       result=result, title=message.splitlines()[0],
                       seeds={"hypothesis": "derandomize"})
    assert load_replay(path)["samples"] == samples_of(result)
    replayed, _spans = run_replay(path)  # raises ReplayMismatch if a sample differs
    assert samples_of(replayed) == samples_of(result)
    assert timeline(replayed.log, rows=500) == timeline(result.log, rows=500)
    with pytest.raises(AssertionError, match="for the cancelled turn"):
        check_cancelled_turn_is_silent(replayed)
    print(f"\nfound after {first + 1} of {len(examples)} examples, shrunk to {word!r} "
          f"after_ms={after_ms}:\n{message}\nreplay file:\n{path.read_text()}")


def test_the_same_pipeline_runs_identically_twice_on_virtual_time():
    first, second = run(script("wait_stop", 300)), run(script("wait_stop", 300))
    assert samples_of(first) == samples_of(second)
    assert timeline(first.log, rows=500) == timeline(second.log, rows=500)


INLINE_KINDS: list[str] = []


#: each observed() call's observers: how each was told about frames ("inline" or "queued")
PROXIES: list[dict[str, str]] = []


def observed(*, session_id: str = "same-call", build: object = build_tapped,
             **agent_options: object) -> tuple[CallResult, list]:
    """One barge-in call on a fresh virtual clock: its result and every span it ended (and, in
    INLINE_KINDS and PROXIES, the kind of worker observer and of each proxy it had)."""
    agent = PipecatAgent(build, **agent_options)  # type: ignore[arg-type]
    with recording():
        result = Caller(clock=VirtualClock(wall_clock="virtual")).run(
            agent, script("meant_tuesday", 350), session_id=session_id)
        worker_observer = agent._worker._observer  # type: ignore[union-attr]
        INLINE_KINDS.append(type(worker_observer).__name__)
        PROXIES.append({f"{type(o).__name__}#{n}": "queued" if isinstance(
            proxy.queue, asyncio.Queue) else "inline"
            for n, (o, proxy) in enumerate(worker_observer._proxies.items())})
        return result, list(RECORDER.finished)


def test_pipecats_own_observers_run_inline_and_record_exactly_what_queued_ones_do():
    """Inline (the default) and Pipecat's queue-and-task-per-observer give the same samples,
    the same log and the same spans, to the nanosecond and attribute."""
    INLINE_KINDS.clear()
    inline, inline_spans = observed()
    queued, queued_spans = observed(inline_observers=False)
    assert INLINE_KINDS == ["_InlineWorkerObserver", "WorkerObserver"]
    assert samples_of(inline) == samples_of(queued) and samples_of(inline)["caller.barge_in"]
    assert timeline(inline.log, rows=500) == timeline(queued.log, rows=500)
    names = {name for name, *_ in inline_spans}
    assert {"conversation", "turn", "stt", "llm", "tts"} <= names, names
    assert sorted(inline_spans, key=repr) == sorted(queued_spans, key=repr)


class SlowObserver(BaseObserver):  # type: ignore[misc]
    """A user's observer that takes 200 ms (of the call's time) over every frame it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    async def on_push_frame(self, data: FramePushed) -> None:
        self.seen += 1
        await asyncio.sleep(0.2)


def test_a_users_observer_keeps_its_own_task_and_cannot_slow_the_pipeline():
    slow = SlowObserver()
    alone, _ = observed()
    watched, _ = observed(worker_options={"observers": [slow]})
    assert slow.seen > 0
    assert samples_of(watched) == samples_of(alone)


def test_only_the_workers_own_observers_go_inline_not_a_users_of_the_same_type():
    PROXIES.clear()
    observed(worker_options={"observers": [UserBotLatencyObserver()]})
    assert PROXIES[0] == {"UserBotLatencyObserver#0": "queued",
                          "TurnTrackingObserver#1": "inline",
                          "UserBotLatencyObserver#2": "inline",
                          "TurnTraceObserver#3": "inline"}


class PushesOnCleanup(FrameProcessor):  # type: ignore[misc]
    """A processor that tells the pipeline the user spoke while it is being torn down."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        await self.push_frame(UserStartedSpeakingFrame())
        await super().cleanup()


def test_an_inline_observer_is_told_nothing_once_the_worker_has_cleaned_it_up():
    """Pipecat cleans its observers up before its processors; a frame pushed after that
    reaches no queued observer, and must reach no inline one (it would open a turn span that
    never ends)."""
    def build() -> list[FrameProcessor]:
        return [PushesOnCleanup(), *build_tapped()]

    inline, inline_spans = observed(build=build)
    assert RECORDER.unended() == []
    queued, queued_spans = observed(build=build, inline_observers=False)
    assert RECORDER.unended() == []
    assert sorted(inline_spans, key=repr) == sorted(queued_spans, key=repr)


def test_an_inline_observer_that_raises_is_logged_and_the_call_goes_on(monkeypatch):
    async def broken(self: object, data: object) -> None:
        raise RuntimeError("latency observer bug")

    monkeypatch.setattr(UserBotLatencyObserver, "on_push_frame", broken)
    errors: list[str] = []
    sink = logger.add(lambda message: errors.append(str(message)), level="ERROR")
    try:
        result, _ = observed()
    finally:
        logger.remove(sink)
    assert [m.outcome for m in (*result.metrics.responses, *result.metrics.barge_ins)] \
        == ["ok", "ok"]
    [error] = [e for e in errors if "latency observer bug" in e]
    assert "UserBotLatencyObserver" in error and "told nothing more" in error


# ---------------------------------------------------------------------- bad input


def test_a_guarded_clock_refuses_a_pipecat_agent_naming_wall_clock_virtual():
    from pytest_voicelatency.errors import VoiceLatencyUsageError

    with pytest.raises(VoiceLatencyUsageError, match="wall_clock='virtual'") as refused:
        Caller(clock="virtual").run(PipecatAgent(build_pipeline), script("wait_stop", 300))
    # the one fix that applies to a framework agent, not advice for hand-written ones
    assert "reads time.monotonic()/time.time() directly" in str(refused.value)
    assert "session.clock" not in str(refused.value)


MOVED = '''
from time import monotonic
from pipecat.processors.frame_processor import FrameProcessor

class Stamper(FrameProcessor):
    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        self.last = monotonic()
        await self.push_frame(frame, direction)
'''


def test_a_moved_time_call_fails_the_call_naming_module_and_line(monkeypatch):
    module = types.ModuleType("moved_time_processor")
    module.__file__ = "moved_time_processor.py"
    exec(compile(MOVED, module.__file__, "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(VirtualTimeError, match=r"moved_time_processor.*monotonic = time.monotonic"):
        Caller(clock=VirtualClock(wall_clock="virtual")).run(
            PipecatAgent(lambda: [*build_pipeline(), module.Stamper()]), script("wait_stop", 300))
    assert time.monotonic is not module.monotonic or True  # the module keeps its binding


class Sleeper(FrameProcessor):
    """Starts a thread that sleeps on wall time: its time is not the call's."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and not hasattr(self, "thread"):
            self.thread = threading.Thread(target=time.sleep, args=(5.0,), name="wall-sleeper",
                                           daemon=True)
            self.thread.start()
        await self.push_frame(frame, direction)


def test_a_thread_sleeping_on_wall_time_is_named():
    with pytest.raises(VirtualTimeError, match="a thread started during the call.*wall-sleeper"):
        Caller(clock=VirtualClock(wall_clock="virtual")).run(
            PipecatAgent(lambda: [Sleeper(), *build_pipeline()]), script("wait_stop", 300))


class Hog(FrameProcessor):
    """On the first loud frame: ``spin_s`` of CPU without yielding (forever when None)."""

    def __init__(self, spin_s: float | None) -> None:
        super().__init__()
        self.spin_s = spin_s

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and max(frame.audio[:64]) > 8 and self.spin_s != 0:
            until = time.thread_time() + (self.spin_s or 1e9)
            self.spin_s = 0
            while time.thread_time() < until:  # CPU work; thread_time is not virtualised
                pass
        await self.push_frame(frame, direction)


@pytest.mark.slow
def test_a_processor_blocking_the_loop_with_cpu_work_fails_saying_how_long():
    with pytest.raises(VirtualTimeError, match=r"blocked for \d+ ms of real time \(\d+ ms of CPU"):
        Caller(clock=VirtualClock(wall_clock="virtual")).run(
            PipecatAgent(lambda: [Hog(0.4), *build_pipeline()]), script("wait_stop", 300))


@pytest.mark.slow
def test_a_pipeline_that_never_yields_is_interrupted_and_fails_saying_how_long():
    with pytest.raises(VirtualTimeError, match=r"blocked for \d+ ms"):
        Caller(clock=VirtualClock(wall_clock="virtual")).run(
            PipecatAgent(lambda: [Hog(None), *build_pipeline()], stall_limit_s=1.0),
            script("wait_stop", 300))


def test_a_replay_file_names_its_format(tmp_path):
    path = save_replay(tmp_path / "r.json", script=script("wait_stop", 300),
                       factory="pipecat_services:make_agent")
    data = path.read_text()
    assert '"format": "pytest-voicelatency/replay"' in data and '"wall_clock": "virtual"' in data
    assert Path(path).stat().st_size < 4000
    asyncio.get_event_loop_policy()  # the replay holds no loop
