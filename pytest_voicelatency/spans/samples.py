"""From span rows to samples: one number per (span, metric), plus the gaps between the bars.

Pure functions over a :class:`~pytest_voicelatency.spans.rows.SpanTable`; no OpenTelemetry, no
pytest.

* Every metric of every voice span is a sample of its stage.
* **Gaps**: within one turn (same test, ``session_id`` and ``turn_id``), bars are sorted by start
  time; for each adjacent pair the time not covered by any earlier bar becomes a sample of stage
  ``gap.<previous>_to_<next>``, metric ``duration_ms`` (0 when they touch or overlap). Turn
  parents and black-box caller spans are not bars.
* **Barge-in from two spans** (frameworks that have no barge-in span, e.g. LiveKit Agents): for
  each ``speaking.user`` span that starts inside a ``speaking.agent`` span of the same test and
  session, a sample of ``barge_in`` ``silence_ms`` = end of that agent span − start of the user
  span (the first such user span per agent span). Like the caller's ``caller.barge_in``, an
  agent that keeps talking through the interruption gives the rest of its speech, not no sample.
  It lives here, not at the span boundary, because it needs both spans and they end in any order.
* ``first_byte_ms == -1`` means "produced nothing": such samples are counted, never averaged in.
* An *invalid* value (the span boundary records a metric the agent set to something that is no
  latency, e.g. −250, NaN, ``"120"`` or ``True``, as NaN) is counted per (stage, metric) in
  ``Selection.invalid`` and left out of ``values``: a verdict on that metric reports it, and the
  metric stays the stage's default (never a silent switch to ``duration_ms``).
* A session marked discarded (a :data:`DISCARDED` span: an attempt the caller retried) gives
  no samples at all, the agent's included.
* A *missed* or *censored* measurement (see :mod:`pytest_voicelatency.spans.otel`) counts as +inf in
  quantiles, so it can only make a gate fail; its recorded number (the bound) is kept in
  ``Selection.recorded``. *Unreliable* samples count normally but are counted, so reports and
  gates can say the run could not keep time.

Each stage has a default metric (:func:`default_metric`), so ``assert_p95(stage="barge_in", ...)``
needs no ``metric=``.

>>> from pytest_voicelatency.spans.rows import SpanTable
>>> from pytest_voicelatency.spans.record import SpanRecord
>>> t = SpanTable()
>>> t.add(SpanRecord("audio.asr", "asr", "s", "1", 7, 0, 100_000_000, (), True))
>>> t.add(SpanRecord("audio.llm", "llm", "s", "1", 7, 130_000_000, 400_000_000, (), True))
>>> derive(t).select("gap.asr_to_llm", "duration_ms").values.tolist()
[30.0]
"""

from __future__ import annotations

import fnmatch
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_voicelatency.spans.record import CENSORED, MISSED, NOTHING, UNRELIABLE
from pytest_voicelatency.spans.rows import SpanTable

__all__ = ["Sample", "Selection", "SampleSet", "derive", "default_metric", "DEFAULT_METRICS",
           "DISCARDED", "SPEAKING_AGENT", "SPEAKING_USER"]

#: Stage of a marker span saying "drop every span of this session in this test": the caller
#: emits one for an attempt it retried because it could not keep time, so the agent's spans of
#: that attempt leave the samples with the caller's own.
DISCARDED = "caller.discarded"

#: Non-bar stages of the agent's and the user's speech windows (read from LiveKit's
#: ``agent_speaking`` / ``user_speaking``, or native spans of these stages): barge-ins come from
#: them.
SPEAKING_AGENT, SPEAKING_USER = "speaking.agent", "speaking.user"

#: Default metric per stage pattern, first match wins; otherwise ``first_byte_ms`` when the
#: stage has it, else ``duration_ms``.
DEFAULT_METRICS: list[tuple[str, str]] = [
    ("barge_in", "silence_ms"),
    ("caller.response", "latency_ms"),
    ("caller.barge_in", "latency_ms"),
    ("caller.playout", "jitter_ms"),
    ("caller.pacing", "lateness_p99_ms"),
    ("handoff.*", "duration_ms"),
    ("gap.*", "duration_ms"),
    ("turn", "duration_ms"),
    # the caller's interruption decisions, one 0/1 sample per sound made over the agent: a
    # quantile below 1 is a rate bound ("barge_in.missed: p99 < 1" = under 1 % missed)
    ("barge_in.missed", "missed"),
    ("barge_in.false", "false"),
]


