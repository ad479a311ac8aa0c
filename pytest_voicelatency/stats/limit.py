"""A latency limit in milliseconds (``< 200`` or ``<= 200``). Pure and numpy-free.

Gate lines are parsed into limits at configure time, before any test runs, so this module loads
nothing heavy; :mod:`~pytest_voicelatency.stats.verdict` judges quantiles against them.

>>> limit_from(lt=200, le=None)
Limit(op='<', value=200.0)
>>> str(Limit("<=", 900.0)), Limit("<", 200.0).holds(200.0)
('<= 900', False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pytest_voicelatency.errors import VoiceLatencyUsageError

__all__ = ["Limit", "limit_from"]


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
