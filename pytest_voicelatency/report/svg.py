"""SVG building blocks for the HTML report: escaping, a linear scale, axis ticks, the histogram
and the turn waterfall. Pure; every text that reaches the markup goes through :func:`esc`.

>>> esc('<b title="x">\\x07')
'&lt;b title=&quot;x&quot;&gt;\\\\x07'
>>> nice_ticks(0, 530)
[0, 100, 200, 300, 400, 500]
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pytest_voicelatency.report.escape import terminal
from pytest_voicelatency.spans.timelines import TurnTimeline

__all__ = ["esc", "num", "Scale", "nice_ticks", "Line", "histogram", "waterfall", "barge_in_window",
           "FIRST_BYTE",
           "FONT"]

FONT = 11  # px, the SVG text size (the page's CSS sets the family)
_LABEL_ROWS = 4  # rows of marker labels above a histogram

def esc(value: object) -> str:
    """The one way text from spans, results or settings enters the page: control and
    layout-breaking characters shown escaped as on the terminal (``\\x07``, ``\\n``,
    ``\\u202e``: :func:`~pytest_voicelatency.report.escape.terminal`), then escaped for element
    content and quoted attribute values alike. Multi-line text: escape each line."""
    return html.escape(terminal(value), quote=True)


def num(x: float) -> str:
    """A coordinate: one decimal, no trailing ``.0`` (keeps the file small)."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True, slots=True)
class Scale:
    """Maps values in ``[lo, hi]`` linearly to pixels in ``[px0, px1]``."""

    lo: float
    hi: float
    px0: float
    px1: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo
        if span <= 0:
            return self.px0
        return self.px0 + (value - self.lo) * (self.px1 - self.px0) / span


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering ``[lo, hi]`` with about ``count``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw / 1.4)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 9) for i in range(int((hi - first) / step + 1e-9) + 1)]


@dataclass(frozen=True, slots=True)
class Line:
    """A vertical marker on a histogram: a quantile, a threshold or the baseline's quantile."""

    label: str
    value: float
    css: str  # class: q, limit, base


