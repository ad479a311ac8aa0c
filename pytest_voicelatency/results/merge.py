"""Join the results files of CI shards into the results of one run.

Shards of one run pool their samples: the merged quantiles are those of all samples together,
exact because every file keeps every value. Joining must never count a measurement twice, nor
mix numbers that do not mean the same thing, so :func:`merge` refuses those cases with a message
naming both files, and warns when shards were measured on different machines or commits.

>>> import numpy as np
>>> from pytest_voicelatency.stats.distribution import Distribution, Distributions
>>> def shard(values, created):
...     d = Distribution("asr", "first_byte_ms", values)
...     return Results(Distributions({d.key: d}), created=created)
>>> merged, warnings = merge([shard([1.0, 3.0], "a"), shard([2.0], "b")])
>>> merged.distributions.select("asr").values.tolist(), warnings
([1.0, 2.0, 3.0], [])
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pytest_voicelatency.errors import VoiceLatencyError
from pytest_voicelatency.gate.compare import environment_differences
from pytest_voicelatency.results.model import Results
from pytest_voicelatency.stats.distribution import Distribution, Distributions, Key

__all__ = ["merge", "overlap"]


def _tests_of(results: Results) -> set[str]:
    return {s.test_id for s in results.samples or () if s.test_id}


def _identity(results: Results) -> tuple[Any, ...]:
    """What makes a run itself, whatever file holds it and whether it lists its samples."""
    return (results.created, results.plugin_version,
            json.dumps(dict(results.environment), sort_keys=True), results.spans, results.tests,
            sorted((key, d.values.tolist(), d.nothing, d.missed, d.censored, d.unreliable,
                    d.invalid)
                   for key, d in results.distributions.items()))


def overlap(a: Results, b: Results) -> str | None:
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


def _refuse(runs: Sequence[Results]) -> None:
    """Raise when the shards must not be merged (see :func:`merge`)."""
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


def _warnings(runs: Sequence[Results]) -> list[str]:
    first, out = runs[0], []
    for other in runs[1:]:
        diff = "; ".join(environment_differences(first.compared_environment,
                                                 other.compared_environment))
        if diff:
            diff = diff.replace("the baseline", first.name).replace("this run", other.name)
            out.append(f"{other.name} was measured elsewhere than {first.name}: {diff}")
        commit, first_commit = (r.environment.get("git_commit") for r in (other, first))
        if commit != first_commit:
            out.append(f"{other.name} is from commit {commit}, {first.name} from "
                       f"{first_commit}: shards of one run should test one commit")
    return out


def merge(runs: Sequence[Results]) -> tuple[Results, list[str]]:
    """Join CI shards into one run; returns the merged run and warnings.

    Refuses shards written by different plugin versions or gated by different settings (their
    numbers or verdicts would not mean the same thing), and shards that share measurements
    (see :func:`overlap`); warns when their environments or git commits differ. Verdicts are
    *not* carried over: judge the gates again on the merged run.
    """
    _refuse(runs)
    pooled: dict[Key, Distribution] = {}
    for run in runs:
        for key, d in run.distributions.items():
            seen = pooled.get(key)
            pooled[key] = d if seen is None else seen.pooled(d)
    samples = None if any(r.samples is None for r in runs) else \
        tuple(s for r in runs for s in r.samples or ())
    ids = [r.test_ids if r.test_ids is not None else
           (tuple(_tests_of(r)) if r.samples is not None else None) for r in runs]
    test_ids = None if any(i is None for i in ids) else \
        tuple(sorted({t for i in ids for t in i or ()}))
    merged = replace(runs[0], distributions=Distributions(pooled), test_ids=test_ids,
                     spans=sum(r.spans for r in runs), tests=sum(r.tests for r in runs),
                     samples=samples, source="", gates=None, comparison=None,
                     problems=tuple(dict.fromkeys(p for r in runs for p in r.problems)),
                     problem_count=sum(r.problem_count for r in runs), warnings=(), errors=(),
                     notes=(), created=datetime.now(UTC).isoformat(timespec="seconds"),
                     clock=_clock(runs))
    return merged, _warnings(runs)


def _clock(runs: Sequence[Results]) -> str:
    """The merged run's caller clock: the shards' one kind, ``mixed`` when they differ, ""
    when none made a call."""
    kinds = {r.clock_kind for r in runs if r.clock_kind}
    return kinds.pop() if len(kinds) == 1 else "mixed" if kinds else ""
