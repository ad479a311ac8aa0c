"""Specification of `python -m pytest_voicelatency compare|merge`: output and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from pytest_voicelatency.__main__ import EPILOG, main
from pytest_voicelatency.report.terminal import table_text
from pytest_voicelatency.results.codec import save
from pytest_voicelatency.results.model import Results
from pytest_voicelatency.results.validate import load
from pytest_voicelatency.run.exitcodes import ExitCode
from pytest_voicelatency.spans.samples import Sample
from pytest_voicelatency.stats.distribution import Distribution, Distributions


def results(path, scale: float = 1.0, seed: int = 1, version: str = "0.1.0", thresholds=(),
            settings=None, samples=None, **env):
    rng = np.random.default_rng(seed)
    dists = {}
    for stage, median in (("asr", 120.0), ("barge_in", 150.0)):
        metric = "first_byte_ms" if stage == "asr" else "silence_ms"
        dists[(stage, metric)] = Distribution(
            stage, metric, np.sort(median * scale * rng.lognormal(0, 0.2, 300)))
    run = Results(Distributions(dists), environment={"cpu_count": 4, **env}, plugin_version=version,
                  spans=600, tests=2, settings={"thresholds": list(thresholds), **(settings or {})},
                  samples=samples, created=f"2025-01-01T00:00:{seed:02d}+00:00")
    save(run, path)
    return path


def test_compare_of_an_unchanged_run_exits_0_and_prints_the_plugins_table(tmp_path, capsys):
    """A/A: exit 0; the table is exactly the one the plugin prints for HEAD, plus verdicts."""
    base, head = results(tmp_path / "base.json"), results(tmp_path / "head.json", seed=2)
    assert main(["compare", str(base), str(head)]) == ExitCode.OK
    out = capsys.readouterr().out
    plain_table = table_text(load(head)).splitlines()
    for plain, compared in zip(plain_table, out.splitlines()):
        assert compared.startswith(plain.rstrip())  # same columns, the verdict column appended
    rows = out.splitlines()[1:3]
    assert "vs baseline" in out.splitlines()[0] and all(r.endswith("no change") for r in rows)
    assert "baseline " + str(base) in out


def test_compare_of_a_slower_run_exits_1_naming_the_stage(tmp_path, capsys):
    """30 % slower everywhere: exit 1, each regressed stage named with its figures."""
    base, head = results(tmp_path / "base.json"), results(tmp_path / "head.json", scale=1.3, seed=2)
    assert main(["compare", str(base), str(head)]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert ("REGRESSION: asr first_byte_ms p95" in out
            and "REGRESSION: barge_in silence_ms p95" in out)


def test_compare_markdown_has_p50_p95_bound_delta_and_verdict_per_stage(tmp_path, capsys):
    """--markdown prints the PR-comment table: one row per stage with every column."""
    base, head = results(tmp_path / "base.json"), results(tmp_path / "head.json", scale=1.3, seed=2)
    assert main(["compare", str(base), str(head), "--markdown"]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert out.startswith("### Voice latency: FAILED")
    assert ("| stage | metric | n | p50 ms | p95 ms (upper 99% bound) | Δ p95 vs baseline "
            "| gate | verdict |") in out
    row = next(line for line in out.splitlines() if line.startswith("| `asr`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "`first_byte_ms`" and cells[2] == "300" and "(≤ " in cells[4]
    assert cells[5].startswith("+") and cells[7] == "**REGRESSION**"


def test_compare_options_override_the_recorded_policy(tmp_path, capsys):
    """A huge minimum effect turns the same slowdown into 'no change' (exit 0)."""
    base, head = results(tmp_path / "base.json"), results(tmp_path / "head.json", scale=1.3, seed=2)
    assert main(["compare", str(base), str(head), "--min-effect-pct", "500"]) == ExitCode.OK
    assert "REGRESSION" not in capsys.readouterr().out


def test_compare_warns_on_stderr_when_the_environment_differs(tmp_path, capsys):
    """The mismatch is named on stderr; stdout keeps the table."""
    base = results(tmp_path / "base.json", cpu_count=8)
    head = results(tmp_path / "head.json", seed=2)
    assert main(["compare", str(base), str(head)]) == ExitCode.OK
    assert "cpu_count 8 in the baseline, 4 in this run" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"), ("{", "not valid JSON"),
    ('{"format": "pytest-voicelatency/results", "version": 7, "distributions": []}',
     "format version 7")])
def test_compare_with_a_bad_baseline_exits_4_naming_the_file(tmp_path, capsys, content, message):
    """Missing, corrupt or newer baseline: exit 4 and one line naming the file."""
    base = tmp_path / "base.json"
    if content is not None:
        base.write_text(content)
    head = results(tmp_path / "head.json")
    assert main(["compare", str(base), str(head)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(base) in err and message in err


def test_compare_tests_the_body_quantiles_head_ran_with_unless_told(tmp_path, capsys):
    """HEAD's recorded voice_latency_compare_body decides which exceedances are tested; --body
    overrides it; the summary line names the tests and the headline the body's growth."""
    base = results(tmp_path / "base.json")
    head = results(tmp_path / "head.json", scale=1.3, seed=2, settings={"compare": {"body": []}})
    assert main(["compare", str(base), str(head)]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert "(p95 exceedances, 99% confidence" in out and "upper quarter" not in out
    assert main(["compare", str(base), str(head), "--body", "p50 p90"]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert "(p50/p90/p95 exceedances, 99% confidence" in out
    assert "upper quarter +" in out and "of 300 samples above the baseline p50/p90/p95" in out


def test_compare_refuses_a_bad_body_naming_the_file_or_option(tmp_path, capsys):
    """A body in HEAD's settings that is not quantiles below p95 exits 4 naming the file and
    --body; a bad --body exits 4 naming the value."""
    base = results(tmp_path / "base.json")
    head = results(tmp_path / "head.json", seed=2, settings={"compare": {"body": ["p50"]}})
    assert main(["compare", str(base), str(head)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert str(head) in err and "settings.compare.body" in err and "--body" in err
    assert main(["compare", str(base), str(head), "--body", "none"]) == ExitCode.OK
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["compare", str(base), str(head), "--body", "p99"])
    assert info.value.code == ExitCode.BAD_INPUT
    assert "'p99' is not a new quantile below p95" in capsys.readouterr().err


def test_a_bad_command_line_exits_4(capsys):
    """argparse's own errors use the documented bad-input code, not 2."""
    with pytest.raises(SystemExit) as info:
        main(["compare", "only-one.json"])
    assert info.value.code == ExitCode.BAD_INPUT
    with pytest.raises(SystemExit) as info:
        main(["compare", "a.json", "b.json", "--confidence", "95"])
    assert info.value.code == ExitCode.BAD_INPUT
    assert "strictly between 0 and 1" in capsys.readouterr().err


def test_merge_pools_shards_and_writes_one_file(tmp_path, capsys):
    """Two shards of 300 → one file of 600 per stage, printed as the usual table, exit 0."""
    a, b = results(tmp_path / "a.json"), results(tmp_path / "b.json", seed=2)
    out_path = tmp_path / "all" / "ALL.json"
    assert main(["merge", str(a), str(b), "-o", str(out_path)]) == ExitCode.OK
    merged = load(out_path)
    assert merged.distributions.select("asr", "first_byte_ms").n == 600 and merged.tests == 4
    out = capsys.readouterr().out
    assert "asr       first_byte_ms  600" in out and f"wrote {out_path}" in out


def test_merge_rejudges_the_shards_gates_over_all_samples(tmp_path, capsys):
    """Gate lines recorded in the shards are judged again on the merged samples."""
    lines = ["asr: p95 < 100"]  # true p95 ≈ 167 ms: fails
    a = results(tmp_path / "a.json", thresholds=lines)
    b = results(tmp_path / "b.json", seed=2, thresholds=lines)
    assert main(["merge", str(a), str(b), "-o", str(tmp_path / "all.json")]) == ExitCode.FAILED
    doc = json.loads((tmp_path / "all.json").read_text())
    assert [(g["stage"], g["n"], g["outcome"]) for g in doc["gates"]] == [("asr", 600, "fail")]
    assert "p95 < 100 FAIL" in capsys.readouterr().out


def test_merge_of_different_plugin_versions_exits_4(tmp_path, capsys):
    """Shards from two plugin versions are refused with both files named; nothing is written."""
    a, b = results(tmp_path / "a.json"), results(tmp_path / "b.json", version="0.2.0")
    target = tmp_path / "all.json"
    assert main(["merge", str(a), str(b), "-o", str(target)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert str(a) in err and str(b) in err and "same plugin version" in err
    assert not target.exists()


def test_merge_into_an_unwritable_path_exits_3(tmp_path, capsys):
    """-o under a file: exit 4 and the path named."""
    a = results(tmp_path / "a.json")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    assert main(["merge", str(a), "-o", str(blocker / "all.json")]) == ExitCode.OUTPUT_ERROR
    assert "cannot write" in capsys.readouterr().err


def test_the_module_runs_as_a_program(tmp_path):
    """`python -m pytest_voicelatency` is the documented entry point; its exit code is real."""
    base, head = results(tmp_path / "base.json"), results(tmp_path / "head.json", scale=1.3, seed=2)
    done = subprocess.run([sys.executable, "-m", "pytest_voicelatency", "compare", str(base),
                           str(head)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "REGRESSION" in done.stdout
    helped = subprocess.run([sys.executable, "-m", "pytest_voicelatency", "--help"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert helped.returncode == 0 and EPILOG in helped.stdout


def test_merge_judges_a_stage_no_shard_produced_as_missing_and_fails_by_default(tmp_path, capsys):
    """Shards relax `missing` to warn (each sees only its stages); the merged run does not."""
    shard = {"thresholds": ["asr: p95 < 1000", "tts: p95 < 100"], "missing": "warn"}
    a = results(tmp_path / "a.json", settings=shard)
    b = results(tmp_path / "b.json", seed=2, settings=shard)
    target = tmp_path / "all.json"
    assert main(["merge", str(a), str(b), "-o", str(target)]) == ExitCode.FAILED
    gates = {g["stage"]: g for g in json.loads(target.read_text())["gates"]}
    assert (gates["tts"]["outcome"], gates["tts"]["failed"]) == ("missing", True)
    assert gates["asr"]["outcome"] == "pass"
    assert "MISSING" in capsys.readouterr().out


def test_merge_missing_warn_lets_a_missing_stage_pass_with_a_warning(tmp_path, capsys):
    """`merge --missing warn` is the explicit opt-out: exit 0, the missing gate on stderr."""
    shard = {"thresholds": ["tts: p95 < 100"], "missing": "fail"}
    a = results(tmp_path / "a.json", settings=shard)
    target = tmp_path / "all.json"
    assert main(["merge", str(a), "--missing", "warn", "-o", str(target)]) == ExitCode.OK
    assert "gate 'tts: p95 < 100'" in capsys.readouterr().err
    assert json.loads(target.read_text())["settings"]["missing"] == "warn"


def test_merge_help_documents_the_missing_option(capsys):
    """`merge --help` names --missing, its choices and its default."""
    with pytest.raises(SystemExit):
        main(["merge", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--missing {fail,warn}" in out and "default: fail" in out


def test_merge_refuses_the_same_file_given_twice(tmp_path, capsys):
    """`merge a.json a.json` (or a.json ./a.json) would count every sample twice: exit 4."""
    a = results(tmp_path / "a.json")
    target = tmp_path / "all.json"
    other_spelling = os.path.join(str(tmp_path), ".", "a.json")
    assert main(["merge", str(a), other_spelling, "-o", str(target)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert str(a) in err and other_spelling in err and "same file" in err
    assert not target.exists()


def test_merge_refuses_a_copy_of_a_baseline_without_samples(tmp_path, capsys):
    """Without samples, a file identical in run identity (created, environment, values) is one
    run."""
    a = results(tmp_path / "a.json")
    copy = tmp_path / "copy.json"
    shutil.copyfile(a, copy)
    target = tmp_path / "all.json"
    assert main(["merge", str(a), str(copy), "-o", str(target)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert str(a) in err and str(copy) in err and "same run" in err
    assert not target.exists()


def test_merge_refuses_shards_that_ran_the_same_test(tmp_path, capsys):
    """Overlapping shards (a test id in both files' samples) are refused, naming files and test."""
    def listing(test):
        return (Sample("asr", "first_byte_ms", 1.0, "s", "1", "", test),)
    a = results(tmp_path / "a.json", samples=listing("t.py::test_one"))
    b = results(tmp_path / "b.json", seed=2, samples=listing("t.py::test_one"))
    c = results(tmp_path / "c.json", seed=3, samples=listing("t.py::test_two"))
    target = tmp_path / "all.json"
    assert main(["merge", str(a), str(b), "-o", str(target)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert str(a) in err and str(b) in err and "t.py::test_one" in err
    assert not target.exists()
    assert main(["merge", str(a), str(c), "-o", str(target)]) == ExitCode.OK


def test_compare_into_a_closed_pipe_exits_quietly_with_its_code(tmp_path):
    """`compare … | head -1`: no BrokenPipeError traceback, and the verdict's exit code."""
    base, head = results(tmp_path / "base.json"), results(tmp_path / "head.json", scale=1.3, seed=2)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        done = subprocess.run([sys.executable, "-m", "pytest_voicelatency", "compare", str(base),
                               str(head)], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=120, check=False)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
    assert done.returncode == ExitCode.FAILED


def one_stage_slower(path, seed):
    """Like `results`, but only asr is 30 % slower: exactly one regression."""
    results(path, seed=seed)
    run = load(path)
    d = run.distributions[("asr", "first_byte_ms")]
    slower = Distributions({**run.distributions,
                            d.key: Distribution(d.stage, d.metric, d.values * 1.3)})
    save(replace(run, distributions=slower), path)
    return path


@pytest.mark.parametrize("slower, phrase", [
    (one_stage_slower, "1 regression."),
    (lambda p, seed: results(p, scale=1.3, seed=seed), "2 regressions.")])
def test_compare_markdown_counts_regressions_in_good_english(tmp_path, capsys, slower, phrase):
    """'1 regression', '2 regressions': every counted noun of the status line agrees with its
    number."""
    base, head = results(tmp_path / "base.json"), slower(tmp_path / "head.json", 2)
    save(replace(load(head), spans=1, tests=1), head)
    assert main(["compare", str(base), str(head), "--markdown"]) == ExitCode.FAILED
    status = capsys.readouterr().out.splitlines()[2]
    assert status.startswith("1 voice span from 1 test;") and status.endswith(phrase)


@pytest.mark.parametrize("confidence, label", [("0.99", "99%"), ("0.9", "90%"), ("0.995", "99.5%")])
def test_compare_markdown_bound_header_names_the_confidence_used(tmp_path, capsys, confidence,
                                                                  label):
    """Without gate confidence the p95 bound is at the comparison's confidence, and says so
    exactly."""
    base, head = results(tmp_path / "base.json"), results(tmp_path / "head.json", seed=2)
    main(["compare", str(base), str(head), "--markdown", "--confidence", confidence])
    out = capsys.readouterr().out
    assert f"| p95 ms (upper {label} bound) |" in out
    from pytest_voicelatency.stats.quantiles import upper_rank
    values = load(head).distributions.select("asr", "first_byte_ms").values
    bound = values[upper_rank(values.size, 0.95, float(confidence)) - 1]
    row = next(line for line in out.splitlines() if line.startswith("| `asr`"))
    assert f"(≤ {bound:.1f})" in row


def test_compare_judges_the_gates_head_recorded_as_the_plugin_does(tmp_path, capsys):
    """HEAD's gate lines and policies are judged over its distributions: the same gate column
    and gate report as the plugin, and a failed gate exits 1 even with no regression."""
    base = results(tmp_path / "base.json")
    head = results(tmp_path / "head.json", seed=2, thresholds=["asr: p95 < 100"])
    assert main(["compare", str(base), str(head)]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert "p95 < 100 FAIL" in out and "gates: 1 fail (point estimates): FAILED" in out
    assert "FAIL: 'asr: p95 < 100' on asr first_byte_ms" in out and "REGRESSION" not in out
