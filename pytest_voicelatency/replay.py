"""Replay files: one call — script, agent, clock, line — saved as small JSON and re-run exactly.

Why: a property that fails on virtual time shrinks to a minimal call; saved as a replay, that
call re-runs on any machine with the same samples, to the nanosecond (virtual time has no
machine in it), as a plain test or with ``pytest --voice-latency-replay FILE``.

The format (``"format": "pytest-voicelatency/replay"``, ``"version": 1``)::

    {"format": "pytest-voicelatency/replay", "version": 1,
     "title": "the failure's first line",
     "agent": {"factory": "pipecat_agents:racy_agent", "knobs": {"gap_ms": 40}},
     "clock": {"kind": "virtual", "wall_clock": "virtual", "block_limit_ms": 200.0,
               "idle_limit_s": 5.0},
     "playout": {"buffer_ms": 40.0, "delay_ms": 0.0, "jitter_ms": 0.0, "seed": 0, ...},
     "seeds": {"hypothesis": "...", "playout": 0},
     "script": [{"step": "say", "clip": "hello"},
                {"step": "barge_in", "clip": "wait_stop", "after_ms": 120.0, ...},
                {"step": "answer", "until": "audible", ...}],
     "samples": {"caller.response": [812.5], "caller.barge_in": [60.0]},
     "timeline": ["   1436.932 ms  agent sends audio ...", ...]}

``agent.factory`` is ``module:function`` importable where the replay runs (the test directory
is on ``sys.path`` under pytest); ``factory(**knobs)`` returns the agent (or a zero-argument
agent factory). Clips are named (bundled or fixture clips); a perturbed ``Clip`` object cannot
be saved. ``samples`` are what the call measured when saved: :func:`replay` can check them.

>>> from pytest_voicelatency.call.script import answer, say
>>> steps = script_from_json(script_to_json([say("hello"), answer(until="audible")]))
>>> steps[0], steps[1].until
(Say(clip='hello'), 'audible')
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_voicelatency.call.caller import Caller, CallResult
from pytest_voicelatency.call.metrics import timeline
from pytest_voicelatency.call.playout import PlayoutConfig
from pytest_voicelatency.call.script import Answer, BargeIn, Pause, Say, Step
from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.files import write_atomic
from pytest_voicelatency.spans.capture import Capture, capture_spans
from pytest_voicelatency.vclock import VirtualClock

__all__ = ["FORMAT", "save_replay", "load_replay", "replay", "run_replay", "samples_of",
           "script_to_json", "script_from_json", "ReplayMismatch"]

FORMAT = "pytest-voicelatency/replay"
_STEPS: dict[str, type[Any]] = {"say": Say, "answer": Answer, "barge_in": BargeIn,
                                "pause": Pause}
_NAMES = {cls: name for name, cls in _STEPS.items()}


class ReplayMismatch(AssertionError):
    """A replay measured other samples than the ones saved with it."""


def script_to_json(script: Sequence[Step]) -> list[dict[str, Any]]:
    """The script as JSON objects: ``{"step": "barge_in", "clip": "wait_stop", ...}``."""
    out: list[dict[str, Any]] = []
    for step in script:
        name = _NAMES.get(type(step))
        if name is None:
            raise ValueError(f"a replay cannot save a {type(step).__name__} step "
                             f"(only {', '.join(_STEPS)})")
        fields = {f.name: getattr(step, f.name) for f in dataclasses.fields(step)}
        if not isinstance(fields.get("clip", ""), str):
            raise ValueError(f"a replay saves clips by name; {step!r} holds a Clip object")
        out.append({"step": name, **fields})
    return out


def script_from_json(steps: Sequence[Mapping[str, Any]]) -> list[Step]:
    """The steps back from :func:`script_to_json`; a step it cannot read is a
    :class:`~pytest_voicelatency.errors.VoiceLatencyUsageError` naming its position."""
    script: list[Step] = []
    for number, raw in enumerate(steps, 1):
        fields = dict(raw) if isinstance(raw, Mapping) else {}
        kind = _STEPS.get(fields.pop("step", None))
        if kind is None:
            raise VoiceLatencyUsageError(
                f"script step {number} ({raw!r}) is not one of {', '.join(_STEPS)} "
                f"(a {{'step': name, ...}} object)")
        try:
            script.append(kind(**fields))
        except (TypeError, ValueError) as error:
            raise VoiceLatencyUsageError(f"script step {number} ({raw!r}): {error}") from None
    return script


def samples_of(result: CallResult) -> dict[str, list[float]]:
    """The call's caller-side samples by stage: what a replay compares, exactly."""
    m = result.metrics
    out = {"caller.response": [x.value_ms for x in m.responses],
           "caller.barge_in": [x.value_ms for x in m.barge_ins]}
    return {stage: values for stage, values in out.items() if values}


