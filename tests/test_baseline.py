"""Specification of the results/baseline file: contents, round trip, validation, merge, writing."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace

import numpy as np
import pytest
from helpers import record, table_of

from pytest_voicelatency.errors import VoiceLatencyError
from pytest_voicelatency.files import append_text, write_atomic
from pytest_voicelatency.gate.compare import environment_differences
from pytest_voicelatency.results.codec import FORMAT, FORMAT_VERSION, dumps, save
from pytest_voicelatency.results.environment import fingerprint, git_commit
from pytest_voicelatency.results.merge import merge
from pytest_voicelatency.results.model import Results
from pytest_voicelatency.results.validate import load, loads
from pytest_voicelatency.run.facts import Coverage, narrower
from pytest_voicelatency.spans.record import CENSORED, UNRELIABLE
from pytest_voicelatency.spans.samples import Sample, derive
from pytest_voicelatency.stats.distribution import Distribution, Distributions
from pytest_voicelatency.stats.summary import rows


def a_run(**stages: list[float]) -> Results:
    dists = {(s, "duration_ms"): Distribution(s, "duration_ms", np.sort(np.array(v, float)))
             for s, v in stages.items()}
    return Results(Distributions(dists), plugin_version="0.1.0",
                   environment={"python": "3.12.1", "cpu_count": 4, "git_commit": "abc"})


def from_samples(samples, *, tests: int = 0, spans: int = 0, with_samples: bool = False) -> Results:
    """The results of a run made of ``samples`` (as the end of a run builds them)."""
    return Results(Distributions.of(samples), tests=tests, spans=spans,
                   samples=tuple(samples) if with_samples else None)


def test_results_hold_every_sample_with_its_identity_and_flags():
    """--voice-latency-json lists stage, metric, value, flags, test, session, turn, trace id and the
    span's instants (the gap: the bar that ends it)."""
    table = table_of(record("asr", 0, 100, session="s1", turn="7"),
                     record("llm", 130, 400, session="s1", turn="7")._replace(flags=UNRELIABLE),
                     test="test_a.py::test_x")
    run = from_samples(derive(table), tests=1, spans=2, with_samples=True)
    doc = json.loads(dumps(run))
    gap = [s for s in doc["samples"] if s["stage"] == "gap.asr_to_llm"]
    assert gap == [{"stage": "gap.asr_to_llm", "metric": "duration_ms", "value": 30.0,
                    "flags": ["unreliable"], "test": "test_a.py::test_x", "session": "s1",
                    "turn": "7", "trace": "ab" * 16,
                    "start_ns": 130_000_000, "end_ns": 400_000_000}]
    assert {(s["stage"], s["metric"]) for s in doc["samples"]} >= {("asr", "duration_ms"),
                                                                   ("llm", "duration_ms")}
    summary = {(d["stage"], d["metric"]): d for d in doc["distributions"]}
    assert summary[("llm", "duration_ms")]["unreliable"] == 1
    assert summary[("asr", "duration_ms")]["p95"] == 100.0 and doc["spans"] == 2


def test_a_baseline_round_trips_exactly_and_leaves_the_sample_listing_out():
    """Saved without samples, loaded back: same distributions, same quantiles; +inf as null."""
    run = replace(a_run(asr=[1.5, 2.25, 3.0, math.inf]),
                  samples=(Sample("asr", "duration_ms", 1.5, "s", "1", "", "t"),))
    text = dumps(run, with_samples=False)
    assert "samples" not in json.loads(text) and "null" in text
    back = loads(text)
    d = back.distributions.select("asr", "duration_ms")
    assert d.values.tolist() == [1.5, 2.25, 3.0, math.inf] and d.quantile(0.5) == 2.25
    assert back.environment == run.environment and json.loads(text)["version"] == FORMAT_VERSION


def test_censored_and_missed_samples_keep_their_counts(tmp_path):
    """A censored sample stays +inf in the distribution and is counted."""
    table = table_of(record("asr", 0, 50), record("asr", 0, 60, turn="2")._replace(flags=CENSORED))
    run = from_samples(derive(table))
    back = load(save(run, tmp_path / "r.json"))
    d = back.distributions.select("asr", "duration_ms")
    assert d.censored == 1 and d.values.tolist() == [50.0, math.inf]


