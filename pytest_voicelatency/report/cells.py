"""What the terminal table and the Markdown table share: the millisecond cell, the rows and the
verdict cells of a run. Pure and numpy-free.

Both writers show one row per stage plus every gated or compared metric, and print figures the
same way, so a reader can put the PR comment beside the CI log and see the same numbers.

>>> ms(148.25), ms(float("inf")), ms(float("nan"))
('148.2', 'missed', '-')
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pytest_voicelatency.stats.summary import StageRow, rows

if TYPE_CHECKING:
    from pytest_voicelatency.results.model import Results
    from pytest_voicelatency.stats.distribution import Key

__all__ = ["ms", "table_rows", "gate_cells", "failing_gate_keys"]


def ms(x: float) -> str:
    """A figure in milliseconds, to 0.1 ms; ``missed`` for +inf (a missed or censored sample:
    unknown, never fast) and ``-`` for NaN (no value at all)."""
    if math.isnan(x):
        return "-"
    return "missed" if x == math.inf else f"{x:.1f}"


def _verdict_keys(results: Results) -> list[Key]:
    keys = results.gates.keys() if results.gates is not None else []
    if results.comparison is not None:
        keys += [(c.stage, c.metric) for c in results.comparison.changes]
    return keys


def table_rows(results: Results) -> list[StageRow]:
    """The table's rows: each stage's default metric plus every gated or compared metric (a
    gate on a stage with no samples gets its row too, to show why it failed)."""
    return rows(results.distributions, extra=_verdict_keys(results))


def gate_cells(results: Results) -> dict[Key, str]:
    """The ``gate`` column: each row's gate verdicts (several joined by ``; ``)."""
    return results.gates.cells() if results.gates is not None else {}


def failing_gate_keys(results: Results) -> set[Key]:
    """The rows with a gate that fails the run."""
    gates = results.gates.results if results.gates is not None else ()
    return {(r.stage, r.metric) for r in gates if r.failed}
