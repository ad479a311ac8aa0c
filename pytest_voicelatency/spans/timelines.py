"""Turn timelines: a stage's worst turns laid out in time, for the HTML report's waterfalls. Pure.

A percentile says *that* a stage got slow; the slow turns laid out in time say *why*, because the
damage often lives between the bars. :func:`worst_turns` takes a
:class:`~pytest_voicelatency.spans.rows.SpanTable` and returns, for the ``n`` worst samples of a
stage (distinct turns, worst first), everything a waterfall draws, in milliseconds from the turn's
origin (its earliest instant):

* **rows**: every span of the turn (same test, ``session_id`` and ``turn_id``) in start order:
  the ``turn`` parent, the stage bars, handoff spans and any other voice span, each with its
  marks (``first byte`` at start + ``first_byte_ms`` on a streaming stage that produced
  something) and metrics;
* **gaps**: the ``gap.<a>_to_<b>`` intervals between the bars, taken from
  :func:`~pytest_voicelatency.spans.samples.derive` (the one gap rule): a gap sample sits on the
  later bar and ends where that bar starts;
* **heard**: the simulated caller's measurements joined to the turn (``caller.response``: end of
  the user's speech → first audible agent audio; ``caller.barge_in``: onset of the interruption
  → the listener hears silence; ``barge_in.missed`` / ``barge_in.false`` decisions). The agent
  counts turns its own way, so they are joined by time, not by turn id: a barge-in measurement
  joins the turn whose ``barge_in`` bar starts inside its window (from ``slack_ms`` before the
  onset to the silence, as :mod:`~pytest_voicelatency.gate.crosscheck` pairs them), any other
  measurement the turn whose extent holds its end (what was heard belongs to the turn playing
  it), else the nearest turn of its session;
* **tails**: when a barge-in bar and the caller's ``caller.barge_in`` meet in one turn, the time
  from the agent's cancel (the bar's first byte, else its end) to the instant the caller heard
  silence: audio the agent had already shipped and could not un-send.

A sample that joins no turn (no session or turn id, or a caller measurement with no agent turn
around it) still gets a timeline: its own span alone.

>>> from pytest_voicelatency.spans.record import SpanRecord
>>> t = SpanTable()
>>> t.add(SpanRecord("audio.asr", "asr", "s", "1", 7, 0, 100_000_000, (("first_byte_ms", 40.0),),
...                  True))
>>> t.add(SpanRecord("audio.llm", "llm", "s", "1", 7, 130_000_000, 400_000_000, (), True))
>>> [(g.stage, g.start_ms, g.end_ms) for g in worst_turns(t, "gap.asr_to_llm", None, 1)[0].gaps]
[('gap.asr_to_llm', 100.0, 130.0)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pytest_voicelatency.spans.record import CENSORED, MISSED, NOTHING
from pytest_voicelatency.spans.rows import SpanTable
from pytest_voicelatency.spans.samples import SampleSet, derive

__all__ = ["Mark", "Row", "Gap", "HeardEvent", "Heard", "Tail", "TurnTimeline", "worst_turns",
           "worst_turns_by_key", "HEARD_STAGES", "DEFAULT_TURNS"]

DEFAULT_TURNS = 10

#: The caller's black-box measurements drawn on a turn's time axis (per-call spans such as
#: ``caller.playout`` and ``caller.pacing`` span the whole call and are not drawn).
HEARD_STAGES = frozenset({"caller.response", "caller.barge_in", "barge_in.missed",
                          "barge_in.false"})
_BARGE_IN_STAGES = frozenset({"caller.barge_in", "barge_in.missed", "barge_in.false"})
#: How far after a barge-in's onset the agent's barge-in bar may start and still be its answer
#: (a decision span has no window of its own; the agent's VAD needs a few frames).
_ONSET_SEARCH_NS = 1_000_000_000

RowKind = Literal["turn", "bar", "handoff", "span"]
HeardKind = Literal["speech_end", "first_audio", "barge_in_onset", "silence", "decision"]
Outcome = Literal["ok", "missed", "censored"]
Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Mark:
    """An instant on a row: ``first byte``, in ms from the turn's origin."""

    label: str
    at_ms: float


class _Window:
    """What a row, a gap and a tail share: a start and an end on the turn's axis, in ms."""

    __slots__ = ()
    start_ms: float
    end_ms: float

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


