"""What the simulated caller does on a call: a list of small, frozen steps.

A call script reads like the conversation it stages::

    from pytest_voicelatency.call.script import answer, barge_in, pause, say

    script = [
        say("confirm_order"), answer(),              # turn 1: speak, wait for the whole reply
        say("late_pizza"),                           # turn 2 ...
        barge_in("wait_stop", after_ms=400),         # turn 3: talk over the reply 400 ms in
        answer(),                                    # ... and wait for the answer to that
        pause(500),
    ]

Each :func:`say` or :func:`barge_in` is one user turn (ids ``"1"``, ``"2"``, … in order). An
:func:`answer` measures ``caller.response`` for the latest turn; a :func:`barge_in` measures
``caller.barge_in``. Clips are bundled names (see
:func:`~pytest_voicelatency.audio.clips.list_clips`) or
:class:`~pytest_voicelatency.audio.clips.Clip` objects with ground truth
(``onset_ms``/``offset_ms``).

>>> [describe(s) for s in check_script([say("hello"), answer(timeout_ms=3000)])]
["say('hello')", 'answer(timeout_ms=3000, until=done)']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pytest_voicelatency.audio.clips import Clip, load_clip
from pytest_voicelatency.errors import VoiceLatencyUsageError

__all__ = ["Say", "Answer", "BargeIn", "Pause", "Background", "Step", "say", "answer",
           "barge_in", "pause", "background", "check_script", "describe", "resolve_clip"]


@dataclass(frozen=True, slots=True)
class Say:
    """Speak ``clip`` (a new user turn); the step ends when its last frame is sent."""

    clip: Clip | str


@dataclass(frozen=True, slots=True)
class Answer:
    """Wait for the agent to answer the latest turn: audible within ``timeout_ms`` of the end
    of the user's speech, else a *missed* sample and the script goes on (with ``required=True``,
    or ``Caller(unanswered="raise")`` when ``required`` is left ``None``, the call stops with
    :class:`~pytest_voicelatency.call.protocol.AgentTimeoutError` naming the turn, the missed
    sample still recorded). ``until="done"`` also waits for the reply to end (quiet for the
    hold, at most ``max_reply_ms``; a reply still playing then is noted and the script goes on
    over it); ``"audible"`` returns at once."""

    timeout_ms: float = 5000.0
    until: Literal["audible", "done"] = "done"
    max_reply_ms: float = 30_000.0
    required: bool | None = None


@dataclass(frozen=True, slots=True)
class BargeIn:
    """Talk over the agent: the clip's speech onset lands ``after_ms`` after the agent's reply
    became audible (or after it emitted :class:`~pytest_voicelatency.call.protocol.AgentState`
    ``at_state``). The agent must go quiet within ``stop_timeout_ms``, else the sample is
    *missed*. ``timeout_ms`` bounds the wait for the reply (or state) to start."""

    clip: Clip | str
    after_ms: float = 300.0
    at_state: str | None = None
    stop_timeout_ms: float = 2000.0
    timeout_ms: float = 5000.0


@dataclass(frozen=True, slots=True)
class Pause:
    """Send silence (or the background) for ``ms``."""

    ms: float


@dataclass(frozen=True, slots=True)
class Background:
    """Loop ``clip`` under everything sent from now on, at ``gain_db``; ``None`` stops it."""

    clip: Clip | str | None
    gain_db: float = -20.0


Step = Say | Answer | BargeIn | Pause | Background


def say(clip: Clip | str) -> Say:
    """:class:`Say` ``clip``: ``say("confirm_order")``."""
    return Say(clip)


def answer(timeout_ms: float = 5000.0, *, until: Literal["audible", "done"] = "done",
           max_reply_ms: float = 30_000.0, required: bool | None = None) -> Answer:
    """:class:`Answer`: wait for (and measure) the agent's reply to the latest turn."""
    return Answer(timeout_ms, until, max_reply_ms, required)


def barge_in(clip: Clip | str, after_ms: float = 300.0, *, at_state: str | None = None,
             stop_timeout_ms: float = 2000.0, timeout_ms: float = 5000.0) -> BargeIn:
    """:class:`BargeIn`: ``barge_in("wait_stop", after_ms=400)``."""
    return BargeIn(clip, after_ms, at_state, stop_timeout_ms, timeout_ms)


def pause(ms: float) -> Pause:
    """:class:`Pause` for ``ms`` milliseconds."""
    return Pause(ms)


