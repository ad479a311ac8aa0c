"""Specification of the compact span table: payloads, merging and thread safety."""

from __future__ import annotations

import threading

import pytest

from pytest_voicelatency.errors import VoiceLatencyError
from pytest_voicelatency.spans.rows import SpanTable
from pytest_voicelatency.spans.samples import derive
from tests.helpers import record, table_of


def test_payload_round_trip_keeps_every_row_and_metric():
    """to_payload → extend_payload reproduces the same records."""
    t = table_of(record("asr", 0, 100, metrics={"first_byte_ms": 12.5}), record("llm", 100, 300))
    merged = SpanTable()
    merged.extend_payload(t.to_payload())
    assert list(merged.records()) == list(t.records())


def test_merging_overrides_test_ids_with_the_report_node_id():
    """The controller attributes a worker's payload to the report's node id."""
    merged = SpanTable()
    merged.extend_payload(table_of(record("asr", 0, 1), test="w").to_payload(),
                          test="tests/a.py::t")
    assert derive(merged).select("asr", "duration_ms").worst(1)[0].test_id == "tests/a.py::t"


def test_payload_is_plain_data_for_xdist():
    """Only dict/list/str/int/bytes: what execnet can serialise."""
    payload = table_of(record("asr", 0, 1)).to_payload()
    allowed = (dict, list, str, int, bytes)

    def walk(x):
        assert isinstance(x, allowed), type(x)
        if isinstance(x, dict):
            [walk(v) for v in x.values()]
        if isinstance(x, list):
            [walk(v) for v in x]
    walk(payload)


def test_a_payload_from_another_version_is_refused_by_name():
    """A version mismatch says every worker must run the same plugin version."""
    payload = table_of(record("asr", 0, 1)).to_payload() | {"version": 99}
    with pytest.raises(VoiceLatencyError, match="same pytest-voicelatency version"):
        SpanTable().extend_payload(payload)


def test_concurrent_adds_lose_nothing():
    """Spans may end on many threads at once; every row and metric is kept."""
    t = SpanTable()

    def work(k):
        for i in range(500):
            t.add(record("asr", i, i + 1, turn=f"{k}-{i}", metrics={"first_byte_ms": 1.0}))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    assert len(t) == 4000 and derive(t).select("asr").n == 4000


def test_problems_are_kept_once_and_counted_always():
    """Repeated problems are deduplicated for display but every occurrence counts."""
    from pytest_voicelatency.spans.record import SpanRecord

    t = SpanTable()
    for _ in range(3):
        t.add(SpanRecord("audio.x", "x", "", "", 0, 0, 1, (), True, ("span 'audio.x' has no ids",)))
    assert t.problems == ["span 'audio.x' has no ids"] and t.problem_count == 3


def test_a_row_costs_about_a_hundred_bytes():
    """Columnar storage: rows with four metrics stay far under 300 bytes."""
    t = table_of(*[record("asr", i, i + 1, turn=str(i), metrics={"first_byte_ms": 1.0,
                   "total_ms": 1.0, "final_ms": 2.0}) for i in range(1000)])
    assert t.nbytes() / len(t) < 150
