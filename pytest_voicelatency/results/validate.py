"""Check a parsed results/baseline JSON document and build the run it describes.

A baseline lives in git and is read by later versions of the plugin, by hand-edited CI scripts
and after merges, so nothing in it is trusted: every problem raises a
:class:`~pytest_voicelatency.errors.VoiceLatencyError` naming the file, the JSON path
(``distributions[3].values[17]``) and what to do.

>>> document({"format": "something else"}, "x.json")
Traceback (most recent call last):
...
pytest_voicelatency.errors.VoiceLatencyError: 'x.json' is not a pytest-voicelatency results file (its "format" is 'something else'); write one with pytest --voice-latency-save or --voice-latency-json
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pytest_voicelatency.results.model import FORMAT, FORMAT_VERSION, Distribution, RunResult
from pytest_voicelatency.errors import VoiceLatencyError

__all__ = ["document"]


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
              for k in ("nothing", "missed", "censored", "unreliable")}
    return Distribution(stage, metric, np.sort(out), **counts)


def document(doc: Any, source: str) -> RunResult:
    """Validate ``doc`` (parsed JSON from ``source``) and return its :class:`RunResult`."""
    c = _Checker(source)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise VoiceLatencyError(
            f"{source!r} is not a pytest-voicelatency results file (its \"format\" is "
            f"{found!r}); write one with pytest --voice-latency-save or --voice-latency-json")
    version = c.of(doc.get("version"), int, "version", "a format version number")
    plugin = c.of(doc.get("plugin_version", ""), str, "plugin_version", "a version string")
    if version > FORMAT_VERSION:
        raise VoiceLatencyError(
            f"{source!r} has format version {version} (written by pytest-voicelatency {plugin}); "
            f"this plugin reads versions up to {FORMAT_VERSION}: upgrade pytest-voicelatency, or "
            "re-save the baseline with the version you run")
    if version < 1:
        raise c.fail("version", f"{version} is not a format version")
    raw = c.of(doc.get("distributions"), list, "distributions", "a list of distributions")
    dists: dict[tuple[str, str], Distribution] = {}
    for i, item in enumerate(raw):
        d = _distribution(c, item, f"distributions[{i}]")
        if (d.stage, d.metric) in dists:
            raise c.fail(f"distributions[{i}]", f"{d.stage} {d.metric} appears twice")
        dists[(d.stage, d.metric)] = d
    gates = c.of(doc.get("gates", []), list, "gates", "a list")
    for i, g in enumerate(gates):
        c.of(g, dict, f"gates[{i}]", "an object")
        for key in ("stage", "metric"):
            c.of(g.get(key), str, f"gates[{i}].{key}", "a string")
    problems = c.of(doc.get("problems", {}), dict, "problems", "an object")
    samples = doc.get("samples")
    if samples is not None:
        c.of(samples, list, "samples", "a list")
    comparison = doc.get("comparison")
    if comparison is not None:
        c.of(comparison, dict, "comparison", "an object or null")
    return RunResult(
        dists, c.of(doc.get("environment", {}), dict, "environment", "an object"), plugin,
        version, str(doc.get("created", "")), c.count(doc.get("spans", 0), "spans"),
        c.count(doc.get("tests", 0), "tests"),
        c.of(doc.get("settings", {}), dict, "settings", "an object"), gates, comparison,
        [str(p) for p in c.of(problems.get("first", []), list, "problems.first", "a list")],
        c.count(problems.get("count", 0), "problems.count"), samples, source)