def default_metric(stage: str, available: frozenset[str] | set[str] = frozenset()) -> str:
    """The metric an assertion or table uses for ``stage`` when none is named."""
    for pattern, metric in DEFAULT_METRICS:
        if fnmatch.fnmatchcase(stage, pattern):
            return metric
    if not available or "first_byte_ms" in available:
        return "first_byte_ms"
    if "transcription_delay_ms" in available:  # LiveKit's user_turn: no first partial on spans
        return "transcription_delay_ms"
    return "duration_ms"


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured value with the identity needed to find it again in a trace."""

    stage: str
    metric: str
    value: float
    session_id: str
    turn_id: str
    trace_id: str
    test_id: str
    flags: int = 0
    #: the instants (OpenTelemetry epoch nanoseconds, as in the trace) of the span the sample
    #: comes from — for a gap, the bar that ends it; for the caller's samples, the measured
    #: window on the call's clock — to join it with the agent's own logs (0 when unknown)
    start_ns: int = 0
    end_ns: int = 0

    @property
    def missed(self) -> bool:
        return bool(self.flags & MISSED)

    @property
    def censored(self) -> bool:
        return bool(self.flags & CENSORED)

    @property
    def unreliable(self) -> bool:
        return bool(self.flags & UNRELIABLE)


@dataclass(frozen=True)
class Selection:
    """The samples of one stage and metric.

    ``values`` is what quantiles use: produced-nothing samples excluded, missed and censored
    ones as +inf. ``recorded`` holds the numbers as recorded (a censored sample's lower bound).
    """

    stage: str
    metric: str
    values: np.ndarray
    recorded: np.ndarray
    rows: np.ndarray
    flags: np.ndarray
    nothing: int
    sample_set: SampleSet
    invalid: int = 0

    @property
    def n(self) -> int:
        return int(self.values.size)

    def _count(self, flag: int) -> int:
        return int(np.count_nonzero(self.flags & flag))

    @property
    def missed(self) -> int:
        return self._count(MISSED)

    @property
    def censored(self) -> int:
        return self._count(CENSORED)

    @property
    def unreliable(self) -> int:
        return self._count(UNRELIABLE)

    def worst(self, k: int = 3) -> list[Sample]:
        """The ``k`` largest samples (missed/censored first), with session/turn/trace ids."""
        if self.values.size == 0:
            return []
        order = np.lexsort((self.recorded, self.values))[::-1][:k]
        return [self.sample_set.sample(self.stage, self.metric, float(self.recorded[i]),
                                       int(self.rows[i])) for i in order]


class SampleSet:
    """All samples of a table, as parallel numpy columns (stage, metric, value, span row)."""

    def __init__(self, table: SpanTable, names: list[str], stage: np.ndarray, metric: np.ndarray,
                 value: np.ndarray, row: np.ndarray) -> None:
        self.table = table
        self.names = names
        self.stage = stage
        self.metric = metric
        self.value = value
        self.row = row
        self._ids = {n: i for i, n in enumerate(names)}
        self._flags: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.value.size)

    def metrics_by_stage(self) -> dict[str, list[str]]:
        """Every stage seen, with the metrics it has (sorted)."""
        pairs = (np.unique(np.stack([self.stage, self.metric]), axis=1) if len(self)
                 else np.empty((2, 0), int))
        out: dict[str, list[str]] = {}
        for s, m in pairs.T:
            out.setdefault(self.names[s], []).append(self.names[m])
        return {k: sorted(v) for k, v in sorted(out.items())}

    def select(self, stage: str, metric: str | None = None) -> Selection:
        """The samples of ``stage`` for ``metric`` (default: the stage's default metric)."""
        s = self._ids.get(stage, -1)
        stage_mask = self.stage == s
        if metric is None:
            available = {self.names[m] for m in np.unique(self.metric[stage_mask])}
            metric = default_metric(stage, available)
        m = self._ids.get(metric, -1)
        mask = stage_mask & (self.metric == m)
        recorded, rows = self.value[mask], self.row[mask]
        nothing = 0
        valid = ~np.isnan(recorded)
        invalid = int(recorded.size - np.count_nonzero(valid))
        if invalid:
            recorded, rows = recorded[valid], rows[valid]
        if metric == "first_byte_ms":
            produced = recorded != NOTHING
            nothing = int(recorded.size - np.count_nonzero(produced))
            recorded, rows = recorded[produced], rows[produced]
        flags = self.flags[rows] if rows.size else np.zeros(0, np.int8)
        values = np.where(flags & (MISSED | CENSORED), np.inf, recorded)
        return Selection(stage, metric, values, recorded, rows, flags, nothing, self, invalid)

    @property
    def flags(self) -> np.ndarray:
        """Flags per span row (see :mod:`pytest_voicelatency.spans.otel`)."""
        if self._flags is None:
            self._flags = _column(self.table.columns["flags"], np.int8)
        return self._flags

    def sample(self, stage: str, metric: str, value: float, row: int) -> Sample:
        c, s = self.table.columns, self.table.strings
        return Sample(stage, metric, value, s[c["session"][row]], s[c["turn"][row]],
                      self.table.trace_id(row), s[c["test"][row]], c["flags"][row],
                      c["start_ns"][row], c["end_ns"][row])

    def __iter__(self) -> Iterator[Sample]:
        """Every sample with a value (invalid ones are only counted, see ``select``)."""
        for i in range(len(self)):
            if self.value[i] != self.value[i]:
                continue
            yield self.sample(self.names[self.stage[i]], self.names[self.metric[i]],
                              float(self.value[i]), int(self.row[i]))


def _discarded(table: SpanTable, ids: dict[str, int]) -> set[tuple[int, int]]:
    """The (test, session) pairs marked discarded."""
    marker = ids.get(DISCARDED)
    if marker is None:
        return set()
    c = table.columns
    return {(c["test"][r], c["session"][r]) for r, s in enumerate(c["stage"]) if s == marker}


def _gaps(table: SpanTable, names: list[str], ids: dict[str, int],
          discarded: set[tuple[int, int]]) -> tuple[list[int], list[float], list[int]]:
    """Gap samples (stage id, value ms, row of the later bar) for every turn in the table."""
    c = table.columns
    empty = ids.get("", -1)
    turns: dict[tuple[int, int, int], list[int]] = {}
    columns = zip(c["test"], c["session"], c["turn"], c["bar"])
    for row, (test, session, turn, bar) in enumerate(columns):
        if bar and session != empty and turn != empty and (test, session) not in discarded:
            turns.setdefault((test, session, turn), []).append(row)
    starts, ends, stages = c["start_ns"], c["end_ns"], c["stage"]
    out_stage: list[int] = []
    out_value: list[float] = []
    out_row: list[int] = []
    for rows in turns.values():
        if len(rows) < 2:
            continue
        rows.sort(key=lambda r: (starts[r], ends[r]))
        covered = ends[rows[0]]
        for prev, nxt in zip(rows, rows[1:]):
            name = f"gap.{names[stages[prev]]}_to_{names[stages[nxt]]}"
            index = ids.get(name)
            if index is None:
                index = ids[name] = len(names)
                names.append(name)
            out_stage.append(index)
            out_value.append(max(0, starts[nxt] - covered) / 1e6)
            out_row.append(nxt)
            covered = max(covered, ends[nxt])
    return out_stage, out_value, out_row


def _barge_ins(table: SpanTable, ids: dict[str, int],
               discarded: set[tuple[int, int]]) -> tuple[list[float], list[int]]:
    """Barge-in samples (value ms, row of the agent's speaking span) from speech windows."""
    agent, user = ids.get(SPEAKING_AGENT), ids.get(SPEAKING_USER)
    if agent is None or user is None:
        return [], []
    c = table.columns
    windows: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    for row, (test, session, stage) in enumerate(zip(c["test"], c["session"], c["stage"])):
        if (stage == agent or stage == user) and (test, session) not in discarded:
            pair = windows.setdefault((test, session), ([], []))
            pair[0 if stage == agent else 1].append(row)
    starts, ends = c["start_ns"], c["end_ns"]
    values: list[float] = []
    rows: list[int] = []
    for agent_rows, user_rows in windows.values():
        user_starts = sorted(starts[r] for r in user_rows)
        for a in sorted(agent_rows, key=lambda r: starts[r]):
            onset = next((u for u in user_starts if starts[a] <= u < ends[a]), None)
            if onset is not None:
                values.append((ends[a] - onset) / 1e6)
                rows.append(a)
    return values, rows


def _column(column: array[Any], dtype: type[np.generic]) -> np.ndarray:
    """A numpy copy of an array column (a view would stop the table from growing)."""
    return np.frombuffer(column, dtype=dtype).copy() if len(column) else np.empty(0, dtype)


def derive(table: SpanTable) -> SampleSet:
    """All samples of ``table``: its span metrics followed by the derived gap samples."""
    c = table.columns
    names = list(table.strings)
    ids = {n: i for i, n in enumerate(names)}
    rows, stage_col = _column(c["m_row"], np.int32), _column(c["stage"], np.int32)
    metric, value = _column(c["m_name"], np.int32), _column(c["m_value"], np.float64)
    discarded = _discarded(table, ids)
    if discarded:
        test, session = _column(c["test"], np.int32), _column(c["session"], np.int32)
        pairs = np.array(sorted(discarded), dtype=np.int64)
        row_key = test.astype(np.int64) * (len(names) + 1) + session
        drop = np.isin(row_key, pairs[:, 0] * (len(names) + 1) + pairs[:, 1])
        keep = ~drop[rows]
        rows, metric, value = rows[keep], metric[keep], value[keep]
    gap_stage, gap_value, gap_row = _gaps(table, names, ids, discarded)
    barge_value, barge_row = _barge_ins(table, ids, discarded)
    duration, barge_in, silence = (_name_id(names, ids, n)
                                   for n in ("duration_ms", "barge_in", "silence_ms"))
    return SampleSet(
        table, names,
        np.concatenate([stage_col[rows], np.asarray(gap_stage, dtype=np.int32),
                        np.full(len(barge_row), barge_in, dtype=np.int32)]),
        np.concatenate([metric, np.full(len(gap_stage), duration, dtype=np.int32),
                        np.full(len(barge_row), silence, dtype=np.int32)]),
        np.concatenate([value, np.asarray(gap_value, dtype=np.float64),
                        np.asarray(barge_value, dtype=np.float64)]),
        np.concatenate([rows, np.asarray(gap_row, dtype=np.int32),
                        np.asarray(barge_row, dtype=np.int32)]),
    )


def _name_id(names: list[str], ids: dict[str, int], name: str) -> int:
    """The id of ``name`` in the sample set's names, added if new."""
    index = ids.get(name)
    if index is None:
        index = ids[name] = len(names)
        names.append(name)
    return index