def histogram(values: np.ndarray, lines: Sequence[Line] = (), *, missed: int = 0,
              width: int = 620, height: int = 190, bins: int = 40,
              domain: tuple[float, float] | None = None, css: str = "bins",
              label: str = "") -> str:
    """An SVG histogram of the finite ``values`` (ms) with vertical ``lines``; ``missed`` samples
    (+inf) get their own bar at the right. ``domain`` fixes the x range (to put two histograms
    on one axis)."""
    finite = values[np.isfinite(values)]
    left, right, top, bottom = 44, width - (52 if missed else 12), 12 * _LABEL_ROWS + 4, \
        height - 22
    if domain is None:
        marks = [m.value for m in lines if math.isfinite(m.value)]
        lo = min([0.0, *marks, *(finite.min(initial=0.0),)])
        hi = max([lo + 1.0, *marks, *(finite.max(initial=lo),)])
    else:
        lo, hi = domain
    x = Scale(lo, hi, left, right)
    counts, edges = np.histogram(finite, bins=bins, range=(lo, hi)) if finite.size else \
        (np.zeros(bins, int), np.linspace(lo, hi, bins + 1))
    peak = max(int(counts.max()) if counts.size else 0, missed, 1)
    y = Scale(0, peak, bottom, top)
    out = [f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'role="img" aria-label="{esc(label or "histogram")}">']
    for tick in nice_ticks(lo, hi):
        out.append(f'<line class="grid" x1="{num(x(tick))}" x2="{num(x(tick))}" y1="{top}" '
                   f'y2="{bottom}"/><text class="tick" x="{num(x(tick))}" y="{height - 6}" '
                   f'text-anchor="middle">{esc(f"{tick:g}")}</text>')
    out.append(f'<text class="tick" x="{left - 4}" y="{top + 4}" text-anchor="end">{peak}</text>'
               f'<text class="tick" x="{left - 4}" y="{bottom}" text-anchor="end">0</text>')
    for count, a, b in zip(counts.tolist(), edges[:-1].tolist(), edges[1:].tolist()):
        if count:
            x0, x1 = x(a), x(b)
            out.append(f'<rect class="{css}" x="{num(x0)}" y="{num(y(count))}" '
                       f'width="{num(max(x1 - x0 - 0.5, 0.8))}" height="{num(bottom - y(count))}">'
                       f'<title>{count} in {a:.1f}–{b:.1f} ms</title></rect>')
    if missed:
        out.append(f'<rect class="missed" x="{right + 10}" y="{num(y(missed))}" width="28" '
                   f'height="{num(bottom - y(missed))}"><title>{missed} missed or censored '
                   f'(+∞ in quantiles)</title></rect><text class="tick" x="{right + 24}" '
                   f'y="{height - 6}" text-anchor="middle">missed</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}"/>')
    taken: list[list[tuple[float, float]]] = [[] for _ in range(_LABEL_ROWS)]
    for line in sorted(lines, key=lambda m: m.value):
        pos = x(line.value) if math.isfinite(line.value) else right + 24 if missed else None
        if pos is None or not left - 1 <= pos <= width:
            continue
        size = 6.0 * len(line.label) + 6
        anchor = "end" if pos + size > width else "start"
        span = (pos - size, pos) if anchor == "end" else (pos, pos + size)
        row = next((i for i, used in enumerate(taken)
                    if all(span[1] < a or span[0] > b for a, b in used)), len(taken) - 1)
        taken[row].append(span)
        y_text = 11 + 12 * row
        shift = -3 if anchor == "end" else 3
        out.append(f'<line class="{esc(line.css)}" x1="{num(pos)}" x2="{num(pos)}" '
                   f'y1="{y_text - 8}" y2="{bottom}"><title>{esc(line.label)}</title></line>'
                   f'<text class="lbl {esc(line.css)}" x="{num(pos + shift)}" y="{y_text}" '
                   f'text-anchor="{anchor}">{esc(line.label)}</text>')
    out.append("</svg>")
    return "".join(out)


#: What a stage's first byte means, for the waterfall's marks (others: "first byte").
FIRST_BYTE = {"asr": "first partial", "llm": "first token", "tts": "first chunk",
              "barge_in": "cancelled"}
_ROW, _BAR, _LABELS, _VALUES = 20, 12, 200, 74


def _metrics_text(metrics: Sequence[tuple[str, float]]) -> str:
    return ", ".join(f"{name} {value:g}" for name, value in metrics)


def _fill(body: str, **values: int) -> str:
    """Put row coordinates into a row's markup. The slots are NUL-delimited names: :func:`esc`
    never lets a NUL through, so text from spans can neither fill nor fake a slot."""
    for name, value in values.items():
        body = body.replace(f"\0{name}\0", str(value))
    return body


def barge_in_window(tl: TurnTimeline) -> float | None:
    """Where a waterfall of a barge-in should stop so the barge-in is not a sliver: a little past
    the caller hearing silence (None when that is most of the turn anyway)."""
    ends = [h.end_ms for h in tl.heard if h.stage == "caller.barge_in"]
    ends += [t.end_ms for t in tl.tails]
    ends += [r.end_ms for r in tl.rows if r.stage == "barge_in"]
    if not ends:
        return None
    until = max(ends) * 1.25 + 40
    return until if until < 0.7 * tl.end_ms else None


def _later(start_ms: float, right: float, title: str) -> str:
    """A row that starts after a cut axis: where it starts, at the right edge."""
    return (f'<text class="w-cut" x="{num(right)}" y="\0yt\0" text-anchor="end">starts at '
            f'{start_ms:.0f} ms →<title>{esc(title)}</title></text>')


