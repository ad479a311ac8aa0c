"""The bad-input suite (issue #10): every case is a bad input or a fault, the message it must get,
and a check that nothing else was lost or overwritten (baseline bytes compared before/after).

Each case is a row of :data:`CASES` (id, area, what is given, the outcome it gets, the check).
``docs/robustness.md`` lists them all; :func:`test_the_robustness_doc_lists_every_case` keeps it
in step (regenerate its table with ``python tests/test_bad_input.py``). Call and agent cases
(audio, barge-in truth, hangs) are pending: they belong to the call/ engineer.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_voicelatency.__main__ import main
from pytest_voicelatency.errors import (
    LatencyAssertionError,
    VoiceLatencyError,
    VoiceLatencyUsageError,
    VoiceLatencyWarning,
)
from pytest_voicelatency.gate.compare import compare
from pytest_voicelatency.gate.evaluate import evaluate
from pytest_voicelatency.gate.policy import GatePolicy
from pytest_voicelatency.gate.thresholds import parse_thresholds
from pytest_voicelatency.report import escape
from pytest_voicelatency.report.junit import junit_properties
from pytest_voicelatency.report.markdown import render
from pytest_voicelatency.report.terminal import terminal_lines
from pytest_voicelatency.results import validate
from pytest_voicelatency.results.codec import dumps, save
from pytest_voicelatency.results.model import Results
from pytest_voicelatency.results.validate import load, loads
from pytest_voicelatency.run import finish as finish_module
from pytest_voicelatency.run.exitcodes import ExitCode
from pytest_voicelatency.run.facts import RunFacts
from pytest_voicelatency.run.finish import finish
from pytest_voicelatency.run.settings import Settings, build, misread_path_options
from pytest_voicelatency.spans.record import SpanRecord
from pytest_voicelatency.spans.rows import SpanTable
from pytest_voicelatency.stats.distribution import Distribution, Distributions

HOSTILE = "asr\x1b]8;;http://evil\x07\x1b[2J\nALL GATES PASSED`<img src=x>`@everyone[l](http://e)|"


@dataclass
class Ctx:
    tmp: Path
    request: pytest.FixtureRequest
    capsys: pytest.CaptureFixture[str]

    @property
    def pytester(self) -> pytest.Pytester:
        return self.request.getfixturevalue("pytester")


@dataclass(frozen=True)
class Case:
    id: str
    area: str
    given: str
    outcome: str  # what the user gets (the message checked, or the behaviour)
    check: Callable[[Ctx], None]
    slow: bool = False


CASES: list[Case] = []


def case(id: str, area: str, given: str, outcome: str, *, slow: bool = False
         ) -> Callable[[Callable[[Ctx], None]], Callable[[Ctx], None]]:
    def register(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        CASES.append(Case(id, area, given, outcome, fn, slow))
        return fn
    return register


# --- helpers ------------------------------------------------------------------------------------

def spans_with(stage: str, attributes: dict[str, Any], n: int = 1, name: str | None = None) -> Any:
    """A capture holding ``n`` raw OpenTelemetry spans of ``stage`` with ``attributes``."""
    from opentelemetry import trace

    from pytest_voicelatency import voice_spans
    tracer = trace.get_tracer("bad-input")
    with voice_spans() as cap:
        for turn in range(n):
            with tracer.start_as_current_span(name or f"audio.{stage}", attributes={
                    "audio.stage": stage, "audio.session_id": "s", "audio.turn_id": str(turn),
                    **attributes}):
                pass
    return cap


def assertion_message(stage: str, attributes: dict[str, Any], n: int = 1, **kw: Any) -> str:
    from pytest_voicelatency import assert_p95
    cap = spans_with(stage, attributes, n)
    with pytest.raises(LatencyAssertionError) as info:
        assert_p95(stage=stage, lt=100, capture=cap, **kw)
    return str(info.value)


def dist(stage: str, metric: str, values: list[float], nothing: int = 0,
         invalid: int = 0) -> Distribution:
    return Distribution(stage, metric, np.sort(np.asarray(values, dtype=float)), nothing,
                        invalid=invalid)


def run_of(*ds: Distribution, **kw: Any) -> Results:
    return Results(Distributions({d.key: d for d in ds}), plugin_version="0.1.0",
                   created="2024-01-01T00:00:00+00:00", **kw)


def baseline_file(path: Path, **kw: Any) -> Path:
    rng = np.random.default_rng(1)
    save(run_of(dist("asr", "first_byte_ms", list(rng.uniform(100, 150, 60))), **kw), path,
         with_samples=False)
    return path


def table_with(stage: str, n: int = 30) -> SpanTable:
    t = SpanTable()
    for i in range(n):
        t.add(SpanRecord(f"audio.{stage}", stage, "s", str(i), 1, 0, 1_000_000,
                         (("first_byte_ms", 10.0 + i),), True), test="t")
    return t


def cli(ctx: Ctx, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = ctx.capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out + out.err


def deep(levels: int) -> str:
    return '{"format": "pytest-voicelatency/results", "version": 1, "environment": ' + \
        "[" * levels + "]" * levels + ', "distributions": []}'


# --- spans: a verdict always judges the metric it names -------------------------------------

for _id, _value, _what in [("first-byte-negative", -250, "-250"),
                           ("first-byte-nan", math.nan, "NaN"),
                           ("first-byte-string", "120", "the string \"120\""),
                           ("first-byte-bool", True, "True"),
                           ("first-byte-inf", math.inf, "+inf")]:
    def _check(ctx: Ctx, value: Any = _value) -> None:
        message = assertion_message("asr", {"audio.first_byte_ms": value})
        assert "asr first_byte_ms" in message and "INVALID: 1 of 1 samples" in message
        assert "duration_ms" not in message
    case(f"spans-{_id}", "spans", f"audio.first_byte_ms = {_what}; assert_p95(stage='asr', "
         "lt=100)", "fails: `INVALID: 1 of 1 samples of asr first_byte_ms are invalid ...` "
         "(never judges duration_ms)")(_check)


@case("spans-invalid-among-valid", "spans", "59 good first_byte_ms and one of -250",
      "fails: `INVALID: 1 of 60 samples of asr first_byte_ms are invalid`")
def _(ctx: Ctx) -> None:
    from opentelemetry import trace

    from pytest_voicelatency import assert_p95, voice_spans
    tracer = trace.get_tracer("bad-input")
    with voice_spans() as cap:
        for turn in range(60):
            with tracer.start_as_current_span("audio.asr", attributes={
                    "audio.stage": "asr", "audio.session_id": "s", "audio.turn_id": str(turn),
                    "audio.first_byte_ms": -250 if turn == 7 else 10.0}):
                pass
    with pytest.raises(LatencyAssertionError, match="INVALID: 1 of 60 samples"):
        assert_p95(stage="asr", lt=100, capture=cap)


@case("spans-named-metric-invalid", "spans", "barge_in silence_ms = -5; assert_p95(metric="
      "'silence_ms')", "fails: `INVALID: 1 of 1 samples of barge_in silence_ms`")
def _(ctx: Ctx) -> None:
    message = assertion_message("barge_in", {"audio.silence_ms": -5}, metric="silence_ms")
    assert "INVALID: 1 of 1 samples of barge_in silence_ms" in message


@case("spans-invalid-problem-named", "spans", "audio.first_byte_ms = True",
      "span problem: `span 'audio.asr': attribute audio.first_byte_ms is the bool True ... "
      "counted as invalid`")
def _(ctx: Ctx) -> None:
    cap = spans_with("asr", {"audio.first_byte_ms": True})
    assert any("is the bool True" in p and "counted as invalid" in p for p in cap.problems)


@case("spans-label-not-invalid", "spans", "audio.model = 'gpt' (a label, not *_ms)",
      "kept as a label: no problem, no invalid sample (control case)")
def _(ctx: Ctx) -> None:
    cap = spans_with("llm", {"audio.model": "gpt", "audio.first_byte_ms": 5.0})
    assert not cap.problems and cap.select("llm").invalid == 0


@case("spans-gate-invalid", "spans", "gate `asr: p95 < 100` over first_byte_ms = -250",
      "gate outcome `invalid`, fails the run, note names the count")
def _(ctx: Ctx) -> None:
    cap = spans_with("asr", {"audio.first_byte_ms": -250}, n=3)
    report = evaluate(cap.sample_set(), parse_thresholds(["asr: p95 < 100"]), GatePolicy())
    r = report.results[0]
    assert r.outcome == "invalid" and r.failed and r.metric == "first_byte_ms"
    assert "3 of 3 samples of asr first_byte_ms are invalid" in r.note


@case("spans-all-nothing", "spans", "every asr span has first_byte_ms = -1",
      "fails: `no samples ... every sample produced nothing`")
def _(ctx: Ctx) -> None:
    message = assertion_message("asr", {"audio.first_byte_ms": -1}, n=5)
    assert "every sample produced nothing" in message


@case("spans-p95-n1-pass", "spans", "assert_p95 over one sample that passes",
      "passes with a warning: `n = 1: a p95 over fewer than 20 samples is the maximum`")
def _(ctx: Ctx) -> None:
    from pytest_voicelatency import assert_p95
    cap = spans_with("asr", {"audio.first_byte_ms": 5.0})
    with pytest.warns(VoiceLatencyWarning, match="n = 1: a p95 over fewer than 20 samples"):
        assert_p95(stage="asr", lt=100, capture=cap)


@case("spans-p95-n1-fail", "spans", "assert_p95 over one sample that fails",
      "fails; the verdict says `caveat: n = 1`")
def _(ctx: Ctx) -> None:
    message = assertion_message("asr", {"audio.first_byte_ms": 500.0})
    assert "n=1" in message and "caveat: n = 1" in message


@case("spans-gate-small-n", "spans", "gate `asr: p95 < 100` passing over 3 samples",
      "passes with a warning `... passed over n = 3: a p95 over fewer than 20 samples ...`")
def _(ctx: Ctx) -> None:
    cap = spans_with("asr", {"audio.first_byte_ms": 5.0}, n=3)
    report = evaluate(cap.sample_set(), parse_thresholds(["asr: p95 < 100"]), GatePolicy())
    assert report.results[0].outcome == "pass"
    assert any("passed over n = 3" in w for w in report.warnings)


# --- compare: nothing produced is a regression ------------------------------------------------

@case("compare-all-nothing", "compare", "baseline llm healthy (60 samples); this run's 60 llm "
      "samples all first_byte_ms = -1", "`REGRESSION: llm first_byte_ms produced nothing in 60 of "
      "60 samples (100 %)...`; no advice to refresh the baseline")
def _(ctx: Ctx) -> None:
    base = Distributions({("llm", "first_byte_ms"): dist("llm", "first_byte_ms",
                                                         list(range(100, 160)))})
    head = Distributions({("llm", "first_byte_ms"): dist("llm", "first_byte_ms", [], 60)})
    c = compare(base, head)
    change = c.changes[0]
    assert c.failed and change.outcome == "regression" and change.nothing_regression
    assert "produced nothing in 60 of 60 samples (100 %)" in change.headline(0.95)
    assert not any("refresh" in w for w in c.warnings) and "gone" not in c.counts()


@case("compare-nothing-small-growth", "compare", "nothing-rate 0/60 → 1/60",
      "no regression (below the 5-point minimum effect and not significant)")
def _(ctx: Ctx) -> None:
    base = Distributions({("llm", "first_byte_ms"): dist("llm", "first_byte_ms",
                                                         list(range(100, 160)))})
    head = Distributions({("llm", "first_byte_ms"): dist("llm", "first_byte_ms",
                                                         list(range(100, 159)), 1)})
    assert not compare(base, head).failed


@case("compare-baseline-n0", "compare", "a baseline stage whose samples all produced nothing "
      "(n = 0)", "not reported as `only in this run`; compared on its nothing-rate")
def _(ctx: Ctx) -> None:
    base = Distributions({("llm", "first_byte_ms"): dist("llm", "first_byte_ms", [], 60)})
    head = Distributions({("llm", "first_byte_ms"): dist("llm", "first_byte_ms",
                                                         list(range(100, 160)))})
    c = compare(base, head)
    assert not any("only in this run" in w for w in c.warnings) and "new" not in c.counts()


# --- results files: parsed with limits, never a traceback --------------------------------------

def _refused(text: str, match: str) -> Callable[[Ctx], None]:
    def check(ctx: Ctx) -> None:
        path = ctx.tmp / "base.json"
        path.write_text(text)
        with pytest.raises(VoiceLatencyError, match=match):
            load(path)
        assert path.read_text() == text
    return check


for _id, _given, _text, _match, _outcome in [
    ("not-json", "`{not json`", "{not json", "'.*base.json' is not valid JSON",
     "`'base.json' is not valid JSON (...)`"),
    ("empty", "an empty file", "", "is not valid JSON", "`... is not valid JSON`"),
    ("truncated", "a results file cut in half", dumps(Results())[:40], "is not valid JSON",
     "`... is not valid JSON ... it may be truncated`"),
    ("deep-100k", "a document nested 100 000 deep", deep(100_000), "nested",
     "`... is nested too deeply to be a results file`"),
    ("deep-40", "a document nested 40 deep", deep(40), "nested more than 32 levels",
     "`... is nested more than 32 levels deep`"),
    ("huge-int", "a 400-digit integer", dumps(Results()).replace('"spans": 0', '"spans": '
                                                                 + "9" * 400),
     "a number of 400 characters", "`... holds a number of 400 characters`"),
    ("nan", "`NaN` as a value", dumps(Results()).replace('"spans": 0', '"spans": NaN'),
     "NaN is not a number", "`... holds NaN is not a number of milliseconds`"),
    ("wrong-format", "another tool's JSON", '{"format": "x"}', "is not a pytest-voicelatency",
     "`... is not a pytest-voicelatency results file`"),
    ("newer-version", "format version 3", '{"format": "pytest-voicelatency/results", '
     '"version": 3, "distributions": []}', "has format version 3", "`... has format version 3`"),
    ("negative-value", "a negative value in a distribution",
     dumps(run_of(dist("asr", "first_byte_ms", [1.0]))).replace("[1.0]", "[-1.0]"),
     "not a non-negative number", "`... corrupt at distributions[0].values[0]`"),
    ("gate-no-fields", "a gate record `{}`",
     dumps(Results()).replace('"gates": []', '"gates": [{}]'), "the gate record has no 'line'",
     "`... corrupt at gates[0]: the gate record has no 'line'`"),
    ("partial-not-object", "`\"partial\": 5`", dumps(Results()).replace('"partial": null',
                                                                      '"partial": 5'),
     "expected an object or null", "`... corrupt at partial: expected an object or null`"),
]:
    case(f"file-{_id}", "results files", _given, _outcome)(_refused(_text, _match))


@case("file-too-large", "results files", "a file over the size limit",
      "`... is too large (... bytes, the limit is ...)`")
def _(ctx: Ctx) -> None:
    path = ctx.tmp / "big.json"
    path.write_text(" " * 100 + dumps(Results()))
    ctx.request.getfixturevalue("monkeypatch").setattr(validate, "MAX_BYTES", 50)
    with pytest.raises(VoiceLatencyError, match="is too large"):
        load(path)


@case("file-directory", "results files", "a directory as the baseline",
      "`... is not a regular file`")
def _(ctx: Ctx) -> None:
    with pytest.raises(VoiceLatencyError, match="is not a regular file"):
        load(ctx.tmp)


@case("file-not-utf8", "results files", "bytes that are not UTF-8", "`cannot read ...`")
def _(ctx: Ctx) -> None:
    path = ctx.tmp / "b.json"
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(VoiceLatencyError, match="cannot read"):
        load(path)


@case("file-partial-round-trip", "results files", "a partial run written and read back",
      "`\"partial\": {\"reasons\": [...], \"lost_samples\": true}` survives the round trip")
def _(ctx: Ctx) -> None:
    run = run_of(dist("asr", "first_byte_ms", [1.0]),
                 partial=("interrupted", "samples lost: worker 'gw0' crashed"))
    doc = json.loads(dumps(run))
    assert doc["partial"] == {"reasons": list(run.partial), "lost_samples": True}
    assert loads(dumps(run)).partial == run.partial


# --- the end of a run: results files are never worse than before --------------------------------

def _finish_over_existing(ctx: Ctx, facts: RunFacts, **settings: Any) -> tuple[Results, bytes]:
    base = baseline_file(ctx.tmp / "base.json")
    before = base.read_bytes()
    done = finish(table_with("asr"), 1, Settings(save_path=str(base), **settings), facts=facts)
    return done.results, before


for _id, _facts, _reason in [
    ("interrupted", RunFacts(interrupted=True, tests_run=3), "interrupted"),
    ("collect-only", RunFacts(collect_only=True), "--collect-only: no test ran"),
    ("no-tests", RunFacts(tests_run=0), "no test ran"),
    ("deselected", RunFacts(tests_run=2, deselected=3), "3 tests deselected"),
    ("lastfailed", RunFacts(tests_run=1, lastfailed=True), "--lf: only the last failures ran"),
    ("failed", RunFacts(tests_run=3, failed=1), "1 test failed"),
    ("crashed", RunFacts(tests_run=3, crashed=("worker 'gw0' crashed while running 't'",)),
     "samples lost: worker 'gw0' crashed"),
]:
    def _keep(ctx: Ctx, facts: RunFacts = _facts, reason: str = _reason) -> None:
        results, before = _finish_over_existing(ctx, facts)
        assert (ctx.tmp / "base.json").read_bytes() == before
        message = next(w for w in results.warnings if "not saved" in w)
        assert reason in message and "the existing file is kept" in message
    case(f"save-keeps-baseline-{_id}", "results files", f"--voice-latency-save over a complete "
         f"baseline; run {_id}", f"baseline kept, warning `baseline '...' not saved: ... "
         f"{_reason} ...; the existing file is kept`")(_keep)


@case("save-new-partial", "results files", "no baseline yet; a -k subset run saves",
      "saved with `\"partial\": {\"reasons\": [\"2 tests deselected ...\"]}`")
def _(ctx: Ctx) -> None:
    path = ctx.tmp / "new.json"
    done = finish(table_with("asr"), 1, Settings(save_path=str(path)),
                  facts=RunFacts(tests_run=1, deselected=2))
    assert json.loads(path.read_text())["partial"]["reasons"][0].startswith("2 tests deselected")
    assert any("saved marked partial" in w for w in done.results.warnings)


@case("save-partial-asked", "results files", "--voice-latency-save-partial over a complete "
      "baseline, interrupted run", "replaced, marked partial (the user asked)")
def _(ctx: Ctx) -> None:
    results, before = _finish_over_existing(ctx, RunFacts(interrupted=True, tests_run=1),
                                            save_partial=True)
    assert load(ctx.tmp / "base.json").partial[0].startswith("interrupted")


@case("json-interrupted-partial", "results files", "--voice-latency-json of an interrupted run",
      "written, with `\"partial\": {\"reasons\": [\"interrupted ...\"]}`")
def _(ctx: Ctx) -> None:
    out = ctx.tmp / "out.json"
    finish(table_with("asr"), 1, Settings(json_path=str(out)),
           facts=RunFacts(interrupted=True, tests_run=1))
    assert json.loads(out.read_text())["partial"]["reasons"][0].startswith("interrupted")


@case("compare-partial-baseline", "results files", "--voice-latency-compare with a baseline "
      "marked partial", "error `baseline not compared: '...' is marked partial (...)`, exit 4")
def _(ctx: Ctx) -> None:
    base = baseline_file(ctx.tmp / "base.json", partial=("interrupted",))
    done = finish(table_with("asr"), 1, Settings(compare_path=str(base)))
    assert done.exit_code == ExitCode.BAD_INPUT
    assert "is marked partial (interrupted)" in done.results.errors[0]
    allowed = finish(table_with("asr"), 1, Settings(compare_path=str(base), allow_partial=True))
    assert allowed.results.comparison is not None


@case("output-symlink-loop", "outputs", "--voice-latency-json on a symlink loop",
      "`cannot write '...'` for that output, exit 3; baseline and Markdown still written")
def _(ctx: Ctx) -> None:
    loop = ctx.tmp / "loop.json"
    loop.symlink_to(loop)
    settings = Settings(json_path=str(loop), save_path=str(ctx.tmp / "b.json"),
                        markdown_path=str(ctx.tmp / "s.md"))
    done = finish(table_with("asr"), 1, settings, facts=RunFacts(tests_run=1))
    assert done.exit_code == ExitCode.OUTPUT_ERROR
    assert "loop.json" in done.results.output_errors[0]
    assert (ctx.tmp / "b.json").exists() and "loop.json" in (ctx.tmp / "s.md").read_text()


@case("output-under-a-file", "outputs", "--voice-latency-json under a regular file",
      "`cannot write '...': Not a directory`, exit 3; the others written")
def _(ctx: Ctx) -> None:
    (ctx.tmp / "blocker").write_text("")
    settings = Settings(json_path=str(ctx.tmp / "blocker" / "o.json"),
                        save_path=str(ctx.tmp / "b.json"))
    done = finish(table_with("asr"), 1, settings, facts=RunFacts(tests_run=1))
    assert done.exit_code == ExitCode.OUTPUT_ERROR and (ctx.tmp / "b.json").exists()


@case("output-untraversable", "outputs", "--voice-latency-markdown in a directory without "
      "permissions (skipped as root)", "`cannot write '...': Permission denied`, exit 3")
def _(ctx: Ctx) -> None:
    if os.geteuid() == 0:
        pytest.skip("root traverses any directory")
    locked = ctx.tmp / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        done = finish(table_with("asr"), 1, Settings(markdown_path=str(locked / "d" / "s.md"),
                                                     save_path=str(ctx.tmp / "b.json")))
    finally:
        locked.chmod(0o700)
    assert done.exit_code == ExitCode.OUTPUT_ERROR and (ctx.tmp / "b.json").exists()


@case("output-renderer-recursion", "outputs", "the Markdown renderer raises RecursionError",
      "`cannot write '...': RecursionError: ...`, exit 3; JSON and baseline written")
def _(ctx: Ctx) -> None:
    def boom(results: Results) -> str:
        raise RecursionError("maximum recursion depth exceeded")
    ctx.request.getfixturevalue("monkeypatch").setattr(finish_module, "render", boom)
    settings = Settings(json_path=str(ctx.tmp / "o.json"), save_path=str(ctx.tmp / "b.json"),
                        markdown_path=str(ctx.tmp / "s.md"))
    done = finish(table_with("asr"), 1, settings, facts=RunFacts(tests_run=1))
    assert "RecursionError" in done.results.output_errors[0]
    assert (ctx.tmp / "o.json").exists() and (ctx.tmp / "b.json").exists()


@case("internal-derive-fails", "outputs", "computing the samples raises (a bug)",
      "`computing the samples failed: ...`, exit 3; the terminal says how many spans were "
      "captured, never `no voice spans were captured`")
def _(ctx: Ctx) -> None:
    def boom(table: SpanTable) -> Any:
        raise ValueError("bug")
    ctx.request.getfixturevalue("monkeypatch").setattr(finish_module, "derive", boom)
    done = finish(table_with("asr"), 1, Settings(json_path=str(ctx.tmp / "o.json")))
    assert done.exit_code == ExitCode.INTERNAL_ERROR and (ctx.tmp / "o.json").exists()
    text = "\n".join(terminal_lines(done.results))
    assert "no voice spans were captured" not in text and "30 voice spans were captured" in text


@case("terminal-no-results", "outputs", "the end of the run failed before any results",
      "`N voice spans were captured, but the report could not be made`")
def _(ctx: Ctx) -> None:
    lines = terminal_lines(None, ["boom"], spans=12)
    assert lines[0].startswith("12 voice spans were captured") and lines[1] == "error: boom"


# --- config: the same file, the space form -------------------------------------------------------

def _same(ctx: Ctx, spelling: Callable[[Path], str]) -> None:
    base = baseline_file(ctx.tmp / "a.json")
    with pytest.raises(VoiceLatencyUsageError, match="are the same file"):
        build(save_path=str(base), compare_path=spelling(base))


for _id, _how, _spell in [
    ("same", "the same path", lambda p: str(p)),
    ("dot-slash", "`./a.json` vs `a.json`", lambda p: os.path.join(str(p.parent), ".", p.name)),
    ("symlink", "a symlink to it", lambda p: (p.parent / "l.json").symlink_to(p) or
     str(p.parent / "l.json")),
    ("hardlink", "a hard link to it", lambda p: os.link(p, p.parent / "h.json") or
     str(p.parent / "h.json")),
]:
    case(f"config-save-compare-{_id}", "config", f"--voice-latency-save and -compare on {_how}",
         "usage error `... are the same file: a slow run would replace the baseline ...`"
         )(lambda ctx, spell=_spell: _same(ctx, spell))


@case("config-space-form-pure", "config", "`--voice-latency-compare /elsewhere/base.json` "
      "(space form, outside the project)", "usage error `... write "
      "--voice-latency-compare=/elsewhere/base.json instead`; `=` form and paths inside pass")
def _(ctx: Ctx) -> None:
    outside = baseline_file(ctx.tmp / "base.json")
    project = ctx.tmp / "project"
    project.mkdir()
    opts = ["--voice-latency-compare"]
    msg = misread_path_options(["--voice-latency-compare", str(outside)], opts,
                               invocation_dir=str(project), rootdir=str(project))
    assert msg is not None and f"write --voice-latency-compare={outside} instead" in msg
    assert misread_path_options([f"--voice-latency-compare={outside}"], opts,
                                invocation_dir=str(project), rootdir=str(project)) is None


# --- CLI ---------------------------------------------------------------------------------------

@case("cli-same-file", "CLI", "`compare a.json ./a.json`",
      "`error: 'a.json' and './a.json' are the same file ...`, exit 4")
def _(ctx: Ctx) -> None:
    base = baseline_file(ctx.tmp / "a.json")
    code, text = cli(ctx, "compare", str(base), os.path.join(str(ctx.tmp), ".", "a.json"))
    assert code == ExitCode.BAD_INPUT and "are the same file" in text


@case("cli-partial-baseline", "CLI", "`compare` with a baseline marked partial",
      "`error: '...' is marked partial (...)... pass --allow-partial`, exit 4; with "
      "--allow-partial: compared")
def _(ctx: Ctx) -> None:
    base = baseline_file(ctx.tmp / "base.json", partial=("interrupted",))
    head = baseline_file(ctx.tmp / "head.json")
    code, text = cli(ctx, "compare", str(base), str(head))
    assert code == ExitCode.BAD_INPUT and "is marked partial (interrupted)" in text
    code, _ = cli(ctx, "compare", str(base), str(head), "--allow-partial")
    assert code == ExitCode.OK


for _id, _text, _match in [("deep", deep(100_000), "nested too deeply"),
                           ("huge-int", dumps(Results()).replace(
                               '"tests": 0', '"tests": ' + "1" * 400),
                            "a number of 400 characters"),
                           ("gate-no-fields", dumps(Results()).replace(
                               '"gates": []', '"gates": [{"stage": "asr"}]'), "has no 'line'"),
                           ("empty", "", "is not valid JSON")]:
    def _cli_bad(ctx: Ctx, text: str = _text, match: str = _match) -> None:
        bad = ctx.tmp / "bad.json"
        bad.write_text(text)
        head = baseline_file(ctx.tmp / "head.json")
        code, out = cli(ctx, "compare", str(bad), str(head))
        assert code == ExitCode.BAD_INPUT and match in out and len(out.strip().splitlines()) == 1
        code, out = cli(ctx, "merge", str(head), str(bad), "-o", str(ctx.tmp / "all.json"))
        assert code == ExitCode.BAD_INPUT and match in out and not (ctx.tmp / "all.json").exists()
    case(f"cli-{_id}", "CLI", f"`compare`/`merge` with a {_id} file",
         f"one line `error: '...' ... {_match} ...`, exit 4 (never a traceback, never exit 1)"
         )(_cli_bad)


@case("cli-merge-output-loop", "CLI", "`merge -o` onto a symlink loop",
      "`error: cannot write '...'`, exit 3")
def _(ctx: Ctx) -> None:
    a = baseline_file(ctx.tmp / "a.json")
    loop = ctx.tmp / "loop.json"
    loop.symlink_to(loop)
    code, text = cli(ctx, "merge", str(a), "-o", str(loop))
    assert code == ExitCode.OUTPUT_ERROR and "cannot write" in text


@case("cli-directory", "CLI", "`compare DIR head.json`", "`error: '...' is not a regular file`, "
      "exit 4")
def _(ctx: Ctx) -> None:
    head = baseline_file(ctx.tmp / "head.json")
    code, text = cli(ctx, "compare", str(ctx.tmp), str(head))
    assert code == ExitCode.BAD_INPUT and "is not a regular file" in text


@case("cli-hostile-names", "CLI", "a baseline whose stage name holds ESC/OSC and a newline",
      "printed escaped (`\\x1b`, `\\n`): no control character reaches the terminal")
def _(ctx: Ctx) -> None:
    base = ctx.tmp / "b.json"
    save(run_of(dist(HOSTILE, "first_byte_ms", list(range(60)))), base, with_samples=False)
    head = ctx.tmp / "h.json"
    save(run_of(dist("tts", "first_byte_ms", list(range(60)))), head, with_samples=False)
    code, text = cli(ctx, "compare", str(base), str(head))
    assert "\x1b" not in text and "\x07" not in text and "\\x1b" in text
    assert not any(line.strip() == "ALL GATES PASSED" for line in text.splitlines())


# --- hostile strings through every output --------------------------------------------------

def hostile_results() -> Results:
    d = dist(HOSTILE, "first_byte_ms", list(range(60)))
    gates = evaluate(Distributions({d.key: d}), parse_thresholds(["asr*: p95 < 10"]),
                     GatePolicy())
    return run_of(d, gates=gates, warnings=(f"stage {HOSTILE} is odd",),
                  errors=(f"cannot use {HOSTILE}",), problems=(f"span {HOSTILE!s}",),
                  problem_count=1)


@case("hostile-terminal-table", "hostile strings", "stage name with ESC/OSC, BEL and a newline "
      "then `ALL GATES PASSED`", "table row shows `asr\\x1b]8;;...\\nALL GATES PASSED`: no forged "
      "row, no control character")
def _(ctx: Ctx) -> None:
    lines = terminal_lines(hostile_results())
    assert all("\x1b" not in line and "\x07" not in line and "\n" not in line for line in lines)
    assert not any(line.strip().startswith("ALL GATES PASSED") for line in lines)


@case("hostile-terminal-gates-warnings", "hostile strings", "the same name in gate lines, "
      "warnings, errors and span problems", "every line escaped")
def _(ctx: Ctx) -> None:
    lines = terminal_lines(hostile_results())
    for prefix in ("  FAIL", "warning:", "error:", "  span"):
        line = next(x for x in lines if x.startswith(prefix))
        assert "\\x1b" in line and "\x1b" not in line


@case("hostile-terminal-bidi", "hostile strings", "a right-to-left override (U+202E) in a name",
      "shown as `\\u202e`")
def _(ctx: Ctx) -> None:
    assert escape.terminal("a\u202eb") == "a\\u202eb"


@case("hostile-markdown-table", "hostile strings", "the name in the Markdown PR comment",
      "a code span with a longer fence; no raw `<img`, link, mention or extra table row")
def _(ctx: Ctx) -> None:
    text = render(hostile_results())
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 2  # header and the one stage: no forged row
    assert escape.markdown(HOSTILE) in rows[1]
    outside = text.replace(escape.markdown(HOSTILE), "")
    for raw in ("<img", "](http", "\x1b"):
        assert not re.search(r"(?<!\\)" + re.escape(raw), outside), raw
    assert "@everyone" not in outside  # mentions neutralised (a word joiner after @)


@case("hostile-markdown-fence", "hostile strings", "a name made of backticks (```` ``` ````)",
      "a fence longer than any backtick run inside")
def _(ctx: Ctx) -> None:
    assert escape.markdown("a```b") == "````a```b````"


@case("hostile-junit", "hostile strings", "ESC/NUL in a stage name in JUnit properties",
      "property names hold only XML 1.0 characters (`\\x1b` shown escaped)")
def _(ctx: Ctx) -> None:
    cap = spans_with("asr\x1b\x00", {"audio.first_byte_ms": 5.0})
    props = junit_properties(cap.sample_set())
    root = ET.Element("testcase")
    for name, value in props:
        ET.SubElement(root, "property", name=name, value=value)
    ET.fromstring(ET.tostring(root))
    assert props and all("\x1b" not in n and "\x00" not in n for n, _ in props)


@case("hostile-json-round-trip", "hostile strings", "the name through the JSON results file",
      "kept exactly (JSON escapes it)")
def _(ctx: Ctx) -> None:
    run = hostile_results()
    assert list(loads(dumps(run)).distributions) == list(run.distributions)


# --- real pytest runs ---------------------------------------------------------------------------

SUITE = '''
import os
import pytest
from pytest_voicelatency import stage_span


class TickClock:
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


def turns(stage, n=30):
    clock = TickClock()
    for t in range(n):
        with stage_span(stage, "s", t, clock=clock) as fb:
            fb()


@pytest.mark.voice_latency
def test_asr():
    turns("asr")


@pytest.mark.voice_latency
def test_tts():
    turns("tts")
    if os.environ.get("VOICE_FAIL"):
        assert False, "asked to fail"
'''


def suite(ctx: Ctx, extra: str = "") -> pytest.Pytester:
    p = ctx.pytester
    p.makepyfile(test_suite=SUITE)
    result = p.runpytest("--voice-latency-save=base.json")
    assert result.ret == 0, result.stdout.str()
    if extra:  # a test that breaks the run joins the suite after the complete baseline
        p.makepyfile(test_suite=SUITE + extra)
    return p


def kept(p: pytest.Pytester, run: Callable[[], pytest.RunResult], *match: str
         ) -> pytest.RunResult:
    before = (p.path / "base.json").read_bytes()
    result = run()
    assert (p.path / "base.json").read_bytes() == before, result.stdout.str()
    both = pytest.LineMatcher(result.stdout.lines + result.stderr.lines)
    both.fnmatch_lines([f"*{m}*" for m in match])
    return result


@case("pytest-collect-only", "pytest", "`pytest --collect-only --voice-latency-save b.json` (an "
      "IDE with the option in addopts)", "exit 0; `warning: baseline 'base.json' not saved: "
      "--collect-only: no test ran; the existing file is kept`")
def _(ctx: Ctx) -> None:
    p = suite(ctx)
    result = kept(p, lambda: p.runpytest("--collect-only", "--voice-latency-save=base.json"),
                  "not saved: --collect-only: no test ran; the existing file is kept")
    assert result.ret == 0


@case("pytest-k-subset", "pytest", "`-k asr --voice-latency-save base.json`",
      "`warning: baseline 'base.json' not saved: this run is incomplete (1 test deselected ...)`")
def _(ctx: Ctx) -> None:
    p = suite(ctx)
    kept(p, lambda: p.runpytest("-k", "asr", "--voice-latency-save=base.json"),
         "not saved: this run is incomplete (1 test deselected")


@case("pytest-no-tests", "pytest", "`-k nomatch --voice-latency-save base.json`",
      "exit 5; `not saved: no test ran ...`")
def _(ctx: Ctx) -> None:
    p = suite(ctx)
    result = kept(p, lambda: p.runpytest("-k", "nomatch", "--voice-latency-save=base.json"),
                  "not saved: no test ran")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


@case("pytest-failing-test", "pytest", "a failing test with --voice-latency-save",
      "exit 1; `not saved: this run is incomplete (1 test failed)`")
def _(ctx: Ctx) -> None:
    p = suite(ctx)
    os.environ["VOICE_FAIL"] = "1"
    try:
        result = kept(p, lambda: p.runpytest("--voice-latency-save=base.json"),
                      "not saved: this run is incomplete (1 test failed)")
    finally:
        del os.environ["VOICE_FAIL"]
    assert result.ret == 1


@case("pytest-lf", "pytest", "`--lf --voice-latency-save base.json` after a failure",
      "`not saved: this run is incomplete (1 test deselected ...; --lf: only the last failures "
      "ran)`", slow=True)
def _(ctx: Ctx) -> None:
    p = suite(ctx)
    cache = p.path / ".pytest_cache" / "v" / "cache"
    cache.mkdir(parents=True, exist_ok=True)  # as a run whose test_tts failed leaves it
    (cache / "lastfailed").write_text(json.dumps({"test_suite.py::test_tts": True}))
    kept(p, lambda: p.runpytest_subprocess("-p", "cacheprovider", "--lf",
                                           "--voice-latency-save=base.json"),
         "--lf: only the last failures ran")


MORE = '''
import os
import pytest
from test_suite import turns


@pytest.mark.voice_latency
def test_llm():
    if os.environ.get("VOICE_SKIP_LLM"):
        pytest.skip("no LLM key in this environment")
    turns("llm")
'''


def two_files(ctx: Ctx) -> pytest.Pytester:
    """The suite in two files; base.json saved from all of it (3 tests, 3 stages)."""
    p = ctx.pytester
    p.makepyfile(test_suite=SUITE, test_more=MORE)
    result = p.runpytest("--voice-latency-save=base.json")
    assert result.ret == 0, result.stdout.str()
    assert json.loads((p.path / "base.json").read_text())["test_ids"] == [
        "test_more.py::test_llm", "test_suite.py::test_asr", "test_suite.py::test_tts"]
    return p


def saved(p: pytest.Pytester, path: str, run: Callable[[], pytest.RunResult]
          ) -> dict[str, Any]:
    """Run, check that ``path`` was (re)written, and return its document."""
    target = p.path / path
    before = (target.stat().st_ino, target.stat().st_mtime_ns) if target.exists() else None
    result = run()
    assert "not saved" not in result.stdout.str(), result.stdout.str()
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) != before  # replaced (atomically: a new inode)
    doc: dict[str, Any] = json.loads(target.read_text())
    assert doc.get("format") == "pytest-voicelatency/results", result.stdout.str()
    return doc


@case("pytest-path-subset", "pytest", "`pytest test_suite.py --voice-latency-save base.json` "
      "over a baseline saved from the whole suite (nothing is reported deselected)",
      "baseline kept; `warning: baseline 'base.json' not saved: this run covers less than it "
      "(1 test of the baseline not collected by this run (test_more.py::test_llm)); the "
      "existing file is kept (run the whole suite, or pass --voice-latency-save-partial ...; "
      "if those tests were removed for good, delete 'base.json' first)`")
def _(ctx: Ctx) -> None:
    p = two_files(ctx)
    result = kept(p, lambda: p.runpytest("test_suite.py", "--voice-latency-save=base.json"),
                  "not saved: this run covers less than it (1 test of the baseline not "
                  "collected by this run (test_more.py::test_llm)); the existing file is kept*"
                  "delete 'base.json' first)")
    assert result.ret == 0


@case("pytest-node-id-subset", "pytest", "`pytest test_suite.py::test_asr "
      "--voice-latency-save base.json` over a whole-suite baseline",
      "baseline kept; `not saved: this run covers less than it (2 tests of the baseline not "
      "collected by this run (test_more.py::test_llm, test_suite.py::test_tts)) ...`")
def _(ctx: Ctx) -> None:
    p = two_files(ctx)
    kept(p, lambda: p.runpytest("test_suite.py::test_asr", "--voice-latency-save=base.json"),
         "not saved: this run covers less than it (2 tests of the baseline not collected by "
         "this run (test_more.py::test_llm, test_suite.py::test_tts))*")


@case("pytest-skipped-test", "pytest", "a test of the baseline skips this run (a missing "
      "key) with --voice-latency-save", "baseline kept; `not saved: this run covers less than "
      "it (1 test of the baseline ran but recorded no samples this time, skipped? "
      "(test_more.py::test_llm)) ...`")
def _(ctx: Ctx) -> None:
    p = two_files(ctx)
    os.environ["VOICE_SKIP_LLM"] = "1"
    try:
        kept(p, lambda: p.runpytest("--voice-latency-save=base.json"),
             "not saved: this run covers less than it (1 test of the baseline ran but recorded "
             "no samples this time, skipped? (test_more.py::test_llm))*")
    finally:
        del os.environ["VOICE_SKIP_LLM"]


@case("pytest-path-subset-save-partial", "pytest", "the path subset with "
      "`--voice-latency-save-partial`", "replaced, marked `\"partial\": {\"reasons\": [\"1 test "
      "of the baseline not collected by this run (test_more.py::test_llm)\"]}`; `compare` then "
      "refuses it unless `--allow-partial`")
def _(ctx: Ctx) -> None:
    p = two_files(ctx)
    doc = saved(p, "base.json", lambda: p.runpytest(
        "test_suite.py", "--voice-latency-save=base.json", "--voice-latency-save-partial"))
    assert doc["partial"]["reasons"] == [
        "1 test of the baseline not collected by this run (test_more.py::test_llm)"]
    assert doc["test_ids"] == ["test_suite.py::test_asr", "test_suite.py::test_tts"]
    (p.path / "head.json").write_bytes((p.path / "base.json").read_bytes())
    code, out = cli(ctx, "compare", str(p.path / "base.json"), str(p.path / "head.json"))
    assert code != 0 and "marked partial" in out, out


@case("pytest-path-subset-new-file", "pytest", "`pytest test_suite.py --voice-latency-save "
      "new.json` (no file there yet)", "saved, complete (nothing to compare it with)")
def _(ctx: Ctx) -> None:
    p = two_files(ctx)
    doc = saved(p, "new.json", lambda: p.runpytest("test_suite.py",
                                                   "--voice-latency-save=new.json"))
    assert doc["partial"] is None and len(doc["test_ids"]) == 2


@case("pytest-folder-ci-pattern", "pytest", "`pytest latency/ --voice-latency-save base.json` "
      "(the CI pattern) over a baseline saved by plain `pytest` (unit tests elsewhere), then "
      "again over its own", "saved both times: every test with samples in the baseline is "
      "collected")
def _(ctx: Ctx) -> None:
    p = ctx.pytester
    (p.path / "latency").mkdir()
    (p.path / "latency" / "test_suite.py").write_text(SUITE)
    (p.path / "latency" / "test_more.py").write_text(MORE)
    p.makepyfile(test_unit="def test_unit():\n    pass\n")
    whole = saved(p, "base.json", lambda: p.runpytest("--voice-latency-save=base.json"))
    assert len(whole["test_ids"]) == 3 and whole["partial"] is None
    for _ in range(2):
        doc = saved(p, "base.json", lambda: p.runpytest("latency/",
                                                        "--voice-latency-save=base.json"))
        assert doc["test_ids"] == whole["test_ids"] and doc["partial"] is None


@case("pytest-removed-test-file", "pytest", "a test file of the baseline deleted, then the "
      "whole suite saved", "saved, complete: a test whose file is gone left the suite")
def _(ctx: Ctx) -> None:
    p = two_files(ctx)
    (p.path / "test_more.py").unlink()
    doc = saved(p, "base.json", lambda: p.runpytest("--voice-latency-save=base.json"))
    assert doc["partial"] is None and len(doc["test_ids"]) == 2


@case("save-older-baseline-narrower", "results files", "a baseline of an older version (no "
      "`test_ids`) holding `asr` and `tts`; a run with only `asr` saves over it",
      "kept; `not saved: this run covers less than it (1 stage/metric of the baseline with no "
      "samples in this run (tts first_byte_ms)) ...`")
def _(ctx: Ctx) -> None:
    base = ctx.tmp / "base.json"
    save(run_of(dist("asr", "first_byte_ms", [100.0] * 30), dist("tts", "first_byte_ms",
                                                                  [80.0] * 30)), base,
         with_samples=False)
    before = base.read_bytes()
    assert json.loads(before)["test_ids"] is None
    done = finish(table_with("asr"), 1, Settings(save_path=str(base)),
                  facts=RunFacts(tests_run=1, reported=("t",)))
    assert base.read_bytes() == before
    assert any("not saved: this run covers less than it (1 stage/metric of the baseline with "
               "no samples in this run (tts first_byte_ms))" in w for w in done.results.warnings)


@case("pytest-save-compare-same", "pytest", "`--voice-latency-save=b.json "
      "--voice-latency-compare=./b.json`", "usage error (exit 4) `... are the same file ...`")
def _(ctx: Ctx) -> None:
    p = suite(ctx)
    result = kept(p, lambda: p.runpytest("--voice-latency-save=base.json",
                                         "--voice-latency-compare=./base.json"),
                  "are the same file")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


@case("pytest-ini-bool", "pytest", "`voice_latency = maybe` in the ini",
      "usage error `voice_latency = 'maybe' in the ini file: give true or false`")
def _(ctx: Ctx) -> None:
    p = ctx.pytester
    p.makeini("[pytest]\nvoice_latency = maybe\n")
    p.makepyfile(test_x="def test_x():\n    pass\n")
    result = p.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*voice_latency = 'maybe' in the ini file: give true or false*"])


@case("pytest-space-form", "pytest", "`--voice-latency-compare /tmp/x/base.json` (space form, "
      "outside the project, a pytest.ini with a threshold)", "usage error `... write "
      "--voice-latency-compare=... instead`; the `=` form applies the threshold (exit 1)",
      slow=True)
def _(ctx: Ctx) -> None:
    p = suite(ctx)
    p.makeini("[pytest]\nvoice_latency_thresholds = asr: p95 < 0.5\n")
    outside = ctx.tmp.parent / f"{ctx.tmp.name}-elsewhere"
    outside.mkdir(exist_ok=True)
    (outside / "base.json").write_bytes((p.path / "base.json").read_bytes())
    result = p.runpytest_subprocess("--voice-latency-compare", str(outside / "base.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*write --voice-latency-compare={outside / 'base.json'} "
                                 "instead*"])
    result = p.runpytest_subprocess(f"--voice-latency-compare={outside / 'base.json'}")
    assert result.ret == 1 and "p95 < 0.5" in result.stdout.str()


@case("pytest-hostile-stage", "pytest", "a test emitting a stage named with ESC/OSC, a newline "
      "and `ALL GATES PASSED`, with --junitxml, --voice-latency-json and -markdown",
      "terminal escaped; JUnit XML parses; Markdown has no raw HTML; JSON keeps the name")
def _(ctx: Ctx) -> None:
    p = ctx.pytester
    p.makepyfile(test_h='''
import pytest
from pytest_voicelatency import stage_span

@pytest.mark.voice_latency
def test_h():
    for t in range(3):
        with stage_span("asr", "s", t, attributes={"stage": %r}) as fb:
            fb()
'''.replace("%r", repr(HOSTILE)))
    result = p.runpytest("--voice-latency-json=o.json", "--voice-latency-markdown=s.md",
                         "--junitxml=j.xml")
    text = result.stdout.str()
    assert "\x1b" not in text and not any(line.strip() == "ALL GATES PASSED"
                                          for line in text.splitlines())
    ET.parse(p.path / "j.xml")
    markdown = (p.path / "s.md").read_text().replace(escape.markdown(HOSTILE), "")
    assert not re.search(r"(?<!\\)<img", markdown)
    stages = {d["stage"] for d in json.loads((p.path / "o.json").read_text())["distributions"]}
    assert HOSTILE in stages


@case("pytest-nested-baseline", "pytest", "--voice-latency-compare with a baseline nested 100k "
      "deep, plus -json and -markdown", "`error: baseline not compared: ... nested too deeply "
      "...`, exit 4; table, JSON and Markdown still made")
def _(ctx: Ctx) -> None:
    p = suite(ctx)
    (p.path / "deep.json").write_text(deep(100_000))
    result = p.runpytest("--voice-latency-compare=deep.json", "--voice-latency-json=o.json",
                         "--voice-latency-markdown=s.md")
    assert result.ret == ExitCode.BAD_INPUT
    result.stdout.fnmatch_lines(["asr*first_byte_ms*30*", "*nested too deeply*"])
    assert (p.path / "o.json").exists() and (p.path / "s.md").exists()


@case("pytest-nothing-regression", "pytest", "--voice-latency-compare: the baseline's tts "
      "answered; now every tts turn produces nothing (first_byte_ms = -1)",
      "exit 1, `REGRESSION: tts first_byte_ms produced nothing in 30 of 30 samples`; no advice "
      "to refresh the baseline")
def _(ctx: Ctx) -> None:
    p = suite(ctx)
    p.makepyfile(test_suite=SUITE.replace("            fb()", "            if stage != 'tts':\n"
                                                            "                fb()"))
    result = p.runpytest("--voice-latency-compare=base.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*REGRESSION: tts first_byte_ms produced nothing in 30 of 30*"])
    assert "refresh the baseline" not in result.stdout.str()


@case("pytest-ctrl-c", "pytest", "a test raises KeyboardInterrupt during `--voice-latency-save "
      "base.json --voice-latency-json out.json`", "exit 2; baseline kept (`not saved: this run "
      "is incomplete (interrupted ...)`); out.json written with `partial`", slow=True)
def _(ctx: Ctx) -> None:
    p = suite(ctx, extra="\n\ndef test_zz_interrupt():\n    turns('llm', 5)\n"
                         "    raise KeyboardInterrupt\n")
    result = kept(p, lambda: p.runpytest_subprocess("--voice-latency-save=base.json",
                                                    "--voice-latency-json=out.json"),
                  "not saved: this run is incomplete (interrupted")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    doc = json.loads((p.path / "out.json").read_text())
    assert doc["partial"]["reasons"][0].startswith("interrupted")


@case("pytest-xdist-crash", "pytest", "a test kills its xdist worker (`os._exit`) under `-n 2`",
      "`PARTIAL RUN (SAMPLES LOST): ... samples lost: worker 'gw.' crashed while running ...`; "
      "baseline kept; JSON `lost_samples: true`", slow=True)
def _(ctx: Ctx) -> None:
    pytest.importorskip("xdist")
    p = suite(ctx, extra="\n\ndef test_zz_crash():\n    turns('llm', 5)\n    os._exit(1)\n")
    kept(p, lambda: p.runpytest_subprocess("-n", "2", "--voice-latency-save=base.json",
                                           "--voice-latency-json=out.json"),
         "PARTIAL RUN (SAMPLES LOST)*samples lost: worker*crashed while running")
    assert json.loads((p.path / "out.json").read_text())["partial"]["lost_samples"] is True


# --- the matrix ----------------------------------------------------------------------

@pytest.mark.parametrize("c", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow
                                            else []) for c in CASES])
def test_bad_input(c: Case, tmp_path: Path, request: pytest.FixtureRequest,
                   capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VoiceLatencyWarning)
        c.check(Ctx(tmp_path, request, capsys))


def test_the_suite_has_at_least_60_cases() -> None:
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


def doc_table() -> str:
    """The case table of docs/robustness.md."""
    out = ["| case | area | given | outcome |", "|---|---|---|---|"]
    for c in CASES:
        cells = [f"`{c.id}`", c.area, c.given, c.outcome]
        out.append("| " + " | ".join(x.replace("|", "\\|").replace("\n", " ") for x in cells)
                   + " |")
    return "\n".join(out)


def test_the_robustness_doc_lists_every_case() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "robustness.md").read_text()
    missing = [c.id for c in CASES if f"`{c.id}`" not in doc]
    assert not missing, f"docs/robustness.md lacks {missing}: run python tests/test_bad_input.py"


if __name__ == "__main__":  # regenerate the table of docs/robustness.md
    path = Path(__file__).parent.parent / "docs" / "robustness.md"
    text = path.read_text()
    start, end = "<!-- cases: start -->", "<!-- cases: end -->"
    head, rest = text.split(start)
    path.write_text(f"{head}{start}\n{doc_table()}\n{end}{rest.split(end)[1]}")
    sys.exit(0)

