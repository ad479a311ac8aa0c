"""Read a results or baseline file back into :class:`~pytest_voicelatency.results.model.Results`,
trusting nothing in it.

A baseline lives in git and is read by later versions of the plugin, by hand-edited CI scripts
and after merges, so every problem raises a
:class:`~pytest_voicelatency.errors.VoiceLatencyError` naming the file, the JSON path
(``distributions[3].values[17]``) and what to do. What comes back is what verdicts are computed
from: the distributions, the environment, the settings and the sample listing. The recorded
``gates`` and ``comparison`` are checked for shape but not kept: they are re-judged from those
(``python -m pytest_voicelatency compare|merge``), the way a live run judges them.

The JSON itself is parsed with limits, so an odd file is a message, never a traceback or an
hour of work: at most :data:`MAX_BYTES` bytes, :data:`MAX_DEPTH` levels of nesting (the format
needs five), numbers of at most :data:`MAX_NUMBER_CHARS` characters (no 400-digit integers), and
no ``NaN``/``Infinity``.

>>> document({"format": "something else"}, "x.json")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pytest_voicelatency.errors.VoiceLatencyError: 'x.json' is not a pytest-voicelatency results file ...
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from pytest_voicelatency.errors import VoiceLatencyError
from pytest_voicelatency.results.codec import FORMAT, FORMAT_VERSION
from pytest_voicelatency.results.model import Results
from pytest_voicelatency.spans.record import SampleFlag
from pytest_voicelatency.spans.samples import Sample
from pytest_voicelatency.stats.distribution import Distribution, Distributions

__all__ = ["document", "loads", "load", "parse_json", "MAX_BYTES", "MAX_DEPTH",
           "MAX_NUMBER_CHARS"]

MAX_BYTES = 256 * 1024 * 1024
MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40

_FLAGS = {name: int(flag) for flag in SampleFlag for name in SampleFlag.names(flag)}


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> VoiceLatencyError:
        return VoiceLatencyError(
            f"{self.source!r} is corrupt at {where}: {problem}; re-create the file with "
            "--voice-latency-save (do not edit it by hand)")

    def of(self, value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise self.fail(where, f"expected {what}, found {type(value).__name__}")
        return value

    def count(self, value: Any, where: str) -> int:
        self.of(value, int, where, "a whole number")
        if value < 0:
            raise self.fail(where, f"a count cannot be negative ({value})")
        return int(value)


def _distribution(c: _Checker, raw: Any, where: str) -> Distribution:
    c.of(raw, dict, where, "an object")
    stage = c.of(raw.get("stage"), str, f"{where}.stage", "a stage name")
    metric = c.of(raw.get("metric"), str, f"{where}.metric", "a metric name")
    if not stage or not metric:
        raise c.fail(where, "stage and metric must not be empty")
    values = c.of(raw.get("values"), list, f"{where}.values", "a list of milliseconds")
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None:
            out[i] = math.inf
            continue
        c.of(v, (int, float), f"{where}.values[{i}]", "a number of milliseconds or null")
        if not math.isfinite(v) or v < 0:
            raise c.fail(f"{where}.values[{i}]", f"{v!r} is not a non-negative number of ms")
        out[i] = v
    if "n" in raw and c.count(raw["n"], f"{where}.n") != out.size:
        raise c.fail(f"{where}.n", f"says {raw['n']} but values holds {out.size}")
    counts = {k: c.count(raw.get(k, 0), f"{where}.{k}")
              for k in ("nothing", "missed", "censored", "unreliable", "invalid")}
    return Distribution(stage, metric, np.sort(out), **counts)


def _sample(c: _Checker, raw: Any, where: str) -> Sample:
    c.of(raw, dict, where, "an object")
    text = {key: c.of(raw.get(key), str, f"{where}.{key}", "a string")
            for key in ("stage", "metric", "test", "session", "turn")}
    value = c.of(raw.get("value"), (int, float), f"{where}.value", "a number of milliseconds")
    if not math.isfinite(value):
        raise c.fail(f"{where}.value", f"{value!r} is not a number of milliseconds")
    trace = raw.get("trace")
    trace = "" if trace is None else c.of(trace, str, f"{where}.trace", "a trace id or null")
    flags = 0
    for i, name in enumerate(c.of(raw.get("flags", []), list, f"{where}.flags", "a list")):
        if name not in _FLAGS:
            raise c.fail(f"{where}.flags[{i}]", f"{name!r} is not one of {', '.join(_FLAGS)}")
        flags |= _FLAGS[name]
    instants = [c.count(raw.get(key, 0), f"{where}.{key}") for key in ("start_ns", "end_ns")]
    return Sample(text["stage"], text["metric"], float(value), text["session"], text["turn"],
                  trace, text["test"], flags, *instants)


def _version(c: _Checker, doc: dict[str, Any], source: str) -> str:
    """The plugin version that wrote ``doc``, once its format version is known to be readable."""
    version = c.of(doc.get("version"), int, "version", "a format version number")
    plugin = c.of(doc.get("plugin_version", ""), str, "plugin_version", "a version string")
    if version > FORMAT_VERSION:
        raise VoiceLatencyError(
            f"{source!r} has format version {version} (written by pytest-voicelatency {plugin}); "
            f"this plugin reads versions up to {FORMAT_VERSION}: upgrade pytest-voicelatency, or "
            "re-save the baseline with the version you run")
    if version < 1:
        raise c.fail("version", f"{version} is not a format version")
    return str(plugin)


def document(doc: Any, source: str) -> Results:
    """Validate ``doc`` (parsed JSON from ``source``) and return the results it holds."""
    c = _Checker(source)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise VoiceLatencyError(
            f"{source!r} is not a pytest-voicelatency results file (its \"format\" is "
            f"{found!r}); write one with pytest --voice-latency-save or --voice-latency-json")
    plugin = _version(c, doc, source)
    raw = c.of(doc.get("distributions"), list, "distributions", "a list of distributions")
    dists: dict[tuple[str, str], Distribution] = {}
    for i, item in enumerate(raw):
        d = _distribution(c, item, f"distributions[{i}]")
        if d.key in dists:
            raise c.fail(f"distributions[{i}]", f"{d.stage} {d.metric} appears twice")
        dists[d.key] = d
    for i, g in enumerate(c.of(doc.get("gates", []), list, "gates", "a list")):
        c.of(g, dict, f"gates[{i}]", "an object")
        for key in ("line", "stage", "metric", "outcome"):
            if key not in g:
                raise c.fail(f"gates[{i}]", f"the gate record has no {key!r}")
            c.of(g.get(key), str, f"gates[{i}].{key}", "a string")
    if doc.get("comparison") is not None:
        c.of(doc["comparison"], dict, "comparison", "an object or null")
    problems = c.of(doc.get("problems", {}), dict, "problems", "an object")
    samples = doc.get("samples")
    partial: tuple[str, ...] = ()
    if doc.get("partial") is not None:
        marker = c.of(doc["partial"], dict, "partial", "an object or null")
        reasons = c.of(marker.get("reasons"), list, "partial.reasons", "a list of reasons")
        partial = tuple(c.of(r, str, f"partial.reasons[{i}]", "a string")
                        for i, r in enumerate(reasons)) or ("marked partial",)
    test_ids: tuple[str, ...] | None = None
    if doc.get("test_ids") is not None:
        ids = c.of(doc["test_ids"], list, "test_ids", "a list of test node ids or null")
        test_ids = tuple(sorted(c.of(t, str, f"test_ids[{i}]", "a test node id")
                                for i, t in enumerate(ids)))
    return Results(
        Distributions(dists), tests=c.count(doc.get("tests", 0), "tests"), test_ids=test_ids,
        spans=c.count(doc.get("spans", 0), "spans"),
        samples=None if samples is None else tuple(
            _sample(c, s, f"samples[{i}]")
            for i, s in enumerate(c.of(samples, list, "samples", "a list"))),
        environment=c.of(doc.get("environment", {}), dict, "environment", "an object"),
        plugin_version=plugin, created=str(doc.get("created", "")), source=source,
        settings=c.of(doc.get("settings", {}), dict, "settings", "an object"),
        problems=tuple(str(p) for p in c.of(problems.get("first", []), list, "problems.first",
                                             "a list")),
        problem_count=c.count(problems.get("count", 0), "problems.count"), partial=partial,
        clock=str(c.of(doc.get("clock") or "", str, "clock", "a string or null")))


def _number(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        if len(text) > MAX_NUMBER_CHARS:
            raise _TooBig(f"a number of {len(text)} characters ({text[:12]}...)")
        return kind(text)
    return parse


class _TooBig(ValueError):
    pass


def _constant(name: str) -> Any:
    raise _TooBig(f"{name} is not a number of milliseconds")


def _depth(doc: Any) -> int:
    """The nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return deepest


