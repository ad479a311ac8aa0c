"""A run's results as a small, versioned JSON document: build, save, load, validate, merge.

One format serves three uses: ``--voice-latency-json`` (everything, including every sample with
its test, session, turn and trace id), ``--voice-latency-save`` (a baseline meant to live in
git: the same document without the per-sample listing) and the shards that
``python -m pytest_voicelatency merge`` joins. Every (stage, metric) keeps its sorted values
(rounded to the microsecond; missed and censored samples as ``null``, which reads back as +inf),
so quantiles, comparisons and merges are exact and the file stays small (about 8 bytes a sample).

Top-level keys: ``format`` (``"pytest-voicelatency/results"``), ``version`` (:data:`FORMAT_VERSION`;
a newer file is refused with a message), ``plugin_version``, ``created``, ``environment`` (see
:func:`fingerprint`), ``spans``, ``tests``, ``settings`` (gate lines and policies),
``distributions``, ``gates``, ``comparison``, ``problems``, ``samples`` (``--voice-latency-json`` only).

>>> import numpy as np
>>> run = RunResult({("asr", "first_byte_ms"): Distribution("asr", "first_byte_ms", np.arange(1.0, 101.0))})
>>> loads(dumps(run)).select("asr", "first_byte_ms").quantile(0.95)
95.0
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from pytest_voicelatency.errors import VoiceLatencyError
from pytest_voicelatency.spans.otel import SampleFlag
from pytest_voicelatency.spans.samples import SampleSet, default_metric
from pytest_voicelatency.stats.quantiles import rank
from pytest_voicelatency.stats.summary import StageRow, order_key

__all__ = ["Distribution", "RunResult", "FORMAT", "FORMAT_VERSION", "from_samples", "dumps",
           "loads", "load", "save", "fingerprint", "environment_differences", "merge", "overlap"]

FORMAT = "pytest-voicelatency/results"
FORMAT_VERSION = 1
#: Environment keys whose difference makes a comparison suspect (git commit is expected to differ).
COMPARED_ENVIRONMENT = ("python", "implementation", "system", "machine", "cpu_count")


@dataclass(frozen=True)
class Distribution:
    """All values of one stage and metric in a run: sorted, missed and censored as +inf.

    It answers the same questions as a :class:`~pytest_voicelatency.spans.samples.Selection` (n,
    values, counts), so gates can be judged on a loaded or merged file too.
    """

    stage: str
    metric: str
    values: np.ndarray
    nothing: int = 0
    missed: int = 0
    censored: int = 0
    unreliable: int = 0

    @property
    def n(self) -> int:
        return int(self.values.size)

    def quantile(self, q: float) -> float:
        """Nearest-rank q-quantile (NaN when empty)."""
        return float(self.values[rank(self.n, q) - 1]) if self.n else math.nan

    def worst(self, k: int = 3) -> list[Any]:
        """No sample identities are kept per distribution (see ``samples`` for those)."""
        return []

    def row(self) -> StageRow:
        top = float(self.values[-1]) if self.n else math.nan
        return StageRow(self.stage, self.metric, self.n, self.nothing, self.quantile(0.5),
                        self.quantile(0.95), self.quantile(0.99), top, self.missed,
                        self.censored, self.unreliable)


@dataclass
class RunResult:
    """Everything a run leaves behind for CI (see the module docstring for the JSON layout)."""

    distributions: dict[tuple[str, str], Distribution]
    environment: dict[str, Any] = field(default_factory=dict)
    plugin_version: str = ""
    version: int = FORMAT_VERSION
    created: str = ""
    spans: int = 0
    tests: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    samples: list[dict[str, Any]] | None = None
    source: str = ""  # the file it was read from, for messages (not written)

    def metrics_by_stage(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for stage, metric in sorted(self.distributions):
            out.setdefault(stage, []).append(metric)
        return out

    def select(self, stage: str, metric: str | None = None) -> Distribution:
        """The distribution of ``stage``/``metric`` (default metric when None; empty if absent)."""
        if metric is None:
            metric = default_metric(stage, set(self.metrics_by_stage().get(stage, ())))
        found = self.distributions.get((stage, metric))
        return found if found is not None else Distribution(stage, metric, np.empty(0))

    def default_keys(self) -> list[tuple[str, str]]:
        """(stage, default metric) of every stage that has any sample: the table's rows."""
        keys = []
        for stage, metrics in self.metrics_by_stage().items():
            d = self.select(stage, default_metric(stage, set(metrics)))
            if d.n or d.nothing:
                keys.append((stage, d.metric))
        return keys

    def gated_keys(self) -> list[tuple[str, str]]:
        return [(g["stage"], g["metric"]) for g in self.gates
                if (g["stage"], g["metric"]) in self.distributions]

    def rows(self, extra: Iterable[tuple[str, str]] = ()) -> list[StageRow]:
        """Table rows: each stage's default metric plus ``extra`` keys, in pipeline order."""
        keys = dict.fromkeys([*self.default_keys(), *extra])
        return sorted((self.select(s, m).row() for s, m in keys),
                      key=lambda r: (order_key(r.stage), r.metric))

    @property
    def name(self) -> str:
        return self.source or "this run"