def background(clip: Clip | str | None, gain_db: float = -20.0) -> Background:
    """:class:`Background` noise from now on: ``background("babble", gain_db=-25)``."""
    return Background(clip, gain_db)


def _clip_name(clip: object) -> str:
    return clip if isinstance(clip, str) else getattr(clip, "name", type(clip).__name__)


def describe(step: Step) -> str:
    """A short, readable form of a step for messages."""
    if isinstance(step, Say):
        return f"say({_clip_name(step.clip)!r})"
    if isinstance(step, Answer):
        return f"answer(timeout_ms={step.timeout_ms:g}, until={step.until})"
    if isinstance(step, BargeIn):
        when = f"at_state={step.at_state!r}, " if step.at_state else ""
        return f"barge_in({_clip_name(step.clip)!r}, {when}after_ms={step.after_ms:g})"
    if isinstance(step, Pause):
        return f"pause({step.ms:g})"
    return f"background({None if step.clip is None else _clip_name(step.clip)!r})"


def _number(where: str, name: str, value: object, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0):
        need = "> 0" if positive else ">= 0"
        raise VoiceLatencyUsageError(f"{where}: {name} must be a finite number of ms {need}, "
                                     f"got {value!r}")


def check_script(steps: Sequence[Step]) -> tuple[Step, ...]:
    """Validate a script; errors name the step (``script step 3 (barge_in(...))``) and the fix."""
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence) or not steps:
        raise VoiceLatencyUsageError(
            f"a call script must be a non-empty list of steps such as [say('hello'), answer()], "
            f"got {steps!r:.80}")
    turns = 0
    for i, step in enumerate(steps, 1):
        if not isinstance(step, (Say, Answer, BargeIn, Pause, Background)):
            raise VoiceLatencyUsageError(
                f"script step {i} is {step!r:.60}, not a step; build steps with say(), answer(), "
                f"barge_in(), pause() and background() from pytest_voicelatency.call.script")
        where = f"script step {i} ({describe(step)})"
        if isinstance(step, Answer):
            if not turns:
                raise VoiceLatencyUsageError(
                    f"{where}: nothing to answer yet; put a say(...) first")
            _number(where, "timeout_ms", step.timeout_ms, positive=True)
            _number(where, "max_reply_ms", step.max_reply_ms, positive=True)
            if step.until not in ("audible", "done"):
                raise VoiceLatencyUsageError(f"{where}: until must be 'audible' or 'done'")
            if step.required not in (None, True, False):
                raise VoiceLatencyUsageError(
                    f"{where}: required must be True, False or None (the Caller's unanswered "
                    f"setting), got {step.required!r}")
        elif isinstance(step, BargeIn):
            if not turns:
                raise VoiceLatencyUsageError(
                    f"{where}: there is no agent reply to talk over yet; put a say(...) first")
            for name in ("after_ms", "stop_timeout_ms", "timeout_ms"):
                _number(where, name, getattr(step, name), positive=name != "after_ms")
            turns += 1
        elif isinstance(step, Say):
            turns += 1
        elif isinstance(step, Pause):
            _number(where, "ms", step.ms)
    return tuple(steps)


@lru_cache(maxsize=64)
def _bundled(name: str, sample_rate: int) -> Clip:
    """Bundled clips are immutable (read-only samples): load each once, not once per call."""
    return load_clip(name, sample_rate=sample_rate)


def resolve_clip(clip: Clip | str, sample_rate: int, where: str) -> Clip:
    """A bundled name becomes its :class:`~pytest_voicelatency.audio.clips.Clip` at
    ``sample_rate``."""
    if isinstance(clip, str):
        if "/" in clip or "." in clip or "\\" in clip:
            return load_clip(clip, sample_rate=sample_rate)  # a file: read it as it is now
        return _bundled(clip, sample_rate)
    if not isinstance(clip, Clip):
        raise VoiceLatencyUsageError(
            f"{where}: a clip must be a bundled clip name or an audio.Clip, got {clip!r:.60}")
    if clip.sample_rate != sample_rate:
        raise VoiceLatencyUsageError(
            f"{where}: clip {clip.name!r} is {clip.sample_rate} Hz but the line is "
            f"{sample_rate} Hz; load it with load_clip(..., sample_rate={sample_rate}) or "
            f"audio.resample() it")
    return clip
