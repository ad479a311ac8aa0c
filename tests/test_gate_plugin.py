"""Specification of the CI gates in real pytest runs: exit codes, xdist, baselines, outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from pytest_voicelatency.gate.thresholds import GRAMMAR
from pytest_voicelatency.plugin import (
    COMPARE_BODY_INI,
    COMPARE_OPTION,
    CONFIDENCE_INI,
    INCONCLUSIVE_INI,
    JSON_OPTION,
    MARKDOWN_OPTION,
    MISSING_INI,
    OPTION,
    SAVE_OPTION,
    STEP_SUMMARY_ENV,
    THRESHOLDS_INI,
    UNRELIABLE_INI,
)
from pytest_voicelatency.run.exitcodes import ExitCode

AGENT = '''
import os
from pytest_voicelatency import stage_span

SLOW = float(os.environ.get("VOICE_SLOWDOWN", "1.0"))


class TickClock:
    """Every reading is 1 ms after the previous one: durations are exact, never timed."""

    is_virtual = True

    def __init__(self):
        self.now = 0

    def now_ns(self):
        self.now += 1_000_000
        return self.now

    def span_time_ns(self, instant_ns):
        return 1_700_000_000_000_000_000 + instant_ns

    async def sleep_until(self, deadline_ns):
        self.now = max(self.now, deadline_ns)
        return self.now


def run_turns(n, session="s", unreliable=False):
    """asr (first partial after exactly 1 ms) then a barge-in silence of 100..159 ms, times SLOW."""
    clock = TickClock()
    for turn in range(n):
        with stage_span("asr", session, turn, clock=clock) as first_partial:
            first_partial()
        attributes = {"reliable": False} if unreliable else None
        with stage_span("barge_in", session, turn, attributes=attributes, clock=clock) as t:
            t.set("silence_ms", (100.0 + (turn * 37) % 60) * SLOW)
'''

TESTS = '''
import pytest
from agent import run_turns

@pytest.mark.voice_latency
def test_first_call():
    run_turns(60)

@pytest.mark.voice_latency
def test_second_call():
    run_turns(60, session="other")
'''


def thresholds(*lines: str, **ini: str) -> str:
    text = "[pytest]\n" + f"{THRESHOLDS_INI} =\n" + "".join(f"    {line}\n" for line in lines)
    return text + "".join(f"{key} = {value}\n" for key, value in ini.items())


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(agent=AGENT, test_calls=TESTS)
    return pytester


def test_passing_gates_exit_0_with_a_verdict_column_in_the_table(suite):
    """Every gate within its limit: exit 0, each gated row shows its verdict."""
    suite.makeini(thresholds("barge_in: p95 < 200", "asr: p95 < 150", "gap.*: p95 < 100"))
    result = suite.runpytest(OPTION)
    assert result.ret == ExitCode.OK
    result.stdout.fnmatch_lines(["stage*metric*n*p95*gate",
                                 "asr*first_byte_ms*120*p95 < 150 pass",
                                 "gap.asr_to_barge_in*duration_ms*120*p95 < 100 pass",
                                 "barge_in*silence_ms*120*p95 < 200 pass",
                                 "gates: 3 pass (point estimates)"])


def test_a_failing_gate_fails_the_session_with_exit_1_naming_the_stage(suite):
    """The tests pass, the gate does not: pytest exits 1 and says which gate on which stage."""
    suite.makeini(thresholds("barge_in: p95 < 120"))
    result = suite.runpytest(OPTION)
    result.assert_outcomes(passed=2)
    assert result.ret == ExitCode.FAILED
    result.stdout.fnmatch_lines(["barge_in*silence_ms*120*p95 < 120 FAIL",
                                 "gates: 1 fail (point estimates): FAILED",
                                 "*FAIL: 'barge_in: p95 < 120' on barge_in silence_ms*",
                                 "*worst: 159.0 ms*"])


def test_gates_under_xdist_judge_every_workers_samples(suite):
    """-n 2: one test per worker; the controller alone judges all 120 samples, prints once."""
    pytest.importorskip("xdist")
    suite.makeini(thresholds("barge_in: p95 < 120", "asr: p95 < 150"))
    result = suite.runpytest_subprocess(OPTION, "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert result.ret == ExitCode.FAILED
    assert result.stdout.str().count("voice latency (ms)") == 1
    result.stdout.fnmatch_lines(["asr*first_byte_ms*120*p95 < 150 pass",
                                 "barge_in*silence_ms*120*p95 < 120 FAIL"])


@pytest.mark.parametrize("line, problem", [
    ("barge_in: p101 < 200", "unknown quantile p101"),
    ("barge_in p95 < 200", "colon"),
    ("barge_in: p95 > 200", "use < or <="),
])
def test_a_bad_threshold_line_is_a_usage_error_before_any_test_runs(suite, line, problem):
    """Exit 4 (usage error), the line quoted with what is wrong and the grammar; no test ran."""
    suite.makeini(thresholds("asr: p95 < 150", line))
    result = suite.runpytest(OPTION)
    assert result.ret == pytest.ExitCode.USAGE_ERROR == ExitCode.BAD_INPUT
    err = result.stderr.str()
    assert repr(line) in err and problem in err and GRAMMAR.splitlines()[1].strip() in err
    assert "passed" not in result.stdout.str()


def test_a_bad_policy_value_is_a_usage_error_naming_the_ini_key(suite):
    """A typo in voice_latency_inconclusive is refused at configure time."""
    suite.makeini(thresholds("asr: p95 < 150", **{INCONCLUSIVE_INI: "maybe"}))
    result = suite.runpytest(OPTION)
    assert result.ret == ExitCode.BAD_INPUT
    assert f"{INCONCLUSIVE_INI} = 'maybe': choose one of warn, fail" in result.stderr.str()


def test_a_bad_compare_body_is_a_usage_error_naming_the_ini_key(suite):
    """The body quantiles must lie below p95: a p99 there is refused at configure time."""
    suite.makeini(thresholds("asr: p95 < 150", **{COMPARE_BODY_INI: "p50 p99"}))
    result = suite.runpytest(OPTION)
    assert result.ret == ExitCode.BAD_INPUT
    err = result.stderr.str()
    assert f"{COMPARE_BODY_INI} = 'p50 p99': 'p99' is not a new quantile below p95" in err
    assert "'none'" in err and "passed" not in result.stdout.str()


def test_a_glob_matching_nothing_fails_by_default_and_only_warns_when_told(suite):
    """`tts.*` matches no stage: MISSING fails the run; voice_latency_missing = warn lets it
    pass."""
    suite.makeini(thresholds("tts*: p95 < 100"))
    result = suite.runpytest(OPTION)
    assert result.ret == ExitCode.FAILED
    result.stdout.fnmatch_lines(["tts[*]  *p95 < 100 MISSING",
                                 ("*MISSING: 'tts[*]: p95 < 100' on tts[*]: matched no stage; "
                                  "stages seen: asr, barge_in*")])
    suite.makeini(thresholds("tts*: p95 < 100", **{MISSING_INI: "warn"}))
    result = suite.runpytest(OPTION)
    assert result.ret == ExitCode.OK
    result.stdout.fnmatch_lines(["warning: gate 'tts[*]: p95 < 100': matched no stage*"])


def test_a_run_whose_tests_failed_keeps_pytests_own_exit_code(suite):
    """Gates pass but a test failed: exit 1 from pytest; gates never turn a failure green."""
    suite.makepyfile(test_broken="def test_broken():\n    assert False\n")
    suite.makeini(thresholds("barge_in: p95 < 200"))
    result = suite.runpytest(OPTION)
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == ExitCode.FAILED


def test_collect_only_judges_nothing(suite):
    """--collect-only runs no test, so a gate has nothing to judge and must not fail."""
    suite.makeini(thresholds("barge_in: p95 < 120"))
    assert suite.runpytest(OPTION, "--collect-only").ret == ExitCode.OK


def test_inconclusive_gates_warn_by_default_and_fail_when_told(suite):
    """120 samples 159 ms max vs `p99 < 160`: too few for a 95 % bound on p99 → inconclusive."""
    suite.makeini(thresholds("barge_in: p99 < 160", **{CONFIDENCE_INI: "0.95"}))
    result = suite.runpytest(OPTION)
    assert result.ret == ExitCode.OK
    result.stdout.fnmatch_lines(["*p99 < 160 inconclusive (n≈*)",
                                 ("warning: gate 'barge_in: p99 < 160' on barge_in "
                                  "is inconclusive: about n=* samples would decide")])
    suite.makeini(thresholds("barge_in: p99 < 160",
                             **{CONFIDENCE_INI: "0.95", INCONCLUSIVE_INI: "fail"}))
    result = suite.runpytest(OPTION)
    assert result.ret == ExitCode.FAILED
    result.stdout.fnmatch_lines(["*p99 < 160 INCONCLUSIVE (n≈*)"])


def test_gates_on_unreliable_samples_say_so_and_can_fail(pytester):
    """Calls flagged unreliable: warn (default) keeps the pass but says so; fail fails the run."""
    pytester.makepyfile(agent=AGENT, test_starved='''
import pytest
from agent import run_turns

@pytest.mark.voice_latency
def test_starved():
    run_turns(60, unreliable=True)
''')
    pytester.makeini(thresholds("barge_in: p95 < 200"))
    result = pytester.runpytest(OPTION)
    assert result.ret == ExitCode.OK
    result.stdout.fnmatch_lines(["barge_in*p95 < 200 pass (60 unreliable)*",
                                 ("warning: gate 'barge_in: p95 < 200' on barge_in: "
                                  "pass but 60 of 60 samples are unreliable*")])
    pytester.makeini(thresholds("barge_in: p95 < 200", **{UNRELIABLE_INI: "fail"}))
    result = pytester.runpytest(OPTION)
    assert result.ret == ExitCode.FAILED
    result.stdout.fnmatch_lines(["barge_in*p95 < 200 UNRELIABLE*"])


def test_save_then_compare_passes_unchanged_and_fails_slowed_down_naming_the_stage(
        suite, monkeypatch):
    """The issue's 'done when': save a baseline; an A/A compare exits 0; a 30 % slower
    barge-in (measured under -n 2) exits 1 with the stage named; asr is no regression."""
    result = suite.runpytest(SAVE_OPTION, "base.json")
    assert result.ret == ExitCode.OK and (suite.path / "base.json").exists()
    result.stdout.fnmatch_lines(["wrote base.json"])
    same = suite.runpytest(COMPARE_OPTION, "base.json")
    assert same.ret == ExitCode.OK
    same.stdout.fnmatch_lines(["stage*vs baseline", "barge_in*silence_ms*+0.0 ms (+0 %) no change",
                               "baseline base.json:*no change*"])
    monkeypatch.setenv("VOICE_SLOWDOWN", "1.3")
    pytest.importorskip("xdist")
    slow = suite.runpytest_subprocess(COMPARE_OPTION, "base.json", "-n", "2",
                                      "-p", "no:cacheprovider")
    slow.assert_outcomes(passed=2)
    assert slow.ret == ExitCode.FAILED
    slow.stdout.fnmatch_lines(["barge_in*silence_ms*REGRESSION",
                               "baseline base.json:*1 regression*: FAILED",
                               "*REGRESSION: barge_in silence_ms p95 15*"])
    assert "REGRESSION: asr" not in slow.stdout.str()


@pytest.mark.parametrize("content, message", [
    (None, ("'base.json' does not exist: create it with "
            "`pytest --voice-latency --voice-latency-save base.json`")),
    ("{not json", "'base.json' is not valid JSON"),
    ('{"format": "pytest-voicelatency/results", "version": 3, "distributions": []}',
     "'base.json' has format version 3"),
])
def test_a_bad_baseline_is_an_error_line_and_exit_4_but_the_table_still_prints(
        suite, content, message):
    """Missing, corrupt or newer baseline: said in the header before any test runs (so a long
    run can be stopped), and at the end; the run's own table and results are all there."""
    if content is not None:
        (suite.path / "base.json").write_text(content)
    result = suite.runpytest(COMPARE_OPTION, "base.json", JSON_OPTION, "out.json")
    result.assert_outcomes(passed=2)
    assert result.ret == ExitCode.BAD_INPUT
    result.stdout.fnmatch_lines([f"voice latency: baseline not compared: {message}*the tests "
                                 f"run anyway; unless one fails, the run ends with exit code 4)",
                                 "collected 2 items*",
                                 "barge_in*silence_ms*120*",
                                 f"error: baseline not compared: {message}*"])
    assert json.loads((suite.path / "out.json").read_text())["spans"] == 240