@dataclass(frozen=True, slots=True)
class Row(_Window):
    """One span of the turn: a waterfall row."""

    stage: str
    name: str
    kind: RowKind
    start_ms: float
    end_ms: float
    trace_id: str
    flags: int = 0
    marks: tuple[Mark, ...] = ()
    metrics: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Gap(_Window):
    """Time between two bars that no earlier bar covered (``gap.<a>_to_<b>``); may be 0."""

    stage: str
    start_ms: float
    end_ms: float


@dataclass(frozen=True, slots=True)
class HeardEvent:
    """An instant the caller heard (or said): speech end, first audible audio, barge-in onset,
    silence, or an interruption decision."""

    kind: HeardKind
    label: str
    at_ms: float


@dataclass(frozen=True, slots=True)
class Heard:
    """One caller measurement joined to the turn: its window, value, outcome and instants.

    ``turn_id`` is the caller's own turn id, which need not be the agent's.
    """

    stage: str
    turn_id: str
    start_ms: float
    end_ms: float
    value_ms: float
    outcome: Outcome
    trace_id: str
    events: tuple[HeardEvent, ...] = ()
    metrics: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Tail(_Window):
    """Audio heard after the agent stopped: from its cancel to the caller hearing silence."""

    start_ms: float
    end_ms: float


@dataclass(frozen=True, slots=True)
class TurnTimeline:
    """One of the worst turns of ``stage``/``metric``, with the sample that put it there."""

    stage: str
    metric: str
    value: float  # the sample as recorded (a missed or censored one: its bound)
    flags: int
    test_id: str
    session_id: str
    turn_id: str
    trace_ids: tuple[str, ...]
    origin_ns: int
    rows: tuple[Row, ...]
    gaps: tuple[Gap, ...] = ()
    heard: tuple[Heard, ...] = ()
    tails: tuple[Tail, ...] = ()

    @property
    def end_ms(self) -> float:
        """The latest instant drawn (the time axis runs from 0 to here)."""
        ends = [r.end_ms for r in self.rows] + [h.end_ms for h in self.heard]
        return max(ends, default=0.0)

    @property
    def outcome(self) -> Outcome:
        return "missed" if self.flags & MISSED else "censored" if self.flags & CENSORED else "ok"


def _row_kind(stage: str, bar: bool) -> RowKind:
    if bar:
        return "bar"
    if stage == "turn":
        return "turn"
    return "handoff" if stage.startswith("handoff.") else "span"


def _outcome(flags: int) -> Outcome:
    return "missed" if flags & MISSED else "censored" if flags & CENSORED else "ok"


class _Index:
    """The table grouped once: rows per turn, caller measurements per session, metrics per row."""

    def __init__(self, table: SpanTable, samples: SampleSet) -> None:
        self.table, self.samples = table, samples
        c, s = table.columns, table.strings
        self.c, self.s = c, s
        ids = {text: i for i, text in enumerate(s)}
        empty = ids.get("", -1)
        self.heard_ids = heard_ids = {i for i, text in enumerate(s) if text in HEARD_STAGES}
        self.turns: dict[tuple[int, int, int], list[int]] = {}
        self.heard: dict[tuple[int, int], list[int]] = {}
        self.turn_of: dict[int, tuple[int, int, int]] = {}
        for row, (test, session, turn, stage) in enumerate(zip(c["test"], c["session"],
                                                               c["turn"], c["stage"])):
            if stage in heard_ids:
                self.heard.setdefault((test, session), []).append(row)
            elif session != empty and turn != empty:
                self.turns.setdefault((test, session, turn), []).append(row)
                self.turn_of[row] = (test, session, turn)
        m_row = np.frombuffer(c["m_row"], dtype=np.int32) if len(c["m_row"]) else \
            np.empty(0, np.int32)
        self.m_order = np.argsort(m_row, kind="stable")
        self.m_sorted = m_row[self.m_order]
        self._joined: dict[tuple[int, int], dict[int, tuple[int, int, int] | None]] = {}

    def metrics(self, row: int) -> tuple[tuple[str, float], ...]:
        lo, hi = np.searchsorted(self.m_sorted, [row, row + 1])
        names, values, s = self.c["m_name"], self.c["m_value"], self.s
        return tuple((s[names[i]], values[i]) for i in self.m_order[lo:hi].tolist())

    def _extent(self, key: tuple[int, int, int]) -> tuple[int, int]:
        rows = self.turns[key]
        return (min(self.c["start_ns"][r] for r in rows), max(self.c["end_ns"][r] for r in rows))

    def joined(self, session: tuple[int, int]) -> dict[int, tuple[int, int, int] | None]:
        """Each caller measurement of a (test, session) -> the agent turn it joins, or None."""
        found = self._joined.get(session)
        if found is not None:
            return found
        c, s = self.c, self.s
        keys = [k for k in self.turns if k[:2] == session] if session in self.heard else []
        extents = {k: self._extent(k) for k in keys}
        barge_bars = [(c["start_ns"][r], k) for k in keys for r in self.turns[k]
                      if s[c["stage"][r]] == "barge_in"]
        slack = 50_000_000
        found = {}
        for row in self.heard.get(session, ()):
            start, end, stage = c["start_ns"][row], c["end_ns"][row], s[c["stage"][row]]
            choice: tuple[int, int, int] | None = None
            if stage in _BARGE_IN_STAGES:
                late = max(end, start + _ONSET_SEARCH_NS)
                inside = [(abs(t - start), k) for t, k in barge_bars if start - slack <= t <= late]
                choice = min(inside)[1] if inside else None
            if choice is None and extents:
                holding = [(lo, k) for k, (lo, hi) in extents.items() if lo <= end <= hi]
                choice = max(holding)[1] if holding else min(
                    extents, key=lambda k: min(abs(extents[k][0] - end), abs(extents[k][1] - end)))
            found[row] = choice
        self._joined[session] = found
        return found

    def turn_key(self, row: int) -> tuple[int, int, int] | None:
        """The agent turn of a span row (a caller measurement: the turn it joins), or None."""
        c = self.c
        key = self.turn_of.get(row)
        if key is None and c["stage"][row] in self.heard_ids:
            key = self.joined((c["test"][row], c["session"][row])).get(row)
        return key

    def rows_of(self, row: int) -> tuple[tuple[int, int, int] | None, list[int], list[int]]:
        """The sample row's agent turn (None when it joins none), its agent rows, its caller
        rows."""
        key = self.turn_key(row)
        if key is None:
            return (None, [], [row]) if self.c["stage"][row] in self.heard_ids else \
                (None, [row], [])
        joined = self.joined(key[:2])
        return key, self.turns[key], [r for r, k in joined.items() if k == key]