def test_a_missing_baseline_says_how_to_create_one(tmp_path):
    """The error names the path and the command that writes it."""
    with pytest.raises(VoiceLatencyError, match=r"does not exist.*--voice-latency-save"):
        load(tmp_path / "base.json")


@pytest.mark.parametrize("text, match", [
    ('{"format": ', r"not valid JSON \(.* line 1 column"),
    ("[1, 2]", "not a pytest-voicelatency results file"),
    ('{"format": "other"}', "not a pytest-voicelatency results file"),
    (f'{{"format": "{FORMAT}", "version": "1"}}',
     r"corrupt at version: expected a format version"),
    (f'{{"format": "{FORMAT}", "version": 1, "distributions": [{{"stage": "asr", "metric": "m", '
     '"values": [1, -2]}]}', r"corrupt at distributions\[0\]\.values\[1\]"),
    (f'{{"format": "{FORMAT}", "version": 1, "distributions": [{{"stage": "asr", "metric": "m", '
     '"values": [1], "n": 5}]}', r"distributions\[0\]\.n: says 5 but values holds 1"),
    (f'{{"format": "{FORMAT}", "version": 1, "distributions": [{{"stage": "asr", "metric": "m", '
     '"values": ["x"]}]}', r"values\[0\]: expected a number"),
    (f'{{"format": "{FORMAT}", "version": 1, "distributions": [{{"stage": "a", "metric": "m", '
     '"values": []},{"stage": "a", "metric": "m", "values": []}]}', "appears twice"),
])
def test_a_corrupt_file_is_refused_naming_the_file_and_the_place(tmp_path, text, match):
    """Truncated, foreign or hand-edited files fail with the file name and the JSON path."""
    path = tmp_path / "base.json"
    path.write_text(text)
    with pytest.raises(VoiceLatencyError, match=match) as info:
        load(path)
    assert str(path) in str(info.value)


def test_a_file_from_a_newer_format_asks_for_an_upgrade(tmp_path):
    """Version 99 written by a future plugin: refused, naming both versions and the fix."""
    path = tmp_path / "base.json"
    path.write_text(json.dumps({"format": FORMAT, "version": 99, "plugin_version": "9.0",
                                "distributions": []}))
    with pytest.raises(VoiceLatencyError, match=r"format version 99 \(written by "
                                                r"pytest-voicelatency 9.0\).*upgrade"):
        load(path)


def test_the_fingerprint_names_where_the_numbers_were_measured(tmp_path):
    """Python, platform, CPU count, plugin version; git commit only inside a repository."""
    env = fingerprint(tmp_path)
    assert {"python", "implementation", "system", "machine", "platform", "cpu_count",
            "plugin_version", "git_commit"} <= set(env)
    assert env["cpu_count"] == os.cpu_count() and env["git_commit"] is None
    assert git_commit(tmp_path / "does-not-exist") is None  # never fatal


def test_environment_differences_name_key_and_both_values():
    """Python is compared as major.minor; the git commit is expected to differ."""
    base = {"python": "3.12.1", "cpu_count": 4, "system": "Linux", "git_commit": "a"}
    head = {"python": "3.12.7", "cpu_count": 2, "system": "Linux", "git_commit": "b"}
    assert environment_differences(base, head) == ["cpu_count 4 in the baseline, 2 in this run"]
    assert environment_differences(base, {**head, "python": "3.13.0", "cpu_count": 4}) == \
        ["python 3.12 in the baseline, 3.13 in this run"]


def test_merging_shards_pools_their_samples():
    """Quantiles of the merged file are those of all shards' samples together."""
    a = replace(a_run(asr=[1, 2, 3], llm=[10]), spans=3)
    b = replace(a_run(asr=[4, 5], tts=[7]), spans=2)
    merged, warnings = merge([a, b])
    assert merged.distributions.select("asr", "duration_ms").values.tolist() == [1, 2, 3, 4, 5]
    assert set(merged.distributions) == {("asr", "duration_ms"), ("llm", "duration_ms"),
                                         ("tts", "duration_ms")}
    assert merged.spans == 5 and warnings == []


