"""A compact, append-only, columnar table of span records.

A long latency run can finish hundreds of thousands of spans; keeping every OpenTelemetry span
object would cost kilobytes each. :class:`SpanTable` keeps one row per voice span in typed
arrays (strings interned once per table, trace ids as two 64-bit integers), about a hundred and
fifty bytes per span with its metrics.

It is also the unit that travels: :meth:`SpanTable.to_payload` gives plain lists and bytes that
pytest-xdist can serialise on a test report, and :meth:`SpanTable.extend_payload` merges them on
the controller. Thread-safe for concurrent :meth:`add` calls.

>>> from pytest_voicelatency.spans.record import SpanRecord
>>> table = SpanTable()
>>> table.add(SpanRecord("audio.llm", "llm", "s", "t", 0xab, 0, 5_000_000,
...                      (("first_byte_ms", 2.0),), True))
>>> len(table), table.stage_names()
(1, ['llm'])
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pytest_voicelatency.errors import VoiceLatencyError
from pytest_voicelatency.spans.record import SampleFlag, SpanRecord

__all__ = ["SpanTable", "PAYLOAD_VERSION", "MAX_PROBLEMS", "MAX_UNREAD"]

PAYLOAD_VERSION = 1
MAX_PROBLEMS = 200  # distinct problem texts kept per table; the rest are only counted
MAX_UNREAD = 64  # distinct (name, scope) pairs of unread spans kept per table; the rest counted

_ROW_COLUMNS = {"test": "i", "name": "i", "stage": "i", "session": "i", "turn": "i",
                "trace_hi": "Q", "trace_lo": "Q", "start_ns": "q", "end_ns": "q", "bar": "b",
                "flags": "b"}
_METRIC_COLUMNS = {"m_row": "i", "m_name": "i", "m_value": "d"}


class SpanTable:
    """Columnar store of :class:`~pytest_voicelatency.spans.otel.SpanRecord` rows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.strings: list[str] = []
        self._ids: dict[str, int] = {}
        self.columns: dict[str, array[Any]] = {
            k: array(t) for k, t in (_ROW_COLUMNS | _METRIC_COLUMNS).items()}
        self.problems: list[str] = []
        self.problem_count = 0
        #: spans seen but read as no voice stage: (name, instrumentation scope) -> count
        self.unread: dict[tuple[str, str], int] = {}
        self.unread_count = 0

    def _intern(self, text: str) -> int:
        index = self._ids.get(text)
        if index is None:
            index = self._ids[text] = len(self.strings)
            self.strings.append(text)
        return index

    def __len__(self) -> int:
        return len(self.columns["stage"])

    def add(self, record: SpanRecord, test: str = "") -> None:
        """Append one record (thread-safe). Runs once per span: kept lean on purpose."""
        ids, intern = self._ids, self._intern
        with self._lock:
            c = self.columns
            row = len(c["stage"])
            c["test"].append(ids[test] if test in ids else intern(test))
            c["name"].append(ids[record.name] if record.name in ids else intern(record.name))
            c["stage"].append(ids[record.stage] if record.stage in ids else intern(record.stage))
            session, turn = record.session_id, record.turn_id
            c["session"].append(ids[session] if session in ids else intern(session))
            c["turn"].append(ids[turn] if turn in ids else intern(turn))
            trace = record.trace_id
            c["trace_hi"].append(trace >> 64)
            c["trace_lo"].append(trace & 0xFFFF_FFFF_FFFF_FFFF)
            c["start_ns"].append(record.start_ns)
            c["end_ns"].append(record.end_ns)
            c["bar"].append(record.bar)
            c["flags"].append(record.flags)
            m_row, m_name, m_value = c["m_row"], c["m_name"], c["m_value"]
            for metric, value in record.metrics:
                m_row.append(row)
                m_name.append(ids[metric] if metric in ids else intern(metric))
                m_value.append(value)
            for problem in record.problems:
                self._note_problem(problem)

    def rename_session(self, trace_id: int, old: str, new: str) -> int:
        """Give the rows of one trace read under session ``old`` the session ``new`` (a
        framework's trace root names the session after its children ended); returns how many."""
        with self._lock:
            old_id = self._ids.get(old)
            if old_id is None or old == new:
                return 0
            new_id = self._intern(new)
            c = self.columns
            hi, lo = trace_id >> 64, trace_id & 0xFFFF_FFFF_FFFF_FFFF
            session, trace_hi, trace_lo = c["session"], c["trace_hi"], c["trace_lo"]
            renamed = 0
            for row in range(len(session)):
                if session[row] == old_id and trace_lo[row] == lo and trace_hi[row] == hi:
                    session[row] = new_id
                    renamed += 1
            return renamed

    def note_unread(self, name: str, scope: str, count: int = 1) -> None:
        """Count a span that no convention read (its name and scope are kept, up to a cap)."""
        with self._lock:
            self._note_unread(name, scope, count)

    def _note_unread(self, name: str, scope: str, count: int) -> None:
        self.unread_count += count
        key = (name, scope)
        if key in self.unread or len(self.unread) < MAX_UNREAD:
            self.unread[key] = self.unread.get(key, 0) + count

    def unread_snapshot(self) -> tuple[int, dict[tuple[str, str], int], int]:
        """(voice spans kept, unread (name, scope) -> count, unread total), taken together."""
        with self._lock:
            return len(self.columns["stage"]), dict(self.unread), self.unread_count

    def note_problem(self, problem: str) -> None:
        """Record a problem with the spans (kept up to a cap, all counted); thread-safe."""
        with self._lock:
            self._note_problem(problem)

    def _note_problem(self, problem: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS and problem not in self.problems:
            self.problems.append(problem)

    def string(self, index: int) -> str:
        return self.strings[index]

    def trace_id(self, row: int) -> str:
        """The row's trace id as 32 hex digits ("" when the span had none)."""
        c = self.columns
        value = (c["trace_hi"][row] << 64) | c["trace_lo"][row]
        return format(value, "032x") if value else ""

    def stage_names(self) -> list[str]:
        """Distinct stages present, in first-seen order."""
        seen = dict.fromkeys(self.columns["stage"])
        return [self.strings[i] for i in seen]

    def caller_clocks(self) -> tuple[int, int]:
        """(calls measured on a virtual clock, calls on real time): the caller's sessions, by
        the :attr:`SampleFlag.VIRTUAL` bit of their ``caller.*`` spans."""
        virtual: set[tuple[int, int]] = set()
        real: set[tuple[int, int]] = set()
        with self._lock:
            c, s = self.columns, self.strings
            for row in range(len(c["stage"])):
                if s[c["stage"][row]].startswith("caller."):
                    key = (c["test"][row], c["session"][row])
                    (virtual if c["flags"][row] & SampleFlag.VIRTUAL else real).add(key)
        return len(virtual), len(real - virtual)

    def records(self) -> Iterator[SpanRecord]:
        """Rebuild the records (for reports and debugging; the analysis works on columns)."""
        c, s = self.columns, self.strings
        metrics: list[list[tuple[str, float]]] = [[] for _ in range(len(self))]
        for row, name, value in zip(c["m_row"], c["m_name"], c["m_value"]):
            metrics[row].append((s[name], value))
        for row in range(len(self)):
            yield SpanRecord(s[c["name"][row]], s[c["stage"][row]], s[c["session"][row]],
                             s[c["turn"][row]], (c["trace_hi"][row] << 64) | c["trace_lo"][row],
                             c["start_ns"][row],
                             c["end_ns"][row], tuple(metrics[row]), bool(c["bar"][row]), (),
                             c["flags"][row])

    def to_payload(self) -> dict[str, Any]:
        """Plain data (lists, bytes, ints) that pytest-xdist can serialise on a report."""
        with self._lock:
            return {"version": PAYLOAD_VERSION, "strings": list(self.strings),
                    "columns": {k: v.tobytes() for k, v in self.columns.items()},
                    "problems": list(self.problems), "problem_count": self.problem_count,
                    "unread": [[n, s, c] for (n, s), c in self.unread.items()],
                    "unread_count": self.unread_count}

    def extend_payload(self, payload: Mapping[str, Any], test: str | None = None) -> None:
        """Merge a payload made by :meth:`to_payload` (possibly in another process).

        ``test`` overrides the payload's test ids (the controller knows the report's node id).
        """
        if not isinstance(payload, Mapping) or payload.get("version") != PAYLOAD_VERSION:
            raise VoiceLatencyError(
                f"voice latency payload has version "
                f"{getattr(payload, 'get', lambda _: None)('version')!r}, this plugin reads "
                f"version {PAYLOAD_VERSION}: every xdist worker must run the same "
                f"pytest-voicelatency version")
        strings: list[str] = payload["strings"]
        incoming = {k: array(t, payload["columns"][k])
                    for k, t in (_ROW_COLUMNS | _METRIC_COLUMNS).items()}
        with self._lock:
            remap = [self._intern(text) for text in strings]
            forced = self._intern(test) if test is not None else None
            c = self.columns
            offset = len(c["stage"])
            for key in ("name", "stage", "session", "turn"):
                c[key].extend(remap[i] for i in incoming[key])
            if forced is None:
                c["test"].extend(remap[i] for i in incoming["test"])
            else:
                c["test"].extend([forced] * len(incoming["stage"]))
            for key in ("trace_hi", "trace_lo", "start_ns", "end_ns", "bar", "flags", "m_value"):
                c[key].extend(incoming[key])
            c["m_row"].extend(offset + r for r in incoming["m_row"])
            c["m_name"].extend(remap[i] for i in incoming["m_name"])
            for problem in payload.get("problems", ()):
                self._note_problem(problem)
            self.problem_count += max(0, int(payload.get("problem_count", 0))
                                      - len(payload.get("problems", ())))
            kept = 0
            for name, scope, count in payload.get("unread", ()):
                self._note_unread(str(name), str(scope), int(count))
                kept += int(count)
            self.unread_count += max(0, int(payload.get("unread_count", 0)) - kept)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Hold off writers while a reader walks the columns."""
        with self._lock:
            yield

    def nbytes(self) -> int:
        """Bytes held by the columns (strings excluded): the table's marginal cost per row."""
        return sum(col.itemsize * len(col) for col in self.columns.values())