_DECISIONS = {("barge_in.missed", True): "words talked over: interruption missed",
              ("barge_in.missed", False): "words: the agent stopped",
              ("barge_in.false", True): "a non-word sound stopped the agent",
              ("barge_in.false", False): "a non-word sound: the agent kept talking"}


def _heard(stage: str, start: float, end: float, flags: int,
           metrics: dict[str, float]) -> tuple[HeardEvent, ...]:
    outcome = _outcome(flags)
    if stage == "caller.response":
        heard = HeardEvent("first_audio", "first audible agent audio", end) if outcome == "ok" \
            else HeardEvent("first_audio", f"no agent audio heard ({outcome})", end)
        return (HeardEvent("speech_end", "user's speech ends", start), heard)
    if stage == "caller.barge_in":
        quiet = HeardEvent("silence", "caller hears silence", end) if outcome == "ok" else \
            HeardEvent("silence", f"agent still audible ({outcome})", end)
        return (HeardEvent("barge_in_onset", "barge-in onset", start), quiet)
    happened = bool(metrics.get(stage.rpartition(".")[2], metrics.get("duration_ms", 0.0)))
    return (HeardEvent("decision", _DECISIONS.get((stage, happened), stage), start),)


def _timeline(index: _Index, stage: str, metric: str, value: float, flags: int, row: int,
              gap_rows: dict[int, list[tuple[str, float]]]) -> TurnTimeline:
    c, s, table = index.c, index.s, index.table
    key, agent_rows, caller_rows = index.rows_of(row)
    agent_rows = sorted(agent_rows, key=lambda r: (c["start_ns"][r], -c["end_ns"][r]))
    caller_rows = sorted(caller_rows, key=lambda r: c["start_ns"][r])
    every = agent_rows + caller_rows
    origin = min(c["start_ns"][r] for r in every)
    gaps = [(name, c["start_ns"][r], ms) for r in agent_rows for name, ms in gap_rows.get(r, ())]
    origin = min([origin] + [round(start - ms * 1e6) for _, start, ms in gaps])

    def at(ns: int | float) -> float:
        return round(float(ns - origin) / 1e6, 3)

    rows: list[Row] = []
    for r in agent_rows:
        name = s[c["stage"][r]]
        metrics = index.metrics(r)
        marks = tuple(Mark("first byte", at(c["start_ns"][r] + fb * 1e6))
                      for m, fb in metrics if m == "first_byte_ms" and fb != NOTHING)
        rows.append(Row(name, s[c["name"][r]], _row_kind(name, bool(c["bar"][r])),
                        at(c["start_ns"][r]), at(c["end_ns"][r]), table.trace_id(r),
                        c["flags"][r], marks, metrics))
    heard = []
    for r in caller_rows:
        name, metrics = s[c["stage"][r]], index.metrics(r)
        measured = dict(metrics)
        start, end = at(c["start_ns"][r]), at(c["end_ns"][r])
        heard.append(Heard(name, s[c["turn"][r]], start, end,
                           float(measured.get("latency_ms", end - start)), _outcome(c["flags"][r]),
                           table.trace_id(r), _heard(name, start, end, c["flags"][r], measured),
                           metrics))
    tails = []
    for bar in (r for r in rows if r.stage == "barge_in" and r.kind == "bar"):
        cancel = bar.marks[0].at_ms if bar.marks else bar.end_ms
        for h in heard:
            if h.stage == "caller.barge_in" and h.start_ms - 50 <= bar.start_ms <= h.end_ms \
                    and h.end_ms > cancel:
                tails.append(Tail(cancel, h.end_ms))
    traces = tuple(dict.fromkeys(t for t in [*(r.trace_id for r in rows),
                                             *(h.trace_id for h in heard)] if t))
    test, session, turn = key if key is not None else (c["test"][row], c["session"][row],
                                                       c["turn"][row])
    return TurnTimeline(stage, metric, value, flags, s[test], s[session], s[turn], traces, origin,
                        tuple(rows), tuple(Gap(n, at(start - ms * 1e6), at(start))
                                           for n, start, ms in gaps),
                        tuple(heard), tuple(tails))


