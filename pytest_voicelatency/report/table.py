"""Render the run-wide per-stage table as aligned text for the terminal. Pure.

>>> from pytest_voicelatency.stats.summary import StageRow
>>> print(render([StageRow("asr", "first_byte_ms", 60, 0, 120.0, 148.25, 150.0, 151.0)]))
stage  metric          n  nothing    p50    p95    p99    max
asr    first_byte_ms  60        0  120.0  148.2  150.0  151.0
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_voicelatency.report.cells import ms
from pytest_voicelatency.report.escape import terminal
from pytest_voicelatency.stats.summary import StageRow

__all__ = ["render", "HEADER"]

HEADER = ("stage", "metric", "n", "nothing", "p50", "p95", "p99", "max")


def flag_columns(rows: Sequence[StageRow]) -> list[tuple[str, list[str]]]:
    """The missed / censored / unreliable count columns, only when some row has any."""
    out = []
    for title in ("missed", "censored", "unreliable", "invalid"):
        cells = [str(getattr(r, title)) for r in rows]
        if any(c != "0" for c in cells):
            out.append((title, cells))
    return out


def render(rows: Sequence[StageRow],
           extra_columns: Sequence[tuple[str, Sequence[str]]] = ()) -> str:
    """Format rows as a table; ``extra_columns`` appends (title, one cell per row) columns.

    Missed and censored samples count as +inf, so a quantile that lands on one reads
    ``missed``; the flag count columns appear only when there is something to count.
    """
    extra_columns = [*flag_columns(rows), *extra_columns]
    header = list(HEADER) + [title for title, _ in extra_columns]
    body = [[terminal(r.stage), terminal(r.metric), str(r.n), str(r.nothing), ms(r.p50),
             ms(r.p95), ms(r.p99), ms(r.max)]
            + [terminal(cells[i]) for _, cells in extra_columns] for i, r in enumerate(rows)]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    left = {0, 1}

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join(fmt(line) for line in [header, *body])