def _sorted(values: np.ndarray) -> np.ndarray:
    return np.sort(np.round(np.asarray(values, dtype=np.float64), 3))


def _flag_names(flags: int) -> list[str]:
    return SampleFlag.names(flags)


def from_samples(samples: SampleSet, *, tests: int = 0, spans: int = 0,
                 environment: Mapping[str, Any] | None = None, with_samples: bool = False,
                 problems: Sequence[str] = (), problem_count: int = 0) -> RunResult:
    """The results of a run from its :class:`~pytest_voicelatency.spans.samples.SampleSet`."""
    from pytest_voicelatency._version import __version__

    dists = {}
    for stage, metrics in samples.metrics_by_stage().items():
        for metric in metrics:
            s = samples.select(stage, metric)
            dists[(stage, metric)] = Distribution(stage, metric, _sorted(s.values), s.nothing,
                                                  s.missed, s.censored, s.unreliable)
    listing = None
    if with_samples:
        listing = [{"stage": x.stage, "metric": x.metric, "value": x.value,
                    "flags": _flag_names(x.flags), "test": x.test_id, "session": x.session_id,
                    "turn": x.turn_id, "trace": x.trace_id} for x in samples]
    return RunResult(dists, dict(environment or {}), __version__, FORMAT_VERSION,
                     datetime.now(timezone.utc).isoformat(timespec="seconds"), spans, tests,
                     problems=list(problems), problem_count=problem_count, samples=listing)


def _number(x: float) -> float | None:
    return None if math.isinf(x) else (round(x, 3) if not math.isnan(x) else None)


def to_document(run: RunResult, *, with_samples: bool = True) -> dict[str, Any]:
    dists = []
    for (stage, metric), d in sorted(run.distributions.items(),
                                     key=lambda kv: (order_key(kv[0][0]), kv[0][1])):
        row = d.row()
        dists.append({"stage": stage, "metric": metric, "n": d.n, "nothing": d.nothing,
                      "missed": d.missed, "censored": d.censored, "unreliable": d.unreliable,
                      "p50": _number(row.p50), "p95": _number(row.p95), "p99": _number(row.p99),
                      "max": _number(row.max), "values": [_number(v) for v in d.values.tolist()]})
    doc: dict[str, Any] = {
        "format": FORMAT, "version": run.version, "plugin_version": run.plugin_version,
        "created": run.created, "environment": run.environment, "spans": run.spans,
        "tests": run.tests, "settings": run.settings, "distributions": dists,
        "gates": run.gates, "comparison": run.comparison,
        "problems": {"count": run.problem_count, "first": run.problems}}
    if with_samples and run.samples is not None:
        doc["samples"] = run.samples
    return doc


def dumps(run: RunResult, *, with_samples: bool = True) -> str:
    """The JSON text of ``run`` (``with_samples=False`` for a baseline).

    Indented for readable diffs, except that each distribution's values and each sample sit on
    one line: a baseline of ten stages × 300 samples stays a few tens of kilobytes.
    """
    doc = to_document(run, with_samples=with_samples)
    compact: list[str] = []

    def placeholder(value: Any) -> str:
        compact.append(json.dumps(value, separators=(",", ":"), allow_nan=False))
        return f"\x00{len(compact) - 1}\x00"
    for d in doc["distributions"]:
        d["values"] = placeholder(d["values"])
    if "samples" in doc:
        doc["samples"] = [placeholder(x) for x in doc["samples"]]
    text = json.dumps(doc, indent=1, allow_nan=False)
    text = re.sub(r'"\\u0000(\d+)\\u0000"', lambda m: compact[int(m.group(1))], text)
    return text + "\n"


def save(run: RunResult, path: str | os.PathLike[str], *, with_samples: bool = True) -> Path:
    """Write ``run`` to ``path`` atomically."""
    from pytest_voicelatency.results.files import write_atomic

    return write_atomic(path, dumps(run, with_samples=with_samples))


def load(path: str | os.PathLike[str]) -> RunResult:
    """Read and validate a results or baseline file; every problem names the file and the fix."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VoiceLatencyError(
            f"{str(p)!r} does not exist: create it with `pytest --voice-latency "
            f"--voice-latency-save {p}` (on the default branch, see docs/ci.md)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VoiceLatencyError(f"cannot read {str(p)!r}: {exc}; check the path and its "
                                "permissions") from None
    return loads(text, source=str(p))


def loads(text: str, source: str = "<string>") -> RunResult:
    """Parse and validate the JSON text of a results or baseline file."""
    from pytest_voicelatency.results.validate import document

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VoiceLatencyError(
            f"{source!r} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            "it may be truncated or hand-edited; re-create it with --voice-latency-save") from None
    return document(doc, source)


def fingerprint(root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Where the numbers were measured: Python, platform, CPU count, plugin version, git commit."""
    from pytest_voicelatency._version import __version__

    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "system": platform.system(), "machine": platform.machine(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "plugin_version": __version__, "git_commit": git_commit(root)}


