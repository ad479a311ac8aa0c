"""Specification of the results model: built once, immutable, and the same after a round trip."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from helpers import record, table_of

from pytest_voicelatency.errors import VoiceLatencyError
from pytest_voicelatency.gate.thresholds import parse_thresholds
from pytest_voicelatency.report.cells import ms
from pytest_voicelatency.report.junit import junit_properties
from pytest_voicelatency.report.markdown import render
from pytest_voicelatency.report.terminal import table_text
from pytest_voicelatency.results.codec import dumps
from pytest_voicelatency.results.model import Results
from pytest_voicelatency.results.validate import load, loads
from pytest_voicelatency.run.finish import finish
from pytest_voicelatency.run.settings import Settings
from pytest_voicelatency.spans.record import CENSORED, UNRELIABLE
from pytest_voicelatency.spans.samples import derive
from pytest_voicelatency.stats.distribution import Distribution, Distributions


def a_table():
    return table_of(record("asr", 0, 100, session="s1", turn="1"),
                    record("llm", 130, 400, session="s1", turn="1")._replace(flags=UNRELIABLE),
                    record("asr", 0, 50, session="s1", turn="2")._replace(flags=CENSORED),
                    test="t.py::test_a")


def test_the_results_and_their_distributions_cannot_be_changed():
    """A frozen model: a variant is a replace() copy, and the values array is read-only."""
    d = Distribution("asr", "first_byte_ms", [2.0, 1.0][::-1])
    results = Results(Distributions({d.key: d}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        results.tests = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        d.values[0] = 99.0
    with pytest.raises(TypeError):
        results.distributions[("tts", "first_byte_ms")] = d  # type: ignore[index]


def test_finish_builds_the_results_once_with_typed_verdicts(tmp_path):
    """The end of a run holds the GateReport itself (not dicts), and the file it wrote reads back
    to the same distributions, environment, settings and samples."""
    settings = Settings(thresholds=tuple(parse_thresholds(["llm: p95 < 1000"])),
                        json_path=str(tmp_path / "run.json"))
    done = finish(a_table(), 1, settings)
    results = done.results
    assert results.gates is not None and results.gates.results[0].outcome == "pass"
    assert results.notes == (f"wrote {tmp_path / 'run.json'}",) and not results.errors
    back = load(tmp_path / "run.json")
    assert set(back.distributions) == set(results.distributions)
    for key, d in results.distributions.items():
        assert back.distributions[key].values.tolist() == d.values.tolist()
        assert (back.distributions[key].censored, back.distributions[key].unreliable) == \
            (d.censored, d.unreliable)
    assert dict(back.environment) == dict(results.environment)
    assert dict(back.settings) == dict(results.settings)
    assert back.samples == results.samples  # typed samples, flags and identities included
    assert back.gates is None and back.comparison is None  # judged again from the above


def test_a_file_reads_back_to_the_same_document():
    """dumps(loads(text)) == text for a run without verdicts: nothing is lost or reordered."""
    results = dataclasses.replace(finish(a_table(), 1, Settings()).results,
                                  samples=tuple(derive(a_table())))
    text = dumps(results)
    assert dumps(loads(text)) == text


def test_a_corrupt_sample_listing_is_refused_naming_the_place(tmp_path):
    """Samples are typed too: an unknown flag is refused with its JSON path."""
    doc = json.loads(dumps(finish(a_table(), 1, Settings()).results))
    doc["samples"] = [{"stage": "asr", "metric": "duration_ms", "value": 1.0, "flags": ["slow"],
                       "test": "t", "session": "s", "turn": "1", "trace": None}]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(VoiceLatencyError, match=r"corrupt at samples\[0\]\.flags\[0\]: 'slow'"):
        load(path)


def test_every_writer_prints_milliseconds_the_same_way():
    """One cell rule: NaN is '-', +inf (missed or censored) is 'missed', else 0.1 ms."""
    assert (ms(math.nan), ms(math.inf), ms(12.345)) == ("-", "missed", "12.3")
    missed = Distribution("asr", "first_byte_ms", [math.inf], missed=1)
    empty = Distribution("tts", "first_byte_ms", [], nothing=2)
    results = Results(Distributions({missed.key: missed, empty.key: empty}))
    table, markdown = table_text(results), render(results)
    assert "missed" in table and "| `asr` | `first_byte_ms` | 1 | missed | missed (" in markdown
    assert "| `tts` | `first_byte_ms` | 0 | - | - |" in markdown and "–" not in markdown
    properties = dict(junit_properties(derive(table_of(record("asr", 0, 10)))))
    assert properties["voice_latency.asr.duration_ms.p95"] == ms(10.0) == "10.0"


def test_a_distribution_made_from_samples_is_rounded_to_the_microsecond():
    """A run and its file then hold the very same numbers."""
    samples = derive(table_of(record("asr", 0, 1, metrics={"first_byte_ms": 0.1234567}, bar=False)))
    d = Distributions.of(samples).select("asr", "first_byte_ms")
    assert d.values.tolist() == [0.123] and np.all(np.diff(d.values) >= 0)


def test_an_assertion_made_many_times_in_one_test_keeps_its_worst_outcome():
    """A hypothesis test asserts once per example: the results keep one check per test and
    rule, with the worst outcome, the largest estimate and every sample counted."""
    from pytest_voicelatency.results.model import assertion_checks

    raw = [("t::a", "asr", "first_byte_ms", "p95 < 200", "pass", 120.0, 20),
           ("t::a", "asr", "first_byte_ms", "p95 < 200", "fail", 250.0, 20),
           ("t::a", "asr", "first_byte_ms", "p95 < 200", "pass", float("nan"), 0),
           ("t::b", "asr", "first_byte_ms", "p95 < 200", "pass", 90.0, 20),
           ("t::c", "asr", "bad", "row")]                                  # malformed: skipped
    a, b = assertion_checks(raw)
    assert (a.test, a.outcome, a.value_ms, a.n, a.times) == ("t::a", "fail", 250.0, 40, 3)
    assert (b.test, b.outcome, b.failed) == ("t::b", "pass", False)


def test_a_baseline_reads_back_with_the_tests_its_samples_came_from():
    """A baseline (no sample listing) names its tests; loading keeps them, so a baseline loaded
    and written again (the CLI's merge) can still refuse a narrower run."""
    results = finish(a_table(), 1, Settings()).results
    assert results.test_ids == ("t.py::test_a",)
    text = dumps(results, with_samples=False)
    back = loads(text)
    assert back.test_ids == ("t.py::test_a",)
    assert dumps(back, with_samples=False) == text
    doc = json.loads(text)
    doc["test_ids"] = ["t.py::test_a", 3]
    with pytest.raises(VoiceLatencyError, match=r"test_ids\[1\]"):
        loads(json.dumps(doc))


def test_merged_shards_name_every_test_of_every_shard():
    from pytest_voicelatency.results.merge import merge

    a = loads(dumps(finish(a_table(), 1, Settings()).results, with_samples=False))
    other = table_of(record("asr", 0, 80, session="s2", turn="1"), test="t.py::test_b")
    b = loads(dumps(finish(other, 1, Settings()).results, with_samples=False))
    b = dataclasses.replace(b, created="later")  # another run, not the same file twice
    merged, _ = merge([a, b])
    assert merged.test_ids == ("t.py::test_a", "t.py::test_b")
    unknown = dataclasses.replace(b, test_ids=None)  # an older file: the union is unknown
    assert merge([a, unknown])[0].test_ids is None
