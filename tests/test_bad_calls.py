"""Bad calls and bad agents (issue #10, "Trust the gate"): each case is what a user or an agent
could really do to the caller, and what the caller reports for it — never a forged latency, a
lost batch, a merged session or a hang.

Every case id is listed, with its outcome, in ``docs/robustness.md`` ("Call and agent cases");
``test_the_doc_lists_every_case`` keeps the two in step. Deterministic cases run on virtual time.
"""

from __future__ import annotations

import asyncio
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from pytest_voicelatency import voice_caller
from pytest_voicelatency.agents.oracle import OracleAgent, OracleConfig, tone_clip
from pytest_voicelatency.audio.clips import Clip
from pytest_voicelatency.call.caller import Caller
from pytest_voicelatency.call.log import (
    CallEnded,
    CallLog,
    Expectation,
    FrameSent,
    Received,
    Utterance,
)
from pytest_voicelatency.call.metrics import measure
from pytest_voicelatency.call.playout import PlayoutConfig
from pytest_voicelatency.call.protocol import AgentAudio, AgentTimeoutError, AudioFormat
from pytest_voicelatency.call.script import answer, barge_in, say
from pytest_voicelatency.clock import RealClock
from pytest_voicelatency.spans.capture import capture_spans

DOC = Path(__file__).resolve().parent.parent / "docs" / "robustness.md"
USER = tone_clip(200, lead_ms=50, trail_ms=50)
QUICK = OracleConfig(response_delay_ms=200, reply_ms=500, send_jitter_ms=0.0)


def _quiet(run: Callable[[], str]) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = run()
    return text + " | " + " | ".join(str(w.message) for w in caught)


# ---------------------------------------------------------------------- barge-in truth


def ignored_barge_in() -> str:
    """The agent ignores the barge-in; its 500 ms reply happens to end 100 ms after the onset."""
    agent = OracleAgent(replace(QUICK, stop_delay_ms=None))
    with capture_spans() as cap:
        result = Caller(clock="virtual").run(agent, [say(USER), barge_in(USER, after_ms=400)])
    [m] = result.metrics.barge_ins
    spans = len(cap.samples(stage="caller.barge_in", metric="latency_ms"))
    [decision] = cap.samples(stage="barge_in.missed", metric="missed")
    return (f"{m.outcome} values={result.values('barge_in')} spans={spans} "
            f"missed={decision.value:g}")


def burst_reply_no_clear() -> str:
    """The whole reply queued at the client, no clear, no state: the listener hears all of it."""

    class Beep(OracleAgent):
        async def _stop(self, onset: int) -> None:  # never reacts
            return

    agent = Beep(replace(QUICK, mode="burst", reply_ms=600))
    result = Caller(clock="virtual").run(agent, [say(USER), barge_in(USER, after_ms=200)])
    return result.metrics.barge_ins[0].outcome


def honoured_with_clear() -> str:
    agent = OracleAgent(replace(QUICK, reply_ms=1500))
    result = Caller(clock="virtual").run(agent, [say(USER), barge_in(USER, after_ms=200)])
    [m] = result.metrics.barge_ins
    return f"{m.outcome} {m.value_ms:g}"


def honoured_without_clear() -> str:
    """Paced, stops sending, no clear, but says so (AgentState "listening")."""
    agent = OracleAgent(replace(QUICK, reply_ms=1500, honours_clear=False))
    result = Caller(clock="virtual").run(agent, [say(USER), barge_in(USER, after_ms=200)])
    return result.metrics.barge_ins[0].outcome


def silent_barge_in_clip() -> str:
    """A silent clip labelled as speech used as the interruption."""
    silent = Clip("hush", np.zeros(4800, np.float32), 16_000, kind="utterance",
                  onset_ms=50.0, offset_ms=250.0)
    agent = OracleAgent(replace(QUICK, reply_ms=600))
    with capture_spans() as cap:
        result = Caller(clock="virtual").run(agent, [say(USER), barge_in(silent, after_ms=400)])
    spans = len(cap.samples(stage="caller.barge_in"))
    return (f"{result.metrics.barge_ins[0].outcome} spans={spans}"
            f" decisions={len(result.metrics.interruptions)} {' '.join(result.metrics.notes)}")


def reply_outruns_stop_bound() -> str:
    agent = OracleAgent(replace(QUICK, stop_delay_ms=None, reply_ms=5000))
    result = Caller(clock="virtual").run(
        agent, [say(USER), barge_in(USER, after_ms=100, stop_timeout_ms=400)])
    m = result.metrics.barge_ins[0]
    return f"{m.outcome} {m.value_ms:g}"