def test_a_partial_baseline_is_named_in_the_header_too(suite):
    suite.runpytest(SAVE_OPTION, "base.json")
    doc = json.loads((suite.path / "base.json").read_text())
    doc["partial"] = {"reasons": ["1 test failed"], "lost_samples": False}
    (suite.path / "base.json").write_text(json.dumps(doc))
    result = suite.runpytest(COMPARE_OPTION, "base.json")
    assert result.ret == ExitCode.BAD_INPUT
    result.stdout.fnmatch_lines(["voice latency: baseline not compared: 'base.json' is marked "
                                 "partial (1 test failed)*", "collected 2 items*"])
    allowed = suite.runpytest(COMPARE_OPTION, "base.json", "--voice-latency-allow-partial")
    assert allowed.ret == ExitCode.OK and "voice latency: baseline" not in allowed.stdout.str()


def test_a_baseline_for_different_stages_warns_and_compares_what_it_can(suite):
    """Stages only on one side are named in a warning; they are not verdicts."""
    suite.runpytest(SAVE_OPTION, "base.json")
    doc = json.loads((suite.path / "base.json").read_text())
    for d in doc["distributions"]:
        d["stage"] = d["stage"].replace("asr", "vad")
    (suite.path / "base.json").write_text(json.dumps(doc))
    result = suite.runpytest(COMPARE_OPTION, "base.json")
    assert result.ret == ExitCode.OK
    result.stdout.fnmatch_lines(["vad*gone", "asr*new",
                                 ("warning: the baseline base.json is for different stages "
                                  "(only in the baseline: gap.vad_to_barge_in, vad; "
                                  "only in this run: asr, gap.asr_to_barge_in)*")])


