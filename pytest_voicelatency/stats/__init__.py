"""Numbers: quantiles (nearest rank) and their order-statistic bounds, exact significance tests,
per-stage summaries and point/confidence verdicts. Pure functions over plain arrays and samples.

May import: ``spans`` (for samples), ``clock``, ``errors``.

Public names (``docs/api.md``): ``nearest_rank``, ``estimate`` / ``Estimate``, ``judge`` /
``Verdict``, ``Limit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_voicelatency._lazy import exports

_EXPORTS = {
    "Estimate": ".quantiles",
    "estimate": ".quantiles",
    "nearest_rank": ".quantiles",
    "Limit": ".limit",
    "Verdict": ".verdict",
    "judge": ".verdict",
}
__all__ = ["Estimate", "estimate", "nearest_rank", "Limit", "Verdict", "judge"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from pytest_voicelatency.stats.limit import Limit
    from pytest_voicelatency.stats.quantiles import Estimate, estimate, nearest_rank
    from pytest_voicelatency.stats.verdict import Verdict, judge
else:
    __getattr__, __dir__ = exports(__name__, _EXPORTS)
