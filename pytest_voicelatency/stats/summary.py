"""Per-stage summary rows of a run, in pipeline order. Pure and numpy-free.

One row per stage, for its default metric: n, how many produced nothing, p50/p95/p99 (nearest
rank, see :mod:`pytest_voicelatency.stats.quantiles`) and max. Rows are ordered the way audio flows:
vad, asr, llm, tts, barge_in, with each ``handoff.a_to_b`` and ``gap.a_to_b`` placed right after
stage ``a``, then the caller's black-box stages, then anything else alphabetically.

Numpy-free (it only calls methods of the distributions it is given) because the terminal report
imports it at the end of every run, including runs that captured nothing and never load numpy.

>>> order_key("gap.asr_to_llm") < order_key("llm") < order_key("barge_in")
True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_voicelatency.stats.distribution import Distribution, Distributions, Key

__all__ = ["StageRow", "rows", "order_key", "PIPELINE"]

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
    """The summary of one stage and metric over a run (NaN quantiles when it has no values)."""

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
    invalid: int = 0

    @classmethod
    def of(cls, d: Distribution) -> StageRow:
        """The row of one distribution: the only way a row is made from numbers."""
        return cls(d.stage, d.metric, d.n, d.nothing, d.quantile(0.5), d.quantile(0.95),
                   d.quantile(0.99), d.quantile(1.0), d.missed, d.censored, d.unreliable, d.invalid)


def rows(distributions: Distributions, extra: Iterable[Key] = ()) -> list[StageRow]:
    """Table rows: each stage's default metric plus ``extra`` keys (e.g. every gated metric,
    present or not), in pipeline order."""
    keys = dict.fromkeys([*distributions.default_keys(), *extra])
    return sorted((StageRow.of(distributions.select(s, m)) for s, m in keys),
                  key=lambda r: (order_key(r.stage), r.metric))