def test_an_unwritable_output_path_is_named_and_nothing_else_is_lost(suite):
    """The JSON path is under a file: error naming it, exit 3 (an output error); table and
    Markdown still made."""
    (suite.path / "blocker").write_text("")
    result = suite.runpytest(JSON_OPTION, "blocker/out.json", MARKDOWN_OPTION, "summary.md")
    assert result.ret == ExitCode.OUTPUT_ERROR
    result.stdout.fnmatch_lines(["barge_in*silence_ms*120*",
                                 "error: cannot write 'blocker/out.json'*"])
    assert "cannot write 'blocker/out.json'" in (suite.path / "summary.md").read_text()


def test_the_json_file_holds_every_sample_of_every_worker(suite):
    """-n 2: the controller alone writes one file with every sample (240 spans), identities and the
    environment fingerprint; no temporary file is left behind."""
    pytest.importorskip("xdist")
    suite.makeini(thresholds("barge_in: p95 < 200"))
    result = suite.runpytest_subprocess(JSON_OPTION, "out/run.json", "-n", "2",
                                        "-p", "no:cacheprovider")
    assert result.ret == ExitCode.OK
    doc = json.loads((suite.path / "out" / "run.json").read_text())
    assert sorted(p.name for p in (suite.path / "out").iterdir()) == ["run.json"]
    assert len(doc["samples"]) == sum(d["n"] + d["nothing"] for d in doc["distributions"])
    assert doc["tests"] == 2 and doc["spans"] == 240
    tests = {s["test"] for s in doc["samples"]}
    assert tests == {"test_calls.py::test_first_call", "test_calls.py::test_second_call"}
    first = next(s for s in doc["samples"]
                 if s["stage"] == "barge_in" and s["metric"] == "silence_ms")
    assert set(first) == {"stage", "metric", "value", "flags", "test", "session", "turn", "trace",
                          "start_ns", "end_ns"}
    assert len(first["trace"]) == 32
    assert ({"python", "platform", "cpu_count", "plugin_version", "git_commit"}
            <= set(doc["environment"]))
    assert [(g["stage"], g["outcome"], g["n"]) for g in doc["gates"]] == [("barge_in", "pass", 120)]
    summary = {(d["stage"], d["metric"]): d for d in doc["distributions"]}
    assert summary[("barge_in", "silence_ms")]["p95"] == 156.0