def test_merging_shards_of_different_plugin_versions_is_refused():
    """Numbers from two plugin versions need not mean the same: refuse, name both files."""
    a = replace(a_run(asr=[1]), source="a.json")
    b = replace(a_run(asr=[2]), source="b.json", plugin_version="0.2.0")
    with pytest.raises(VoiceLatencyError, match=r"cannot merge 'b.json' \(pytest-voicelatency "
                                                r"0.2.0\) with 'a.json' \(0.1.0\)"):
        merge([a, b])


def test_merging_shards_gated_differently_is_refused():
    """Shards must share their gate settings, or the merged verdict is ambiguous."""
    a, b = a_run(asr=[1]), replace(a_run(asr=[2]), settings={"thresholds": ["asr: p95 < 1"]})
    with pytest.raises(VoiceLatencyError, match="different voice_latency_\\* settings"):
        merge([a, b])


def test_merging_shards_from_different_commits_or_machines_warns():
    """A commit or CPU-count mismatch between shards is named in a warning."""
    a = replace(a_run(asr=[1]), source="a.json")
    b = replace(a_run(asr=[2]), source="b.json",
                environment={**a.environment, "git_commit": "def", "cpu_count": 8})
    _, warnings = merge([a, b])
    assert any("from commit def" in w for w in warnings)
    assert any("cpu_count 4 in a.json, 8 in b.json" in w for w in warnings)


def test_merged_shards_carry_the_clock_of_all_of_them_and_differing_clocks_warn():
    real = replace(a_run(asr=[1]), source="real.json", clock="real")
    virtual = replace(a_run(asr=[2]), source="virtual.json", clock="virtual")
    merged, warnings = merge([virtual, real])
    assert merged.clock == "mixed"
    assert any("clock virtual in virtual.json, real in real.json" in w for w in warnings)
    none = replace(a_run(asr=[3]), source="none.json")  # a shard that made no call
    assert merge([none, real])[0].clock == "real"
    mixed = replace(a_run(asr=[4]), source="mixed.json", clock="mixed (3 calls virtual, 1 real)")
    more = replace(a_run(asr=[5]), source="more.json", clock="mixed (4 calls virtual, 1 real)")
    assert not any("clock" in w for w in merge([mixed, more])[1])


def listed(run: Results, *tests: str) -> Results:
    return replace(run, samples=tuple(Sample("asr", "duration_ms", 1.0, "s", "1", "", t)
                                      for t in tests))


def test_merging_shards_that_ran_the_same_test_is_refused():
    """Overlapping shards would count a test's samples twice: refuse, name both files and the
    test."""
    a, b = listed(a_run(asr=[1]), "t.py::x", "t.py::y"), listed(a_run(asr=[2]), "t.py::y")
    a, b = replace(a, source="a.json"), replace(b, source="b.json")
    with pytest.raises(VoiceLatencyError, match=r"cannot merge 'b.json' with 'a.json': both hold "
                                                r"samples of test 't.py::y'"):
        merge([a, b])


def test_shards_with_disjoint_tests_merge_even_when_their_values_are_identical():
    """Samples name their tests, so deterministic shards with equal numbers are still two runs."""
    a, b = listed(a_run(asr=[1]), "t.py::x"), listed(a_run(asr=[1]), "t.py::y")
    merged, _ = merge([a, b])
    assert merged.distributions.select("asr", "duration_ms").n == 2


def test_merging_one_run_twice_without_samples_is_refused():
    """Without samples, the same created time, environment, counts and values mean the same run."""
    a = replace(a_run(asr=[1, 2]), source="a.json", created="2025-01-01T00:00:00+00:00")
    b = replace(a_run(asr=[1, 2]), source="b.json", created="2025-01-01T00:00:00+00:00")
    with pytest.raises(VoiceLatencyError, match=r"'b.json' and 'a.json' hold the same run"):
        merge([a, b])
    b = replace(b, created="2025-01-01T00:00:01+00:00")  # measured again: another run, merged
    assert merge([a, b])[0].distributions.select("asr", "duration_ms").n == 4