def waterfall(tl: TurnTimeline, *, width: int = 960, until_ms: float | None = None) -> str:
    """One turn as an SVG waterfall: a row per span, the gaps between the bars painted across
    them, first-byte marks, then what the caller heard on the same time axis (events as dashed
    lines through every row) and the audio heard after the agent's cancel. With ``until_ms``
    the axis stops there: longer bars are cut with an arrow (their value column stays whole)."""
    gaps = [g for g in tl.gaps if g.duration_ms > 0]
    ends = [tl.end_ms, *(g.end_ms for g in gaps), *(t.end_ms for t in tl.tails), 1.0]
    plot0, plot1 = _LABELS, width - _VALUES
    stop = max(ends) if until_ms is None else until_ms
    ticks = nice_ticks(0.0, stop, 8)
    x0_ = Scale(0.0, max(stop, ticks[-1] if ticks and until_ms is None else stop), plot0, plot1)

    def x(ms: float) -> float:
        return min(x0_(ms), plot1 + 0.0)

    gaps = [g for g in gaps if g.start_ms < stop]
    lines: list[tuple[str, str, str]] = []  # (label, value text, body svg) per row
    for row in tl.rows:
        x0, x1 = x(row.start_ms), x(max(row.end_ms, row.start_ms))
        flagged = " flagged" if row.flags else ""
        title = (f"{row.stage} ({row.name}): {row.start_ms:.1f} → {row.end_ms:.1f} ms, "
                 f"{row.duration_ms:.1f} ms; {_metrics_text(row.metrics)}; trace {row.trace_id}")
        body = (f'<rect class="w-{row.kind}{flagged}" x="{num(x0)}" y="\0y\0" '
                f'width="{num(max(x1 - x0, 1.0))}" height="{_BAR}"><title>{esc(title)}</title>'
                f'</rect>') if row.start_ms < stop else _later(row.start_ms, plot1, title)
        if row.end_ms > stop > row.start_ms:
            body += f'<text class="w-cut" x="{num(plot1 + 2)}" y="\0yt\0">→</text>'
        for mark in (m for m in row.marks if m.at_ms <= stop):
            what = FIRST_BYTE.get(row.stage, mark.label) if mark.label == "first byte" \
                else mark.label
            body += (f'<line class="w-mark" x1="{num(x(mark.at_ms))}" x2="{num(x(mark.at_ms))}" '
                     f'y1="\0y0\0" y2="\0y1\0"><title>{esc(f"{row.stage} {what} at ")}'
                     f'{mark.at_ms - row.start_ms:.1f} ms</title></line>')
        lines.append((row.stage, f"{row.duration_ms:.1f}", body))
    if gaps:
        body = "".join(
            f'<rect class="w-gap" x="{num(x(g.start_ms))}" y="\0y\0" '
            f'width="{num(max(x(g.end_ms) - x(g.start_ms), 1.5))}" height="{_BAR}"><title>'
            f'{esc(g.stage)} {g.duration_ms:.1f} ms</title></rect>' for g in gaps)
        lines.append(("gaps between bars", f"{max(g.duration_ms for g in gaps):.1f}", body))
    agent_rows = len(lines)
    events: list[tuple[float, str]] = []
    for h in tl.heard:
        events.extend((e.at_ms, e.label) for e in h.events if e.kind != "decision")
        if h.stage in ("caller.response", "caller.barge_in"):
            title = (f"{h.stage} (caller turn {h.turn_id}): {h.value_ms:.1f} ms, {h.outcome}; "
                     f"{_metrics_text(h.metrics)}")
            body = (f'<rect class="w-heard {esc(h.outcome)}" x="{num(x(h.start_ms))}" y="\0y\0" '
                    f'width="{num(max(x(h.end_ms) - x(h.start_ms), 1.0))}" height="{_BAR}">'
                    f'<title>{esc(title)}</title></rect>') if h.start_ms < stop else \
                _later(h.start_ms, plot1, title)
            value = f"{h.value_ms:.1f}" if h.outcome == "ok" else h.outcome
            lines.append((h.stage, value, body))
        else:
            label = h.events[0].label if h.events else h.stage
            lines.append((label, "", f'<path class="w-decision" d="M{num(x(h.start_ms))} \0yc\0'
                          f'l5 -5 l5 5 l-5 5z"><title>{esc(label)}</title></path>'))
    for tail in tl.tails:
        x0, x1 = x(tail.start_ms), x(tail.end_ms)
        text = f"still heard after the agent's cancel: {tail.duration_ms:.0f} ms"
        inside = x1 - x0 > 6.2 * len(text)
        tx, anchor = (x0 + 4, "start") if inside else (
            (x1 + 4, "start") if x1 + 6.2 * len(text) < plot1 else (x0 - 4, "end"))
        body = (f'<rect class="w-tail" x="{num(x0)}" y="\0y\0" width="{num(max(x1 - x0, 1.0))}" '
                f'height="{_BAR}"><title>{esc(text)} (audio shipped before the cancel, '
                f'played out anyway)</title></rect><text class="w-tailtext{" in" * inside}" '
                f'x="{num(tx)}" y="\0yt\0" text-anchor="{anchor}">{esc(text)}</text>'
                f'<line class="w-cancel" x1="{num(x0)}" x2="{num(x0)}" y1="\0top\0" y2="\0y1\0"/>')
        lines.append(("heard after cancel", f"{tail.duration_ms:.1f}", body))
    top = 24
    height = top + _ROW * len(lines) + (16 if agent_rows < len(lines) else 0) + 6
    out = [f'<svg class="wf" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'role="img" aria-label="{esc(f"waterfall of turn {tl.turn_id}")}">']
    for tick in ticks:
        out.append(f'<line class="grid" x1="{num(x(tick))}" x2="{num(x(tick))}" y1="{top - 4}" '
                   f'y2="{height - 4}"/><text class="tick" x="{num(x(tick))}" y="{top - 8}" '
                   f'text-anchor="middle">{esc(f"{tick:g}")}</text>')
    out.append(f'<text class="tick" x="{width - 4}" y="{top - 8}" text-anchor="end">ms</text>')
    if gaps:
        y_top, y_bottom = top, top + _ROW * agent_rows
        out.extend(f'<rect class="w-gapband" x="{num(x(g.start_ms))}" y="{y_top}" '
                   f'width="{num(max(x(g.end_ms) - x(g.start_ms), 1.5))}" '
                   f'height="{y_bottom - y_top}"/>' for g in gaps)
    y = top
    for i, (label, value, body) in enumerate(lines):
        if i == agent_rows and i < len(lines):
            out.append(f'<line class="w-sep" x1="4" x2="{width - 4}" y1="{y + 4}" y2="{y + 4}"/>'
                       f'<text class="w-septext" x="6" y="{y + 14}">what the caller heard</text>')
            y += 16
        short = label if len(label) <= 28 else label[:27] + "…"
        cls = "w-label heard" if i >= agent_rows else "w-label"
        out.append(f'<text class="{cls}" x="{_LABELS - 8}" y="{y + 14}" text-anchor="end">'
                   f'{esc(short)}<title>{esc(label)}</title></text>'
                   f'<text class="w-value" x="{width - 6}" y="{y + 14}" text-anchor="end">'
                   f'{esc(value)}</text>')
        out.append(_fill(body, y=y + 4, y0=y + 1, y1=y + _ROW - 1, yc=y + 10, yt=y + 14,
                         top=top))
        y += _ROW
    for at, label in ((a, b) for a, b in events if a <= stop):
        out.append(f'<line class="w-event" x1="{num(x(at))}" x2="{num(x(at))}" y1="{top}" '
                   f'y2="{y}"><title>{esc(label)} at {at:.1f} ms</title></line>')
    out.append("</svg>")
    return "".join(out)
