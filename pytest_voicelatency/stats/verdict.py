"""Judge a quantile against a limit: pass, fail, inconclusive, or missing. Pure.

Used by the in-test assertions and by the run-wide CI gates, so both decide identically.

* Without ``confidence`` the verdict compares the point estimate (as k6 thresholds do).
* With ``confidence=c`` it uses the one-sided order-statistic bounds of
  :mod:`pytest_voicelatency.stats.quantiles`: *pass* when the upper bound is within the limit, *fail* when
  the lower bound is beyond it, otherwise *inconclusive*, with the number of samples that would
  decide if the data keep their shape.
* No samples at all is *missing*: a missing measurement never passes.

>>> import numpy as np
>>> judge(np.arange(100.0), 0.95, Limit("<", 200)).outcome
'pass'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pytest_voicelatency.errors import VoiceLatencyUsageError

if TYPE_CHECKING:  # numpy and stats load on first judge(): Limit is parsed at configure time
    import numpy as np

    from pytest_voicelatency.stats.quantiles import Estimate

__all__ = ["Limit", "Verdict", "judge", "limit_from"]

Outcome = Literal["pass", "fail", "inconclusive", "missing"]


@dataclass(frozen=True, slots=True)
class Limit:
    """``value`` must stay strictly below (``<``) or at most (``<=``) the limit, in ms."""

    op: Literal["<", "<="]
    value: float

    def holds(self, x: float) -> bool:
        return x < self.value if self.op == "<" else x <= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


def _positive(name: str, value: object) -> float:
    __tracebackhide__ = True
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or math.isnan(value) or math.isinf(value) or value <= 0:
        raise VoiceLatencyUsageError(
            f"{name}= must be a positive, finite number of milliseconds (e.g. {name}=200), "
            f"got {value!r}")
    return float(value)


def limit_from(lt: float | None, le: float | None) -> Limit:
    """Build a :class:`Limit` from the assertion keywords; exactly one must be given."""
    __tracebackhide__ = True
    if (lt is None) == (le is None):
        raise VoiceLatencyUsageError(
            "give exactly one limit: lt=<ms> (strictly below) or le=<ms> (at most), "
            f"got lt={lt!r}, le={le!r}")
    return Limit("<", _positive("lt", lt)) if lt is not None else Limit("<=", _positive("le", le))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one quantile check, with the evidence behind it."""

    outcome: Outcome
    estimate: Estimate
    limit: Limit
    needed: int | None = None  # samples that would decide an inconclusive verdict

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


def judge(values: np.ndarray, q: float, limit: Limit, confidence: float | None = None) -> Verdict:
    """Decide whether the q-quantile of ``values`` is within ``limit``."""
    __tracebackhide__ = True
    import numpy as np

    from pytest_voicelatency.stats.quantiles import check_confidence, estimate, samples_needed

    if confidence is not None:
        check_confidence(confidence)
    est = estimate(values, q, confidence)
    if est.n == 0:
        return Verdict("missing", est, limit)
    if confidence is None:
        return Verdict("pass" if limit.holds(est.value) else "fail", est, limit)
    if est.upper is not None and limit.holds(est.upper):
        return Verdict("pass", est, limit)
    if est.lower is not None and not limit.holds(est.lower):
        return Verdict("fail", est, limit)
    x = np.asarray(values, dtype=np.float64)
    below = float(np.count_nonzero(x < limit.value if limit.op == "<" else x <= limit.value)) / x.size
    return Verdict("inconclusive", est, limit, samples_needed(q, confidence, below))