def parse_json(text: str, source: str) -> Any:
    """``text`` parsed as JSON within the limits (see the module docstring); every refusal is a
    :class:`VoiceLatencyError` naming ``source``."""
    redo = "re-create it with --voice-latency-save"
    if len(text) > MAX_BYTES:
        raise VoiceLatencyError(f"{source!r} is too large ({len(text)} characters, the limit is "
                                f"{MAX_BYTES}): it is not a results file; {redo}")
    try:
        doc = json.loads(text, parse_int=_number(int), parse_float=_number(float),
                         parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise VoiceLatencyError(
            f"{source!r} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            f"it may be truncated or hand-edited; {redo}") from None
    except _TooBig as exc:
        raise VoiceLatencyError(f"{source!r} holds {exc}: not a results file value; "
                                f"{redo}") from None
    except RecursionError:
        raise VoiceLatencyError(f"{source!r} is nested too deeply to be a results file (the "
                                f"format needs 5 levels, the limit is {MAX_DEPTH}); "
                                f"{redo}") from None
    except (ValueError, OverflowError, MemoryError) as exc:
        raise VoiceLatencyError(f"{source!r} cannot be read as JSON ({type(exc).__name__}: "
                                f"{str(exc)[:200]}); {redo}") from None
    if _depth(doc) > MAX_DEPTH:
        raise VoiceLatencyError(f"{source!r} is nested more than {MAX_DEPTH} levels deep: not a "
                                f"results file (the format needs 5); {redo}")
    return doc


def loads(text: str, source: str = "<string>") -> Results:
    """Parse (with limits) and validate the JSON text of a results or baseline file."""
    return document(parse_json(text, source), source)


def load(path: str | os.PathLike[str]) -> Results:
    """Read and validate a results or baseline file; every problem names the file and the fix."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise VoiceLatencyError(f"{str(p)!r} is too large ({size} bytes, the limit is "
                                    f"{MAX_BYTES}): it is not a results file")
        if not p.is_file():
            raise VoiceLatencyError(f"{str(p)!r} is not a regular file (a directory, FIFO or "
                                    "device): give the path of a results file")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VoiceLatencyError(
            f"{str(p)!r} does not exist: create it with `pytest --voice-latency "
            f"--voice-latency-save {p}` (on the default branch, see docs/ci.md)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise VoiceLatencyError(f"cannot read {str(p)!r}: {reason}; check the path and its "
                                "permissions") from None
    return loads(text, source=str(p))