def test_a_results_file_and_the_baseline_of_the_same_run_are_one_run():
    """run.json (samples) and baseline.json (none) written by one pytest run are refused
    together."""
    created = "2025-01-01T00:00:00+00:00"
    a = listed(replace(a_run(asr=[1]), created=created), "t.py::x")
    b = replace(a_run(asr=[1]), created=created)
    with pytest.raises(VoiceLatencyError, match="hold the same run"):
        merge([a, b])


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    """Readers see the old or the new file, never half of one; nothing else is left behind."""
    target = tmp_path / "out.json"
    target.write_text("old")
    write_atomic(target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.json"]


def test_write_atomic_gives_new_files_normal_permissions_and_keeps_existing_ones(tmp_path):
    """A baseline is read by others (git, CI): not the 0600 of a temporary file."""
    umask = os.umask(0o022)
    try:
        fresh = write_atomic(tmp_path / "new.json", "{}")
        kept = tmp_path / "kept.json"
        kept.write_text("old")
        kept.chmod(0o640)
        write_atomic(kept, "new")
    finally:
        os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o644 and kept.stat().st_mode & 0o777 == 0o640


def test_an_unwritable_path_names_the_path_and_the_fix(tmp_path):
    """A directory that is a file: the error quotes the path and says what to do."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(VoiceLatencyError,
                       match=r"cannot write '.*file/sub/out.json'.*writable directory"):
        write_atomic(blocker / "sub" / "out.json", "{}")
    with pytest.raises(VoiceLatencyError, match="cannot write"):
        append_text(tmp_path, "x")  # a directory cannot be appended to


def test_append_text_appends(tmp_path):
    """The step summary accumulates: each run adds, none overwrites."""
    path = tmp_path / "summary.md"
    append_text(path, "one\n")
    append_text(path, "two\n")
    assert path.read_text() == "one\ntwo\n"


def test_rows_follow_the_table_rules():
    """One row per stage's default metric plus extra keys, in pipeline order."""
    dists = {**a_run(tts=[1], asr=[2]).distributions,
             ("asr", "first_byte_ms"): Distribution("asr", "first_byte_ms", np.array([0.5]))}
    table = rows(Distributions(dists), extra=[("asr", "duration_ms")])
    assert [(r.stage, r.metric) for r in table] == [
        ("asr", "duration_ms"), ("asr", "first_byte_ms"), ("tts", "duration_ms")]
    assert [r.n for r in table] == [1, 1, 1]


def test_a_baseline_names_its_tests_and_a_listing_names_them_per_sample():
    """test_ids is written when the sample listing is not (a baseline), sorted; a document
    with the listing leaves it out (each sample names its test); older files have none."""
    run = replace(a_run(asr=[1.0, 2.0]), test_ids=("t.py::b", "t.py::a"),
                  samples=(Sample("asr", "duration_ms", 1.0, "s", "1", "", "t.py::a"),))
    assert json.loads(dumps(run, with_samples=False))["test_ids"] == ["t.py::a", "t.py::b"]
    assert "test_ids" not in json.loads(dumps(run))
    assert json.loads(dumps(replace(run, test_ids=None), with_samples=False))["test_ids"] is None


def test_narrower_blames_only_tests_of_the_baseline_this_run_did_not_measure():
    """Not collected and collected-but-silent are told apart; a test whose file is gone left
    the suite; an older file (no test ids) is judged by its stages and test count."""
    base = Coverage(("a.py::x", "b.py::y", "c.py::z", "gone.py::w"), (), 4)
    run = Coverage(("a.py::x",), (), 1)
    assert narrower(base, run, collected=("a.py::x", "b.py::y"),
                    gone=lambda file: file == "gone.py") == (
        "1 test of the baseline not collected by this run (c.py::z)",
        "1 test of the baseline ran but recorded no samples this time, skipped? (b.py::y)")
    assert narrower(base, Coverage(base.test_ids, (), 4), collected=(),
                    gone=lambda file: False) == ()
    older = Coverage(None, (("asr", "duration_ms"), ("tts", "duration_ms")), 3)
    assert narrower(older, Coverage((), (("asr", "duration_ms"), ("tts", "duration_ms")), 3),
                    collected=(), gone=lambda file: False) == ()
    assert narrower(older, Coverage((), (("asr", "duration_ms"),), 2), collected=(),
                    gone=lambda file: False) == (
        "1 stage/metric of the baseline with no samples in this run (tts duration_ms)",
        "the baseline has samples of 3 tests, this run of 2")
