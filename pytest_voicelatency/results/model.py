"""The results of a run: one immutable, typed value that every writer reads.

Made once at the end of a pytest run (:func:`pytest_voicelatency.run.finish.finish`), or read
back from a results file (:mod:`~pytest_voicelatency.results.validate`), or joined from CI shards
(:mod:`~pytest_voicelatency.results.merge`). Nobody patches it afterwards: a variant (the baseline
without its samples, the run with the errors of writing its files) is a
:func:`dataclasses.replace` copy. The terminal table, the Markdown summary and the JSON document
(:mod:`~pytest_voicelatency.results.codec`) are all renderings of it, so they cannot disagree.

>>> import numpy as np
>>> from pytest_voicelatency.stats.distribution import Distribution, Distributions
>>> d = Distribution("asr", "first_byte_ms", np.arange(1.0, 101.0))
>>> run = Results(Distributions({d.key: d}), tests=1, spans=100)
>>> run.distributions.select("asr").quantile(0.95), run.failed, run.name
(95.0, False, 'this run')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_voicelatency.gate.compare import Comparison
from pytest_voicelatency.gate.evaluate import GateReport
from pytest_voicelatency.spans.samples import Sample
from pytest_voicelatency.stats.distribution import Distributions

__all__ = ["Results", "AssertionCheck", "assertion_checks", "clock_kind"]

#: Worst first: an assertion's outcome over all the times a test made it (hypothesis examples).
_SEVERITY = ("invalid", "missing", "fail", "inconclusive", "pass")


@dataclass(frozen=True, slots=True)
class AssertionCheck:
    """What one in-test assertion (``assert_p95(stage=..., lt=...)``) decided in one test, over
    every time the test made it (a hypothesis test makes it once per example): the worst
    outcome, the largest estimate, the samples judged in all, how many times it ran."""

    test: str
    stage: str
    metric: str
    rule: str  # e.g. "p95 < 200"
    outcome: str  # pass, fail, inconclusive, missing, invalid
    value_ms: float
    n: int
    times: int = 1

    @property
    def failed(self) -> bool:
        return self.outcome != "pass"


def assertion_checks(raw: Sequence[Sequence[object]]) -> tuple[AssertionCheck, ...]:
    """Typed, merged checks from the plugin's plain ``(test, stage, metric, rule, outcome,
    value_ms, n)`` tuples (which travel from xdist workers); malformed entries are skipped."""
    merged: dict[tuple[str, str, str, str], AssertionCheck] = {}
    for item in raw:
        if len(item) != 7 or item[4] not in _SEVERITY:
            continue
        test, stage, metric, rule, outcome = (str(x) for x in item[:5])
        value = float(item[5]) if isinstance(item[5], (int, float)) else math.nan
        n = int(item[6]) if isinstance(item[6], int) else 0
        key = (test, stage, metric, rule)
        seen = merged.get(key)
        if seen is None:
            merged[key] = AssertionCheck(test, stage, metric, rule, outcome, value, n)
            continue
        worst = min(seen.outcome, outcome, key=_SEVERITY.index)
        merged[key] = AssertionCheck(test, stage, metric, rule, worst,
                                     max(seen.value_ms, value, key=_nan_low),
                                     seen.n + n, seen.times + 1)
    return tuple(merged.values())


def clock_kind(clock: str) -> str:
    """A run's caller clock without its call counts: "virtual", "real", "mixed" or "".

    >>> clock_kind("mixed (3 calls virtual, 1 real)")
    'mixed'
    """
    return clock.split(" (", 1)[0]


def _nan_low(x: float) -> float:
    return -math.inf if math.isnan(x) else x


@dataclass(frozen=True)
class Results:
    """Everything a run leaves behind for people and CI.

    * **numbers**: ``distributions`` (per stage and metric), ``tests`` (tests with voice spans),
      ``spans``, and ``samples``: every sample with its test, session, turn and trace, kept only
      for ``--voice-latency-json`` (None otherwise);
    * **provenance**: ``environment`` (see
      :func:`~pytest_voicelatency.results.environment.fingerprint`), ``plugin_version``,
      ``created`` (ISO 8601, UTC) and ``source``, the file it was read from ("" for a live or
      merged run; not written);
    * **configuration**: ``settings``, the gate lines and policies as stored in results files
      (merges refuse shards whose settings differ; the command line re-judges with them);
    * **verdicts**: ``gates`` and ``comparison`` (None when not judged or not compared);
    * **coverage**: ``test_ids``, the node ids of the tests whose samples these are (sorted), so
      a later ``--voice-latency-save`` can tell a narrower run (``pytest tests/test_a.py``) from
      the suite; None when not recorded (files of older versions, merged shards);
    * **completeness**: ``partial``, why the run measured less than its suite (interrupted,
      a deselected subset, failed tests, samples lost with a crashed pytest-xdist worker; see
      :mod:`pytest_voicelatency.run.facts`); empty for a complete run. Written to results files
      as ``"partial": {"reasons": [...], "lost_samples": bool}`` (``null`` when complete);
    * **messages**: span ``problems`` (the first few, and ``problem_count`` in all),
      ``warnings``, ``errors`` (inputs that could not be used), ``output_errors`` (outputs
      that could not be written: each output fails alone) and ``notes`` (files written).
    """

    distributions: Distributions = field(default_factory=Distributions)
    tests: int = 0
    spans: int = 0
    samples: tuple[Sample, ...] | None = None
    environment: Mapping[str, Any] = field(default_factory=dict)
    plugin_version: str = ""
    created: str = ""
    source: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    gates: GateReport | None = None
    comparison: Comparison | None = None
    problems: tuple[str, ...] = ()
    problem_count: int = 0
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    partial: tuple[str, ...] = ()
    output_errors: tuple[str, ...] = ()
    clock: str = ""  # the caller's time base: "virtual", "real", "mixed", or "" (no caller)
    assertions: tuple[AssertionCheck, ...] = ()  # what the tests' own assertions decided
    test_ids: tuple[str, ...] | None = None  # the tests the samples came from (None: unknown)

    @property
    def name(self) -> str:
        """How messages name this run: its file, or "this run"."""
        return self.source or "this run"

    @property
    def clock_kind(self) -> str:
        """``clock`` without its call counts (:func:`clock_kind`)."""
        return clock_kind(self.clock)

    @property
    def compared_environment(self) -> dict[str, Any]:
        """What a comparison checks both runs agree on: the environment and the kind of the
        caller's clock (:data:`~pytest_voicelatency.gate.compare.COMPARED_ENVIRONMENT`)."""
        return {**self.environment, "clock": self.clock_kind}

    @property
    def lost_samples(self) -> bool:
        """Whether samples died with a crashed worker (a ``partial`` reason says which)."""
        return any(r.startswith("samples lost") for r in self.partial)

    @property
    def failed(self) -> bool:
        """Whether a gate failed or a stage regressed (by the policies they were judged with)."""
        return bool((self.gates is not None and self.gates.failed)
                    or (self.comparison is not None and self.comparison.failed))
