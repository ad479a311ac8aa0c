"""A run's results as a small, versioned JSON document: how :class:`Results` is written.

One format serves three uses: ``--voice-latency-json`` (everything, including every sample with
its test, session, turn and trace id), ``--voice-latency-save`` (a baseline meant to live in
git: the same document without the per-sample listing) and the shards that
``python -m pytest_voicelatency merge`` joins. Every (stage, metric) keeps its sorted values
(rounded to the microsecond; missed and censored samples as ``null``, which reads back as +inf),
so quantiles, comparisons and merges are exact and the file stays small (about 8 bytes a sample).

Top-level keys: ``format`` (:data:`FORMAT`), ``version`` (:data:`FORMAT_VERSION`; a newer file
is refused with a message), ``plugin_version``, ``created``, ``environment`` (see
:func:`~pytest_voicelatency.results.environment.fingerprint`), ``spans``, ``tests``,
``settings`` (gate lines and policies), ``distributions``, ``gates``, ``comparison``,
``problems``, ``test_ids`` (the sorted node ids of the tests the samples came from, so a later
``--voice-latency-save`` can refuse a narrower run; ``null`` when unknown: merged shards, files
of older versions, which still load; left out when the ``samples`` listing is written, since
each sample names its test there), ``partial`` (``null`` for a complete run, else
``{"reasons": [...],
"lost_samples": bool}``: a run that was interrupted, ran a subset, had failed tests or lost a
worker; ``compare`` refuses a partial baseline unless told ``--allow-partial``), ``samples``
(``--voice-latency-json`` only). ``gates`` and ``comparison`` are
written for people and CI scripts; reading a file back
(:mod:`~pytest_voicelatency.results.validate`) keeps what verdicts are computed from (the
distributions, environment and settings), so the command line judges a file like a live run.

>>> import json
>>> from pytest_voicelatency.results.model import Results
>>> sorted(json.loads(dumps(Results())))[:4]
['assertions', 'clock', 'comparison', 'created']
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from pytest_voicelatency.files import write_atomic
from pytest_voicelatency.gate.compare import Comparison
from pytest_voicelatency.gate.evaluate import GateReport
from pytest_voicelatency.results.model import Results
from pytest_voicelatency.spans.record import SampleFlag
from pytest_voicelatency.stats.summary import StageRow, order_key

__all__ = ["FORMAT", "FORMAT_VERSION", "to_document", "dumps", "save", "gate_records",
           "comparison_record"]

FORMAT = "pytest-voicelatency/results"
#: 2: ``partial``, ``invalid`` counts, the ``virtual`` sample flag and ``clock`` (version 1 files
#: are still read: they are complete, with no invalid or virtual samples).
FORMAT_VERSION = 2


def _ms(x: float) -> float | None:
    """A millisecond figure as stored: to the microsecond; +inf (missed) and NaN as null."""
    return None if math.isinf(x) or math.isnan(x) else round(x, 3)


def _plain(x: float) -> float | None:
    """A statistic as stored (p-values, expected counts): six decimals; NaN and inf as null."""
    return None if math.isnan(x) or math.isinf(x) else round(x, 6)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def gate_records(report: GateReport) -> list[dict[str, object]]:
    """The ``gates`` of a results file: one record per gate result."""
    out: list[dict[str, object]] = []
    for r in report.results:
        est = r.verdict.estimate if r.verdict is not None else None
        out.append({
            "line": r.threshold.line, "stage": r.stage, "metric": r.metric,
            "quantile": r.threshold.q, "op": r.threshold.limit.op, "limit": r.threshold.limit.value,
            "outcome": r.outcome, "failed": r.failed, "n": r.n, "beyond": r.beyond,
            "unreliable": r.unreliable, "value": _finite(est.value if est else None),
            "lower": _finite(est.lower if est else None),
            "upper": _finite(est.upper if est else None),
            "confidence": report.policy.confidence, "pvalue": r.pvalue, "needed": r.needed,
            "note": r.note, "cell": r.cell})
    return out


def comparison_record(comparison: Comparison) -> dict[str, object]:
    """The ``comparison`` of a results file: the policy, the family and every change."""
    p = comparison.policy
    return {"baseline": comparison.base_source, "quantile": p.q, "body": list(p.body),
            "tail_share": p.tail_share, "confidence": p.confidence,
            "min_relative": p.min_relative, "min_ms": p.min_ms, "family": comparison.family,
            "environment_differences": list(comparison.environment),
            "warnings": list(comparison.warnings),
            "changes": [{"stage": c.stage, "metric": c.metric, "outcome": c.outcome,
                         "failed": c.failed, "base_n": c.base_n, "head_n": c.head_n,
                         "base": _plain(c.base_value), "head": _plain(c.head_value),
                         "above": c.above, "expected": _plain(c.expected),
                         "pvalue": _plain(c.pvalue), "needed": c.needed, "note": c.note,
                         "by_upper": c.by_upper, "cell": c.cell,
                         "points": [{"quantile": p.q, "share": p.share, "base": _plain(p.base),
                                     "head": _plain(p.head), "above": p.above,
                                     "expected": _plain(p.expected), "pvalue": _plain(p.worse)}
                                    for p in c.points]} for c in comparison.changes]}


def to_document(results: Results, *, with_samples: bool = True) -> dict[str, Any]:
    """The JSON document of ``results`` as plain data (see the module docstring)."""
    dists = []
    for (stage, metric), d in sorted(results.distributions.items(),
                                     key=lambda kv: (order_key(kv[0][0]), kv[0][1])):
        row = StageRow.of(d)
        dists.append({"stage": stage, "metric": metric, "n": d.n, "nothing": d.nothing,
                      "missed": d.missed, "censored": d.censored, "unreliable": d.unreliable,
                      "invalid": d.invalid,
                      "p50": _ms(row.p50), "p95": _ms(row.p95), "p99": _ms(row.p99),
                      "max": _ms(row.max), "values": [_ms(v) for v in d.values.tolist()]})
    doc: dict[str, Any] = {
        "format": FORMAT, "version": FORMAT_VERSION, "plugin_version": results.plugin_version,
        "created": results.created, "environment": dict(results.environment),
        "spans": results.spans, "tests": results.tests, "settings": dict(results.settings),
        "distributions": dists,
        "gates": gate_records(results.gates) if results.gates is not None else [],
        "comparison": comparison_record(results.comparison)
        if results.comparison is not None else None,
        "problems": {"count": results.problem_count, "first": list(results.problems)},
        "partial": {"reasons": list(results.partial), "lost_samples": results.lost_samples}
        if results.partial else None,
        "clock": results.clock or None,
        "assertions": [{"test": a.test, "stage": a.stage, "metric": a.metric, "rule": a.rule,
                        "outcome": a.outcome, "value_ms": _ms(a.value_ms), "n": a.n,
                        "times": a.times} for a in results.assertions]}
    if with_samples and results.samples is not None:  # each sample names its test
        doc["samples"] = [{"stage": x.stage, "metric": x.metric, "value": x.value,
                           "flags": SampleFlag.names(x.flags), "test": x.test_id,
                           "session": x.session_id, "turn": x.turn_id, "trace": x.trace_id,
                           "start_ns": x.start_ns, "end_ns": x.end_ns}
                          for x in results.samples]
    else:  # no listing (a baseline): the file names the tests its samples came from
        doc["test_ids"] = None if results.test_ids is None else sorted(results.test_ids)
    return doc


def dumps(results: Results, *, with_samples: bool = True) -> str:
    """The JSON text of ``results`` (``with_samples=False`` for a baseline).

    Indented for readable diffs, except that each distribution's values and each sample sit on
    one line: a baseline of ten stages × 300 samples stays a few tens of kilobytes.
    """
    doc = to_document(results, with_samples=with_samples)
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


def save(results: Results, path: str | os.PathLike[str], *, with_samples: bool = True) -> Path:
    """Write ``results`` to ``path`` atomically."""
    return write_atomic(path, dumps(results, with_samples=with_samples))