def test_markdown_goes_to_the_file_and_is_appended_to_the_github_step_summary(
        suite, monkeypatch, tmp_path):
    """--voice-latency-markdown writes the PR comment; $GITHUB_STEP_SUMMARY gets it appended."""
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv(STEP_SUMMARY_ENV, str(summary))
    suite.makeini(thresholds("barge_in: p95 < 120"))
    result = suite.runpytest(OPTION, MARKDOWN_OPTION, "pr.md")
    assert result.ret == ExitCode.FAILED
    text = (suite.path / "pr.md").read_text()
    assert text.startswith("### Voice latency: FAILED")
    assert ("| `barge_in` | `silence_ms` | 120 | 129.0 | 156.0 (≤ 159.0) "
            "| **p95 < 120 FAIL** |  |") in text
    assert "gate `barge_in: p95 < 120` on `barge_in`: fail" in text
    suite.runpytest(OPTION)
    appended = summary.read_text()
    assert appended.startswith("earlier step\n") and appended.count("### Voice latency") == 2


@pytest.mark.parametrize("xdist", [False, True])
def test_junit_xml_gets_each_tests_p50_p95_and_n_as_properties(suite, xdist):
    """Each test case in --junitxml carries its own stages' p50, p95 and n (with -n 2 too)."""
    args = [OPTION, "--junitxml", "junit.xml", "-p", "no:cacheprovider"]
    if xdist:
        pytest.importorskip("xdist")
        result = suite.runpytest_subprocess(*args, "-n", "2")
    else:
        result = suite.runpytest(*args)
    result.assert_outcomes(passed=2)
    cases = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")}
             for c in ET.parse(suite.path / "junit.xml").getroot().iter("testcase")}
    first = cases["test_first_call"]
    assert first["voice_latency.barge_in.silence_ms.n"] == "60"
    assert first["voice_latency.barge_in.silence_ms.p50"] == "129.0"
    assert first["voice_latency.barge_in.silence_ms.p95"] == "156.0"
    assert first["voice_latency.asr.first_byte_ms.n"] == "60"


