"""Per-stage summary rows for a whole run, in pipeline order. Pure.

One row per stage, for its default metric: n, how many produced nothing, p50/p95/p99 (nearest
rank, see :mod:`pytest_voicelatency.stats.quantiles`) and max. Rows are ordered the way audio flows:
vad, asr, llm, tts, barge_in, with each ``handoff.a_to_b`` and ``gap.a_to_b`` placed right after
stage ``a``, then the caller's black-box stages, then anything else alphabetically.

>>> order_key("gap.asr_to_llm") < order_key("llm") < order_key("barge_in")
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pytest_voicelatency.spans.samples import SampleSet, default_metric
from pytest_voicelatency.stats.quantiles import rank

__all__ = ["StageRow", "summarize", "order_key", "PIPELINE"]

PIPELINE = ("vad", "asr", "llm", "tts", "barge_in", "turn")


def order_key(stage: str) -> tuple[int, int, str]:
    """Sort key placing stages in pipeline order (see the module docstring)."""
    for prefix, offset in (("handoff.", 1), ("gap.", 2)):
        if stage.startswith(prefix):
            source = stage[len(prefix):].split("_to_", 1)[0]
            if source in PIPELINE:
                return (PIPELINE.index(source) * 10 + offset, 0, stage)
            return (900, offset, stage)
    if stage in PIPELINE:
        return (PIPELINE.index(stage) * 10, 0, stage)
    if stage.startswith("caller."):
        return (800, 0, stage)
    return (950, 0, stage)


@dataclass(frozen=True, slots=True)
class StageRow:
    """The summary of one stage's default metric over a run."""

    stage: str
    metric: str
    n: int
    nothing: int
    p50: float
    p95: float
    p99: float
    max: float
    missed: int = 0
    censored: int = 0
    unreliable: int = 0
    notes: tuple[str, ...] = field(default=())


def _quantiles(values: np.ndarray) -> tuple[float, float, float, float]:
    if values.size == 0:
        return (math.nan,) * 4
    n = values.size
    ks = [rank(n, q) - 1 for q in (0.5, 0.95, 0.99)] + [n - 1]
    part = np.partition(values, sorted(set(ks)))
    return tuple(float(part[k]) for k in ks)  # type: ignore[return-value]


def summarize(samples: SampleSet, metrics: dict[str, str] | None = None) -> list[StageRow]:
    """One :class:`StageRow` per stage (default metric unless ``metrics`` maps stage → metric)."""
    rows = []
    for stage, available in samples.metrics_by_stage().items():
        metric = (metrics or {}).get(stage) or default_metric(stage, set(available))
        selection = samples.select(stage, metric)
        if selection.n == 0 and selection.nothing == 0:
            continue
        rows.append(StageRow(stage, metric, selection.n, selection.nothing,
                             *_quantiles(selection.values), selection.missed, selection.censored,
                             selection.unreliable))
    return sorted(rows, key=lambda r: order_key(r.stage))