def _gap_rows(samples: SampleSet, rows: Iterable[int]) -> dict[int, list[tuple[str, float]]]:
    """Gap samples (stage, ms) by the row of their later bar, for ``rows`` only."""
    gap_ids = [i for i, name in enumerate(samples.names) if name.startswith("gap.")]
    wanted = np.fromiter(rows, dtype=np.int64)
    mask = np.isin(samples.stage, gap_ids) & np.isin(samples.row, wanted)
    out: dict[int, list[tuple[str, float]]] = {}
    for stage, value, row in zip(samples.stage[mask].tolist(), samples.value[mask].tolist(),
                                 samples.row[mask].tolist()):
        out.setdefault(row, []).append((samples.names[stage], value))
    return out


def worst_turns_by_key(table: SpanTable, keys: Sequence[tuple[str, str | None]],
                       n: int = DEFAULT_TURNS, *, samples: SampleSet | None = None,
                       ) -> dict[Key, tuple[TurnTimeline, ...]]:
    """:func:`worst_turns` for several (stage, metric) keys, grouping the table once.

    ``samples`` is the table's :func:`~pytest_voicelatency.spans.samples.derive` when the caller
    already has it (it is derived otherwise). A ``None`` metric is the stage's default.
    """
    with table.frozen():
        samples = samples if samples is not None else derive(table)
        index = _Index(table, samples)
        picked: dict[Key, list[tuple[float, int, int]]] = {}
        for stage, metric in keys:
            selection = samples.select(stage, metric)
            order = np.lexsort((selection.recorded, selection.values))[::-1]
            seen: set[object] = set()
            chosen: list[tuple[float, int, int]] = []
            for i in order.tolist():
                row = int(selection.rows[i])
                turn = index.turn_key(row) or ("row", row)
                if turn in seen:
                    continue
                seen.add(turn)
                chosen.append((float(selection.recorded[i]), int(selection.flags[i]), row))
                if len(chosen) >= n:
                    break
            picked[(stage, selection.metric)] = chosen
        wanted = {r for chosen in picked.values() for _, _, row in chosen
                  for r in index.rows_of(row)[1]}
        gap_rows = _gap_rows(samples, wanted)
        return {key: tuple(_timeline(index, key[0], key[1], value, flags, row, gap_rows)
                           for value, flags, row in chosen)
                for key, chosen in picked.items()}


def worst_turns(table: SpanTable, stage: str, metric: str | None = None,
                n: int = DEFAULT_TURNS, *, samples: SampleSet | None = None,
                ) -> tuple[TurnTimeline, ...]:
    """The turns of the ``n`` worst samples of ``stage``/``metric`` (distinct turns, worst first;
    missed and censored samples count as worst), as timelines (see the module docstring)."""
    return next(iter(worst_turns_by_key(table, [(stage, metric)], n, samples=samples).values()))
