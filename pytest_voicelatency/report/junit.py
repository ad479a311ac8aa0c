"""Each test's own latency figures as JUnit XML properties. Pure.

CI dashboards that read ``--junitxml`` see per test case ``voice_latency.<stage>.<metric>.p50``,
``.p95`` and ``.n``, for the stages that test measured: the same rows and the same millisecond
cells as the run-wide table, computed over that test's samples alone.

>>> from pytest_voicelatency.spans.rows import SpanTable
>>> from pytest_voicelatency.spans.samples import derive
>>> junit_properties(derive(SpanTable()))
[]
"""

from __future__ import annotations

from pytest_voicelatency.report.cells import ms
from pytest_voicelatency.report.escape import xml
from pytest_voicelatency.spans.samples import SampleSet
from pytest_voicelatency.stats.distribution import Distributions
from pytest_voicelatency.stats.summary import rows

__all__ = ["junit_properties"]


def junit_properties(samples: SampleSet, prefix: str = "voice_latency") -> list[tuple[str, str]]:
    """``(name, value)`` pairs of each stage's p50, p95 and n for a test's JUnit XML entry."""
    out: list[tuple[str, str]] = []
    for row in rows(Distributions.of(samples)):
        base = xml(f"{prefix}.{row.stage}.{row.metric}")  # names are data: XML 1.0 only
        out += [(f"{base}.p50", ms(row.p50)), (f"{base}.p95", ms(row.p95)),
                (f"{base}.n", str(row.n))]
    return out