def test_help_lists_every_gate_option_and_ini(pytester):
    """--help shows the output options with their metavar and the gate ini keys with defaults."""
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines([f"*{JSON_OPTION}=PATH*", f"*{SAVE_OPTION}=PATH*",
                                 f"*{COMPARE_OPTION}=PATH*", f"*{MARKDOWN_OPTION}=PATH*"])
    out = result.stdout.str()
    for key in (THRESHOLDS_INI, CONFIDENCE_INI, INCONCLUSIVE_INI, MISSING_INI, UNRELIABLE_INI,
                COMPARE_BODY_INI):
        assert key in out
    assert "(default: warn)" in out and "(default: fail)" in out


def test_the_table_says_which_clock_the_caller_ran_on(pytester):
    """On virtual time the caller's pacing checks mean nothing: the table says so, and the
    results file records the clock (format version 2)."""
    pytester.makepyfile(test_clock='''
from pytest_voicelatency import voice_caller
from pytest_voicelatency.agents import OracleAgent
from pytest_voicelatency.audio import tone_clip
from pytest_voicelatency.call import answer, say


def test_virtual():
    with voice_caller(clock="virtual") as caller:
        caller.run(OracleAgent(), [say(tone_clip(300)), answer()])
''')
    result = pytester.runpytest_subprocess("--voice-latency-json=out.json", "-p",
                                           "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["clock: virtual — the caller's pacing checks and the "
                                 "unreliable flag do not apply"])
    doc = json.loads((pytester.path / "out.json").read_text(encoding="utf-8"))
    assert doc["clock"] == "virtual" and doc["version"] == 2
    assert all("virtual" in s["flags"] for s in doc["samples"] if s["stage"].startswith("caller."))