def save_replay(path: str | Path, *, script: Sequence[Step], factory: str,
                knobs: Mapping[str, Any] | None = None, clock: VirtualClock | None = None,
                playout: PlayoutConfig | None = None, result: CallResult | None = None,
                title: str = "", seeds: Mapping[str, Any] | None = None,
                timeline_rows: Sequence[str] | None = None) -> Path:
    """Write one call as a replay file (see the module doc); returns the path.

    ``factory`` is ``"module:function"``; ``result`` (the call as it ran) adds its samples and
    timeline. ``clock`` defaults to ``VirtualClock(wall_clock="virtual")``. ``timeline_rows``
    replaces the saved timeline, e.g. the call's rows merged with a scripted backend's (it is
    for reading; a replay compares the samples)."""
    clock = clock or VirtualClock(wall_clock="virtual")
    line = playout or PlayoutConfig()
    data: dict[str, Any] = {
        "format": FORMAT, "version": 1, "title": title,
        "agent": {"factory": factory, "knobs": dict(knobs or {})},
        "clock": {"kind": "virtual", "wall_clock": clock.wall_clock,
                  "block_limit_ms": clock.block_limit_ms, "idle_limit_s": clock.idle_limit_s},
        "playout": dataclasses.asdict(line),
        "seeds": {"playout": line.seed, **dict(seeds or {})},
        "script": script_to_json(script),
    }
    if result is not None:
        data["samples"] = samples_of(result)
        data["timeline"] = timeline(result.log, rows=40).splitlines()
    if timeline_rows is not None:
        data["timeline"] = list(timeline_rows)
    return write_atomic(path, json.dumps(data, indent=1) + "\n")


def load_replay(path: str | Path) -> dict[str, Any]:
    """The replay file's JSON, checked for its format, its version and the parts a replay
    needs; anything else is a :class:`~pytest_voicelatency.errors.VoiceLatencyUsageError`
    naming the file and what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise VoiceLatencyUsageError(f"replay file {path}: cannot be read ({reason})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise VoiceLatencyUsageError(
            f"replay file {path} is not valid JSON ({error}): truncated or edited by hand? "
            f"Save it again with save_replay() or restore it from where it was saved") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != 1:
        raise VoiceLatencyUsageError(
            f"{path} is not a pytest-voicelatency replay file (format {FORMAT!r}, version 1)")
    agent, clock = data.get("agent"), data.get("clock", {})
    for problem in (
            "" if isinstance(agent, dict) and isinstance(agent.get("factory"), str)
            else "no 'agent.factory' ('module:function' that makes the agent)",
            "" if isinstance(agent, dict) and isinstance(agent.get("knobs", {}), dict)
            else "'agent.knobs' is not an object",
            "" if isinstance(data.get("script"), list) else "no 'script' (a list of steps)",
            "" if isinstance(clock, dict) and clock.get("kind", "virtual") == "virtual"
            else "'clock' is not a virtual clock ({'kind': 'virtual', ...})",
            "" if isinstance(data.get("playout", {}), dict) else "'playout' is not an object"):
        if problem:
            raise VoiceLatencyUsageError(f"replay file {path}: {problem}; save it again with "
                                         f"save_replay()")
    try:
        script_from_json(data["script"])
        _clock(clock)
        PlayoutConfig(**data.get("playout", {}))
    except VoiceLatencyUsageError as error:
        raise VoiceLatencyUsageError(f"replay file {path}: {error}") from None
    except (TypeError, ValueError) as error:  # the line's settings
        raise VoiceLatencyUsageError(f"replay file {path}: 'playout': {error}") from None
    return data


def _clock(saved: Mapping[str, Any]) -> VirtualClock:
    """A fresh virtual clock as saved; a setting it cannot take is a usage error naming it."""
    try:
        return VirtualClock(wall_clock=saved.get("wall_clock", "virtual"),
                            block_limit_ms=saved.get("block_limit_ms", 200.0),
                            idle_limit_s=saved.get("idle_limit_s", 5.0))
    except ValueError as error:
        raise VoiceLatencyUsageError(f"'clock': {error}") from None


def _factory(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise VoiceLatencyUsageError(
            f"a replay's agent.factory is 'module:function', got {spec!r}")
    try:
        found: Callable[..., Any] = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as error:
        raise VoiceLatencyUsageError(
            f"the replay's agent.factory {spec!r}: no module named {error.name!r} here. Run "
            f"the replay where that module imports (pytest puts the test's directory on "
            f"sys.path; elsewhere set PYTHONPATH), or fix the name") from None
    except AttributeError:
        raise VoiceLatencyUsageError(
            f"the replay's agent.factory {spec!r}: module {module!r} has no {name!r}") from None
    return found


def run_replay(path: str | Path, *, check: bool = True) -> tuple[CallResult, Capture]:
    """Re-run the replay's call on a fresh clock as saved; the result and the spans it emitted.

    With ``check`` (and samples saved), samples that differ raise :class:`ReplayMismatch`
    showing both and the new timeline."""
    data = load_replay(path)
    factory, knobs = _factory(data["agent"]["factory"]), data["agent"].get("knobs", {})
    try:
        agent = factory(**knobs)
    except TypeError as error:  # knobs the factory does not take (or a bug inside it: shown)
        raise VoiceLatencyUsageError(
            f"replay file {path}: agent.factory {data['agent']['factory']!r} with "
            f"agent.knobs {knobs!r}: {error}") from error
    caller = Caller(clock=_clock(data.get("clock", {})),
                    playout=PlayoutConfig(**data.get("playout", {})))
    with capture_spans() as capture:
        result = caller.run(agent, script_from_json(data["script"]))
    saved = data.get("samples")
    if check and saved is not None and samples_of(result) != saved:
        raise ReplayMismatch(
            f"replay {path} measured {samples_of(result)}, saved {saved}:\n"
            f"{timeline(result.log, rows=40)}")
    return result, capture


def replay(path: str | Path, *, check: bool = True) -> CallResult:
    """:func:`run_replay` without the spans: the call's result."""
    return run_replay(path, check=check)[0]
