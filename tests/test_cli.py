"""Specification of `python -m pytest_voicelatency compare|merge`: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pytest_voicelatency.__main__ import EPILOG, main
from pytest_voicelatency.baseline import Distribution, RunResult, load, save
from pytest_voicelatency.exitcodes import ExitCode
from pytest_voicelatency.report import table_text


def results(path, scale: float = 1.0, seed: int = 1, version: str = "0.1.0", thresholds=(),
            **env):
    rng = np.random.default_rng(seed)
    dists = {}
    for stage, median in (("asr", 120.0), ("barge_in", 150.0)):
        metric = "first_byte_ms" if stage == "asr" else "silence_ms"
        dists[(stage, metric)] = Distribution(
            stage, metric, np.sort(median * scale * rng.lognormal(0, 0.2, 300)))
    run = RunResult(dists, environment={"cpu_count": 4, **env}, plugin_version=version,
                    spans=600, tests=2, settings={"thresholds": list(thresholds)})
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
    assert "REGRESSION: asr first_byte_ms p95" in out and "REGRESSION: barge_in silence_ms p95" in out


def test_compare_markdown_has_p50_p95_bound_delta_and_verdict_per_stage(tmp_path, capsys):
    """--markdown prints the PR-comment table: one row per stage with every column."""
    base, head = results(tmp_path / "base.json"), results(tmp_path / "head.json", scale=1.3, seed=2)
    assert main(["compare", str(base), str(head), "--markdown"]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert out.startswith("### Voice latency: FAILED")
    assert "| stage | metric | n | p50 ms | p95 ms (upper 95% bound) | Δ p95 vs baseline | gate | verdict |" in out
    row = next(line for line in out.splitlines() if line.startswith("| `asr`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "first_byte_ms" and cells[2] == "300" and "(≤ " in cells[4]
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
    ('{"format": "pytest-voicelatency/results", "version": 7, "distributions": []}', "format version 7")])
def test_compare_with_a_bad_baseline_exits_4_naming_the_file(tmp_path, capsys, content, message):
    """Missing, corrupt or newer baseline: exit 4 and one line naming the file."""
    base = tmp_path / "base.json"
    if content is not None:
        base.write_text(content)
    head = results(tmp_path / "head.json")
    assert main(["compare", str(base), str(head)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(base) in err and message in err


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
    assert merged.select("asr", "first_byte_ms").n == 600 and merged.tests == 4
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


def test_merge_into_an_unwritable_path_exits_4(tmp_path, capsys):
    """-o under a file: exit 4 and the path named."""
    a = results(tmp_path / "a.json")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    assert main(["merge", str(a), "-o", str(blocker / "all.json")]) == ExitCode.BAD_INPUT
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
