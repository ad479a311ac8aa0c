"""A run's numbers without their turns: per (stage, metric), the sorted values and the counts of
flagged samples. Pure.

This is what outlives a pytest run. Gates and comparisons judge it, tables summarize it, results
files store it and merges pool it, so a run read back from a file, or merged from CI shards, is
judged exactly like the run that measured it. Values are rounded to the microsecond when a
:class:`Distribution` is made from samples: a run and its file then hold the very same numbers.

>>> import numpy as np
>>> d = Distribution("asr", "first_byte_ms", np.arange(1.0, 101.0))
>>> d.quantile(0.95), Distributions({d.key: d}).select("asr").n
(95.0, 100)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from pytest_voicelatency.spans.samples import SampleSet, Selection, default_metric
from pytest_voicelatency.stats.quantiles import rank

__all__ = ["Key", "Distribution", "Distributions"]

#: (stage, metric)
Key = tuple[str, str]


@dataclass(frozen=True, eq=False)
class Distribution:
    """All values of one stage and metric: sorted ascending, missed and censored as +inf.

    ``nothing`` counts the samples that produced nothing (``first_byte_ms = -1``, not in
    ``values``); ``invalid`` the values the agent set that are no latency (negative, NaN, a
    string, a bool: not in ``values``, and a verdict on this metric says so instead of passing);
    ``missed``, ``censored`` and ``unreliable`` count flagged samples in ``values``.
    The values are copied into a read-only array, so a distribution cannot change once made.
    """

    stage: str
    metric: str
    values: np.ndarray
    nothing: int = 0
    missed: int = 0
    censored: int = 0
    unreliable: int = 0
    invalid: int = 0

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=np.float64)
        values.setflags(write=False)
        object.__setattr__(self, "values", values)

    @classmethod
    def of(cls, selection: Selection) -> Distribution:
        """The distribution of a selection of samples, rounded to the microsecond."""
        values = np.sort(np.round(np.asarray(selection.values, dtype=np.float64), 3))
        return cls(selection.stage, selection.metric, values, selection.nothing,
                   selection.missed, selection.censored, selection.unreliable,
                   selection.invalid)

    @property
    def key(self) -> Key:
        return self.stage, self.metric

    @property
    def n(self) -> int:
        return int(self.values.size)

    def quantile(self, q: float) -> float:
        """Nearest-rank q-quantile (NaN when empty)."""
        return float(self.values[rank(self.n, q) - 1]) if self.n else math.nan

    def pooled(self, other: Distribution) -> Distribution:
        """This distribution and ``other`` (the same stage and metric) as one."""
        return Distribution(self.stage, self.metric,
                            np.sort(np.concatenate([self.values, other.values])),
                            self.nothing + other.nothing, self.missed + other.missed,
                            self.censored + other.censored, self.unreliable + other.unreliable,
                            self.invalid + other.invalid)


class Distributions(Mapping[Key, Distribution]):
    """Every distribution of a run by (stage, metric); read-only.

    It answers what a :class:`~pytest_voicelatency.spans.samples.SampleSet` answers
    (:meth:`metrics_by_stage`, :meth:`select`), so gates judge a loaded or merged run the way
    they judge a live one.
    """

    def __init__(self, distributions: Mapping[Key, Distribution] | None = None) -> None:
        self._items = dict(distributions or {})

    @classmethod
    def of(cls, samples: SampleSet) -> Distributions:
        """The distribution of every (stage, metric) of ``samples``."""
        return cls({(stage, metric): Distribution.of(samples.select(stage, metric))
                    for stage, metrics in samples.metrics_by_stage().items()
                    for metric in metrics})

    def __getitem__(self, key: Key) -> Distribution:
        return self._items[key]

    def __iter__(self) -> Iterator[Key]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Distributions({sorted(self._items)})"

    def metrics_by_stage(self) -> dict[str, list[str]]:
        """Every stage, with its metrics (sorted)."""
        out: dict[str, list[str]] = {}
        for stage, metric in sorted(self._items):
            out.setdefault(stage, []).append(metric)
        return out

    def select(self, stage: str, metric: str | None = None) -> Distribution:
        """The distribution of ``stage``/``metric`` (the stage's default metric when None;
        empty when absent)."""
        if metric is None:
            metric = default_metric(stage, set(self.metrics_by_stage().get(stage, ())))
        found = self._items.get((stage, metric))
        return found if found is not None else Distribution(stage, metric, np.empty(0))

    def default_keys(self) -> list[Key]:
        """(stage, default metric) of every stage that has any sample: a table's rows."""
        keys = []
        for stage, metrics in self.metrics_by_stage().items():
            d = self.select(stage, default_metric(stage, set(metrics)))
            if d.n or d.nothing or d.invalid:
                keys.append(d.key)
        return keys