def reply_outruns_max_reply() -> str:
    """A 120 s reply; the answer waits at most 3 s for it to end."""
    agent = OracleAgent(replace(QUICK, reply_ms=120_000))
    return _quiet(lambda: Caller(clock="virtual").run(
        agent, [say(USER), answer(max_reply_ms=3000)]).metrics.responses[0].outcome)


# ---------------------------------------------------------------------- sessions


def two_callers_one_test() -> str:
    with capture_spans() as cap:
        for _ in range(2):
            Caller(clock="virtual").run(OracleAgent(QUICK), [say(USER), answer()])
    return " ".join(sorted({s.session_id for s in cap.samples(stage="caller.response")}))


def two_twin_blocks() -> str:
    ids = []
    with capture_spans():
        for _ in range(2):
            with voice_caller(clock="virtual") as caller:
                ids.append(caller.run(OracleAgent(QUICK), [say(USER), answer()]).session_id)
    return " ".join(ids)


# ---------------------------------------------------------------------- batches


@dataclass
class Mute:
    """Never answers."""

    honours_clock = True

    async def start(self, session) -> None:
        pass

    async def receive(self, pcm: bytes) -> None:
        pass

    async def close(self) -> None:
        pass


def unanswered_turn_in_batch() -> str:
    agents = iter([OracleAgent(QUICK), Mute(), OracleAgent(QUICK)])
    results = Caller(clock="virtual").run_calls(lambda: next(agents),
                                                [[say(USER), answer(500)]] * 3)
    return " ".join(r.metrics.responses[0].outcome for r in results)


def one_call_fails_in_batch() -> str:
    class Breaks(Mute):
        async def receive(self, pcm: bytes) -> None:
            raise RuntimeError("ASR socket closed")

    agents = iter([OracleAgent(QUICK), Breaks(), OracleAgent(QUICK)])
    caller = Caller(clock="virtual")
    try:
        caller.run_calls(lambda: next(agents), [[say(USER), answer(500)]] * 3)
    except RuntimeError as exc:
        kept = sorted(r.session_id for r in caller.results if r.values())
        return f"{exc} {' '.join(exc.__notes__)} kept={kept}"
    return "no error"


# ---------------------------------------------------------------------- reliability


def late_frame_in_one_window() -> str:
    """Two responses in one call; one frame 30 ms late inside the second one's window only."""
    fmt, n = AudioFormat(), 320
    log = CallLog("s", fmt, PlayoutConfig(buffer_ms=0), RealClock(), origin_ns=0)
    ms = 1_000_000
    for i in range(200):
        due = (i + 1) * 20 * ms
        late = 30 * ms if i == 130 else 0  # due at 2620 ms: turn 2's window
        log.append(FrameSent(i, due, due, due + late))
    for turn, (start, end) in {"1": (0, 20), "2": (100, 120)}.items():
        log.append(Utterance(turn, "say", "tone", start * n, (end + 10) * n, start * n, end * n))
        log.append(Expectation("response", turn, 2000, 0))
        reply = np.full(3200, 8000, "<i2").tobytes()
        log.append(Received((end + 20) * 20 * ms, AgentAudio(reply, 16_000)))
    log.append(CallEnded(4200 * ms))
    metrics = measure(log)
    return (f"{[m.reliable for m in metrics.responses]} unreliable={metrics.unreliable} "
            f"call_reliable={metrics.reliable}")


# ---------------------------------------------------------------------- hangs

STUBBORN = '''
import asyncio
import pytest
from pytest_voicelatency.agents.oracle import tone_clip
from pytest_voicelatency.call.caller import Caller
from pytest_voicelatency.call.script import answer, say


class Stubborn:
    honours_clock = True

    async def start(self, session):
        self.task = asyncio.ensure_future(self.forever())

    async def forever(self):
        while True:
            try:
                await asyncio.sleep(0.01)
            except BaseException:
                continue

    async def receive(self, pcm):
        pass

    async def close(self):
        while True:
            try:
                await asyncio.sleep(1)
            except BaseException:
                continue


@pytest.mark.parametrize("clock", ["real", "virtual"])
def test_stubborn(clock):
    Caller(clock=clock, agent_timeout_ms=300, grace_ms=300).run(
        Stubborn(), [say(tone_clip(200, lead_ms=50, trail_ms=50)), answer(300)])
'''


def stubborn_agent_in_pytest(pytester: pytest.Pytester) -> str:
    pytester.makepyfile(test_stubborn=STUBBORN)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    return f"exit={result.ret} " + result.stdout.str()


def stubborn_close_virtual() -> str:
    class Closes(Mute):
        async def close(self) -> None:
            while True:
                try:
                    await asyncio.sleep(0)
                except BaseException:
                    continue

    try:
        Caller(clock="virtual", agent_timeout_ms=300, grace_ms=200).run(
            Closes(), [say(USER), answer(300)])
    except AgentTimeoutError as exc:
        return str(exc)
    return "no error"