def git_commit(root: str | os.PathLike[str] | None = None, timeout: float = 3.0) -> str | None:
    """The checked-out commit, or None (no git, not a repository, too slow): never fatal."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def _major_minor(version: Any) -> Any:
    return ".".join(str(version).split(".")[:2]) if version else version


def environment_differences(base: Mapping[str, Any], head: Mapping[str, Any]) -> list[str]:
    """The fingerprint keys that differ, as readable phrases (python compared as major.minor)."""
    out = []
    for key in COMPARED_ENVIRONMENT:
        a, b = base.get(key), head.get(key)
        if key == "python":
            a, b = _major_minor(a), _major_minor(b)
        if a is not None and b is not None and a != b:
            out.append(f"{key} {a} in the baseline, {b} in this run")
    return out


def _tests_of(run: RunResult) -> set[str]:
    return {str(x["test"]) for x in run.samples or () if isinstance(x, dict) and x.get("test")}


def _identity(run: RunResult) -> tuple[Any, ...]:
    """What makes a run itself, whatever file holds it and whether it lists its samples."""
    return (run.created, run.plugin_version, json.dumps(run.environment, sort_keys=True),
            run.spans, run.tests,
            sorted((key, d.values.tolist(), d.nothing, d.missed, d.censored, d.unreliable)
                   for key, d in run.distributions.items()))


def overlap(a: RunResult, b: RunResult) -> str | None:
    """Why ``a`` and ``b`` must not be merged because they share measurements, or None.

    When both list samples naming their tests, they overlap exactly when a test id is in both
    (shards must run disjoint tests). Otherwise (a baseline has no samples) they are one run
    when their created time, plugin version, environment, counts and every value are identical:
    a file given twice or copied, or the ``--voice-latency-json`` and ``--voice-latency-save``
    files of one run.
    """
    tests_a, tests_b = _tests_of(a), _tests_of(b)
    if a.samples is not None and b.samples is not None and tests_a and tests_b:
        shared = sorted(tests_a & tests_b)
        if not shared:
            return None
        more = f" (and {len(shared) - 1} more)" if len(shared) > 1 else ""
        return (f"cannot merge {b.name!r} with {a.name!r}: both hold samples of test "
                f"{shared[0]!r}{more}, so its samples would count twice; shards must run "
                "disjoint tests (check the shard selection, or drop a duplicate file)")
    if _identity(a) == _identity(b):
        return (f"cannot merge: {b.name!r} and {a.name!r} hold the same run (created "
                f"{a.created or 'at an unknown time'}, identical environment and values), so "
                "every sample would count twice; give each shard's file once")
    return None


def merge(runs: Sequence[RunResult]) -> tuple[RunResult, list[str]]:
    """Join CI shards into one run; returns the merged run and warnings.

    Refuses shards written by different plugin versions or gated by different settings (their
    numbers or verdicts would not mean the same thing), and shards that share measurements
    (see :func:`overlap`); warns when their environments or git commits differ. Gates are *not*
    carried over: re-judge them on the merged run.
    """
    if not runs:
        raise VoiceLatencyError("nothing to merge: give at least one results file")
    for i, later in enumerate(runs):
        for earlier in runs[:i]:
            why = overlap(earlier, later)
            if why:
                raise VoiceLatencyError(why)
    first = runs[0]
    for other in runs[1:]:
        if other.plugin_version != first.plugin_version:
            raise VoiceLatencyError(
                f"cannot merge {other.name!r} (pytest-voicelatency {other.plugin_version}) with "
                f"{first.name!r} ({first.plugin_version}): run every shard with the same "
                "plugin version")
        if other.settings != first.settings:
            raise VoiceLatencyError(
                f"cannot merge {other.name!r} with {first.name!r}: they were gated with "
                "different voice_latency_* settings; give every shard the same ini file")
    warnings = []
    for other in runs[1:]:
        diff = environment_differences(first.environment, other.environment)
        if diff:
            warnings.append(f"{other.name} was measured elsewhere than {first.name}: "
                            f"{'; '.join(diff).replace('the baseline', first.name).replace('this run', other.name)}")
        if other.environment.get("git_commit") != first.environment.get("git_commit"):
            warnings.append(f"{other.name} is from commit {other.environment.get('git_commit')}, "
                            f"{first.name} from {first.environment.get('git_commit')}: shards "
                            "of one run should test one commit")
    dists: dict[tuple[str, str], Distribution] = {}
    for run in runs:
        for key, d in run.distributions.items():
            seen = dists.get(key)
            dists[key] = d if seen is None else Distribution(
                d.stage, d.metric, np.sort(np.concatenate([seen.values, d.values])),
                seen.nothing + d.nothing, seen.missed + d.missed, seen.censored + d.censored,
                seen.unreliable + d.unreliable)
    samples = None if any(r.samples is None for r in runs) else \
        [s for r in runs for s in (r.samples or [])]
    problems = list(dict.fromkeys(p for r in runs for p in r.problems))
    merged = replace(first, distributions=dists, spans=sum(r.spans for r in runs),
                     tests=sum(r.tests for r in runs), gates=[], comparison=None,
                     problems=problems, problem_count=sum(r.problem_count for r in runs),
                     samples=samples, source="",
                     created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return merged, warnings