STUBBORN_TASK = '''
import asyncio
from pytest_voicelatency.agents.oracle import tone_clip
from pytest_voicelatency.call.caller import Caller
from pytest_voicelatency.call.protocol import AgentTimeoutError
from pytest_voicelatency.call.script import answer, say

SCRIPT = [say(tone_clip(200, lead_ms=50, trail_ms=50)), answer(300)]


class Stubborn:
    """close() returns at once, but a task it leaves (and the task that one spawned) swallows
    every cancellation."""

    honours_clock = True

    async def start(self, session):
        self.task = asyncio.ensure_future(self.forever())

    async def forever(self):
        asyncio.ensure_future(self.spawned())
        while True:
            try:
                await asyncio.sleep(1)
            except BaseException:
                continue

    async def spawned(self):
        while True:
            try:
                await asyncio.sleep(1)
            except BaseException:
                continue

    async def receive(self, pcm):
        pass

    async def close(self):
        pass


ticks = 0


async def ticker():
    """The user's own task, running on the same loop throughout the call."""
    global ticks
    while True:
        await asyncio.sleep(0.01)
        ticks += 1


async def stubborn_call():
    mine = asyncio.ensure_future(ticker())
    try:
        await Caller(agent_timeout_ms=300, grace_ms=300).call(Stubborn(), SCRIPT)
    except AgentTimeoutError as exc:
        print("raised:", exc)
    seen = ticks
    await asyncio.sleep(0.1)
    print(f"user task untouched: {not mine.done()} {ticks > seen}")
'''

ASYNCIO_RUN = STUBBORN_TASK + '''
asyncio.run(stubborn_call())
print("the process ends")
'''

ANYIO_TEST = STUBBORN_TASK + '''
import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_stubborn_task():
    await stubborn_call()
'''


def stubborn_task_asyncio_run(pytester: pytest.Pytester) -> str:
    """``asyncio.run(main())`` awaiting ``caller.call()``: its final cancel-all used to wait
    forever for the agent's task. (``timeout`` only guards against a hang.)"""
    script = pytester.makepyfile(stubborn_main=ASYNCIO_RUN)
    result = pytester.run(sys.executable, str(script), timeout=120)
    return f"exit={result.ret} " + " | ".join(result.outlines)


def stubborn_task_anyio(pytester: pytest.Pytester) -> str:
    """The same under an async test (anyio's pytest plugin on asyncio): the test's loop
    teardown used to wait forever."""
    pytest.importorskip("anyio")
    pytester.makepyfile(test_stubborn_task=ANYIO_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", timeout=120)
    return f"exit={result.ret} " + " | ".join(result.outlines)


def leaked_task_async_virtual() -> str:
    """On virtual time, awaited on the clock's loop: the agent leaves a task that does stop
    when cancelled; the user's own task on the loop is left alone."""

    class Leaks(Mute):
        async def start(self, session) -> None:
            self.task = asyncio.ensure_future(asyncio.sleep(3600))

    agent, caller = Leaks(), Caller(clock="virtual", agent_timeout_ms=300, grace_ms=200)

    async def main() -> str:
        mine = asyncio.ensure_future(asyncio.sleep(3600))
        await caller.call(agent, [say(USER), answer(300)])
        alive = not mine.done()
        mine.cancel()
        return f"user task alive={alive} agent task cancelled={agent.task.cancelled()}"

    return _quiet(lambda: caller.clock.run(main()))


def failing_call_stubborn_task_async() -> str:
    """Awaited on the clock's loop, the call fails (receive() raises) and the agent's task
    swallows its cancellation: the call's own error is raised, noting the abandoned task."""

    class Breaks(Mute):
        async def start(self, session) -> None:
            self.task = asyncio.ensure_future(self.forever())

        async def forever(self) -> None:
            while True:
                try:
                    await asyncio.sleep(1)
                except BaseException:
                    continue

        async def receive(self, pcm: bytes) -> None:
            raise RuntimeError("ASR socket closed")

    caller = Caller(clock="virtual", agent_timeout_ms=300, grace_ms=200)

    async def main() -> None:
        await caller.call(Breaks(), [say(USER), answer(300)])

    try:
        _quiet(lambda: caller.clock.run(main()))
    except RuntimeError as exc:
        return f"{exc} | {' | '.join(exc.__notes__)}"
    return "no error"


# ---------------------------------------------------------------------- the matrix

#: case id -> (what is done, how to run it, a regex its outcome must match)
CASES: dict[str, tuple[str, Callable[..., str], str]] = {
    "call-barge-in-ignored": (
        "the agent ignores a barge-in; its reply ends 100 ms after the onset",
        ignored_barge_in, r"^not_interrupted values=\[\] spans=0 missed=1$"),
    "call-barge-in-burst-no-clear": (
        "the whole reply was queued at the client; no clear, no state",
        burst_reply_no_clear, r"^not_interrupted$"),
    "call-barge-in-clear": (
        "control: the agent clears 50 ms after the onset", honoured_with_clear, r"^ok 50$"),
    "call-barge-in-state-no-clear": (
        "control: the agent stops sending and emits AgentState, no clear",
        honoured_without_clear, r"^ok$"),
    "call-barge-in-silent-clip": (
        "a silent clip labelled as speech used as the interruption",
        silent_barge_in_clip, r"^no_onset spans=0 decisions=0 .*holds no audible sample"),
    "call-barge-in-outruns-bound": (
        "a 5 s reply the agent does not stop, stop_timeout_ms=400",
        reply_outruns_stop_bound, r"^missed 400$"),
    "call-reply-outruns-max-reply": (
        "a 120 s reply, answer(max_reply_ms=3000)",
        reply_outruns_max_reply, r"^ok \| .*still playing 3000 ms after it became audible"),
    "call-sessions-two-callers": (
        "two Caller()s in one test", two_callers_one_test, r"^call-1 call-2$"),
    "call-sessions-twin-blocks": (
        "two `with voice_caller()` blocks in one test", two_twin_blocks, r"^call-1 call-2$"),
    "call-batch-unanswered": (
        "run_calls of 3, one agent never answers", unanswered_turn_in_batch, r"^ok missed ok$"),
    "call-batch-one-fails": (
        "run_calls of 3, one agent's receive() raises", one_call_fails_in_batch,
        r"ASR socket closed.*1 of 3 calls failed \(call-2: RuntimeError.*"
        r"kept=\['call-1', 'call-3'\]"),
    "call-unreliable-window": (
        "one frame 30 ms late inside the second of two response windows",
        late_frame_in_one_window, r"^\[True, False\] unreliable=1 call_reliable=False$"),
    "agent-close-ignores-cancel": (
        "close() swallows CancelledError and spins (virtual time)", stubborn_close_virtual,
        r"Closes.close\(\) did not return within 300 ms and ignored its cancellation.*"
        r"abandoned .*close\(\) at "),
    "agent-stubborn-in-pytest": (
        "a real pytest run: close() and a task both swallow CancelledError (real and virtual)",
        stubborn_agent_in_pytest,
        r"(?s)^exit=1 .*Stubborn.close\(\) did not return within 300 ms.*abandoned "
        r"Stubborn.close\(\).*abandoned Stubborn.forever\(\).*2 failed"),
    "agent-stubborn-task-asyncio-run": (
        "asyncio.run(main()) awaits caller.call(); the agent leaves two tasks that swallow "
        "CancelledError; the user's own task runs on the same loop", stubborn_task_asyncio_run,
        r"^exit=0 raised: 2 agent task\(s\) still ran after the calls ended and ignored their "
        r"cancellation for 300 ms: abandoned (Stubborn.forever\(\) at .*stubborn_main.py:\d+|"
        r"Stubborn.spawned\(\) at .*stubborn_main.py:\d+|, )+ \(let CancelledError propagate.*"
        r" \| user task untouched: True True \| the process ends$"),
    "agent-stubborn-task-async-test": (
        "the same in an async test (anyio's pytest plugin, asyncio backend)", stubborn_task_anyio,
        r"^exit=0 .*raised: 2 agent task\(s\) .*abandoned .*Stubborn.forever\(\) at .*"
        r"user task untouched: True True.* 1 passed"),
    "agent-fails-stubborn-task-async": (
        "awaited on the virtual clock's loop, receive() raises and the agent's task swallows "
        "CancelledError", failing_call_stubborn_task_async,
        r"^ASR socket closed \| in session call-1, .* \| 1 agent task\(s\) still ran after the "
        r"calls ended and ignored their cancellation for 200 ms: abandoned .*Breaks.forever\(\) "
        r"at .*test_bad_calls.py:\d+"),
    "agent-task-leaked-async": (
        "awaited on the virtual clock's loop, the agent leaves a task that stops when cancelled; "
        "the user has a task of their own", leaked_task_async_virtual,
        r"^user task alive=True agent task cancelled=True \| 1 task\(s\) still ran after the "
        r"calls ended .*an agent leaks tasks"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_call(case, request):
    _, run, expected = CASES[case]
    if "pytester" in run.__code__.co_varnames[:run.__code__.co_argcount]:
        text = run(request.getfixturevalue("pytester"))
    else:
        text = run()
    assert re.search(expected, text), text


def test_the_doc_lists_every_case():
    section = DOC.read_text().split("## Call and agent cases", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.M))
    assert listed == set(CASES)
