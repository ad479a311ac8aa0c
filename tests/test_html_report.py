"""The HTML report: one self-contained page, safe against hostile names, small for long runs,
and verified in a real browser (headless Chromium) as a person would open it."""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import pytest
from helpers import EXAMPLES, record, table_of

from pytest_voicelatency import voice_spans
from pytest_voicelatency.agents import NO_FLUSH, ReferenceServer
from pytest_voicelatency.call.caller import Caller
from pytest_voicelatency.files import write_atomic
from pytest_voicelatency.gate.compare import compare
from pytest_voicelatency.gate.evaluate import GatePolicy, evaluate
from pytest_voicelatency.gate.thresholds import parse_thresholds
from pytest_voicelatency.report.html import render, report, waterfall_keys
from pytest_voicelatency.results.model import Results
from pytest_voicelatency.run.finish import finish
from pytest_voicelatency.run.settings import Settings
from pytest_voicelatency.spans.record import SpanRecord
from pytest_voicelatency.spans.rows import SpanTable
from pytest_voicelatency.spans.samples import derive
from pytest_voicelatency.stats.distribution import Distributions

CHROMIUM = Path("/usr/bin/chromium")
LIMIT_BYTES = 2_000_000

#: Tags the page is made of; anything else in the output was injected.
TAGS = {"html", "head", "meta", "title", "style", "body", "main", "header", "nav", "section",
        "h1", "h2", "h3", "div", "span", "p", "pre", "code", "ul", "li", "a", "b", "i", "table",
        "tr", "th", "td", "br", "figure", "figcaption", "article", "details", "summary", "button",
        "script", "svg", "rect", "line", "text", "path"}
ATTRIBUTES = {"lang", "charset", "http-equiv", "content", "name", "class", "id", "href", "type",
              "title", "viewbox", "width", "height", "role", "aria-label", "x", "y", "x1", "x2",
              "y1", "y2", "text-anchor", "d"}


class Page(HTMLParser):
    """Every element, attribute and text of a page, as a browser's tokenizer sees them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.script: list[str] = []
        self._in: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self._in:
            while self._in.pop() != tag:
                pass

    def handle_data(self, data):
        (self.script if self._in and self._in[-1] in ("script", "style") else self.text).append(
            data)

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if a.get("id")}

    def hrefs(self) -> list[str]:
        return [a["href"] or "" for t, a in self.tags if t == "a" and "href" in a]


def _turns(session: str, count: int, *, barge: bool = True, slow: float = 1.0,
           stage: str = "asr", turn_prefix: str = "") -> list[SpanRecord]:
    """``count`` synthetic turns of one session: handoff, asr, a gap, llm, tts, a barge-in the
    agent cancels fast while the caller hears silence ~450 ms later, and the caller's views."""
    out = []
    for k in range(count):
        t0, turn = 4000.0 * k, f"{turn_prefix}{k}"
        jitter = (k * 37 % 23) * slow
        out += [
            record("turn", t0, t0 + 1500 + jitter, session=session, turn=turn),
            record("handoff.vad_to_asr", t0, t0 + 40 + jitter, session=session, turn=turn),
            record(stage, t0 + 40 + jitter, t0 + 400, session=session, turn=turn,
                   metrics={"first_byte_ms": 60.0 + jitter}),
            record("llm", t0 + 410 + jitter, t0 + 900, session=session, turn=turn,
                   metrics={"first_byte_ms": 150.0 + 2 * jitter}),
            record("tts", t0 + 700, t0 + 1500 + jitter, session=session, turn=turn,
                   metrics={"first_byte_ms": 90.0 + jitter}),
            record("caller.response", t0 + 380, t0 + 1000 + jitter, session=session, turn=turn,
                   bar=False, metrics={"latency_ms": 620.0 + jitter}),
        ]
        if barge:
            onset = t0 + 2000
            out += [
                record("barge_in", onset + 40, onset + 60 + jitter, session=session, turn=turn,
                       metrics={"first_byte_ms": 18.0 + jitter, "silence_ms": 60.0 + jitter}),
                record("caller.barge_in", onset, onset + 480 + jitter, session=session,
                       turn=turn, bar=False, metrics={"latency_ms": 480.0 + jitter}),
            ]
    return out


def _results(table: SpanTable, lines: list[str] = (), base: Distributions | None = None,
             **fields) -> Results:
    samples = derive(table)
    distributions = Distributions.of(samples)
    gates = evaluate(samples, parse_thresholds(lines), GatePolicy()) if lines else None
    comparison = compare(base, distributions, base_name="base.json") if base else None
    return Results(distributions, tests=1, spans=len(table), gates=gates, comparison=comparison,
                   **fields)


# -- the page's shape --------------------------------------------------------------------------

def test_every_verdict_links_to_its_samples_its_worst_turns_and_its_baseline():
    """Each gate and each comparison block carries links, and every link lands on an element
    of the page: the stage's histogram, its worst turns' waterfalls, its baseline row."""
    base = _results(table_of(*_turns("b", 30, slow=0.5))).distributions
    table = table_of(*_turns("s", 30, slow=3.0))
    results = _results(table, ["barge_in: p95 < 50", "gap.*: p95 < 100"], base)
    page = Page(report(results, table, turns=4))
    ids = page.ids()
    assert set(page.hrefs()) <= {f"#{i}" for i in ids}
    blocks = re.findall(r'<div class="verdict[^"]*">(.*?)</div></div>',
                        report(results, table, turns=4), flags=re.S)
    assert len(blocks) == len(results.gates.results) + len(results.comparison.changes)
    for gate in results.gates.results:
        if gate.outcome == "missing":
            continue
        key = f"{gate.stage}.{gate.metric}".replace("*", "-")
        block = next(b for b in blocks if f"gate: {gate.headline()}" in html.unescape(b))
        assert f'href="#dist-{key}' in block and f'href="#worst-{key}' in block
        assert f'href="#base-{key}' in block  # compared too
    assert any(i.startswith("worst-barge_in.silence_ms") and i.endswith("-4") for i in ids)


def test_the_worst_barge_in_shows_the_audio_heard_after_the_agents_cancel():
    table = table_of(*_turns("s", 12))
    results = _results(table, ["barge_in: p95 < 200"])
    text = report(results, table, turns=3)
    assert ("barge_in", "silence_ms") in waterfall_keys(results)
    assert text.count("still heard after the agent&#x27;s cancel") >= 3
    assert "gaps between bars" in text and "what the caller heard" in text
    assert "caller.barge_in" in text and "first audible agent audio at" in text  # on hover


def test_without_verdicts_the_agents_stages_and_the_callers_views_get_waterfalls():
    table = table_of(*_turns("s", 5))
    keys = waterfall_keys(_results(table))
    assert ("barge_in", "silence_ms") in keys and ("caller.barge_in", "latency_ms") in keys
    assert ("handoff.vad_to_asr", "duration_ms") in keys and ("asr", "first_byte_ms") in keys
    assert not any(s.startswith(("gap.", "turn")) for s, _ in keys)


def test_the_spans_vs_heard_table_pairs_barge_ins_and_names_the_worst_turns():
    table = table_of(*_turns("s", 8))
    text = report(_results(table), table, turns=10)
    section = text[text.index('<section id="heard">'):]
    section = section[:section.index("</section>")]
    assert "8 turns paired; in 8 the caller heard the agent more than 50 ms longer" in section
    assert section.count("<tr>") == 1 + 8 and 'href="#worst-caller.barge_in' in section


def test_results_read_from_a_file_render_without_turns():
    text = render(_results(table_of(*_turns("s", 3))))
    assert "No turns to draw" in text and 'id="distributions"' in text


def test_the_page_is_self_contained():
    """No network: nothing loads from anywhere; the CSP allows only the page's own inline style
    and script (by hash)."""
    table = table_of(*_turns("s", 5))
    text = report(_results(table), table)
    page = Page(text)
    for _, attrs in page.tags:
        assert not {"src", "srcset", "action", "formaction", "xlink:href"} & set(attrs)
    assert all(h.startswith("#") for h in page.hrefs())
    csp = next(a["content"] for t, a in page.tags if a.get("http-equiv") ==
               "Content-Security-Policy")
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert [t for t, _ in page.tags].count("script") == 1


# -- hostile names ---------------------------------------------------------------------------

HOSTILE = ("<script>alert(1)</script>\"'</style><img src=x onerror=alert(2)>"
           "<a href=\"javascript:alert(3)\">x</a>&amp;\x00\x07\x1b[2J\u202e{y}\0y\0")


def test_text_from_spans_and_results_renders_as_text_in_every_field():
    """A hostile string as a stage name, handoff, session id, turn id, test id, metric name,
    warning, problem, error, note, partial reason and run name: the parsed page has no element
    or attribute the renderer did not write, and the string is there as text."""
    h = HOSTILE
    records = [r._replace(metrics=(*r.metrics, (h, 5.0)))
               for r in _turns(h, 3, stage=h, turn_prefix=h)]
    records.append(record(f"handoff.{h}_to_asr", 0, 30, session=h, turn=f"{h}0"))
    table = table_of(*records, test=h)
    base = _results(table_of(*_turns(h, 3, stage=h))).distributions
    results = _results(table, ["*: p95 < 100"], base, warnings=(h,), errors=(h,), notes=(h,),
                       problems=(h,), problem_count=1, partial=(h,), source=h)
    text = report(results, table, turns=3)
    page = Page(text)
    for tag, attrs in page.tags:
        assert tag in TAGS, tag
        assert set(attrs) <= ATTRIBUTES, (tag, attrs)
        assert (attrs.get("href") or "#").startswith("#"), attrs
    assert [t for t, _ in page.tags].count("script") == 1
    assert [t for t, _ in page.tags].count("style") == 1
    assert "alert" not in "".join(page.script)
    assert all(h.startswith("#") for h in page.hrefs())
    shown = "".join(page.text)
    visible = "<script>alert(1)</script>\"'</style><img src=x onerror=alert(2)>"
    assert shown.count(visible) >= 12
    assert "\\x00\\x07\\x1b[2J\\u202e{y}\\x00y\\x00" in shown
    assert "\x00" not in text and "\x1b" not in text and "\u202e" not in text


# -- size ------------------------------------------------------------------------------------

def test_a_run_of_ten_thousand_turns_gives_a_report_under_two_megabytes():
    """Histograms aggregate; waterfalls are drawn for the worst turns only."""
    table = SpanTable()
    for session in range(100):
        for r in _turns(f"call-{session}", 100, turn_prefix=f"{session}-"):
            table.add(r, f"test_{session % 7}")
    samples = derive(table)
    results = _results(table, ["asr: p95 < 50", "llm: p95 < 150", "tts: p95 < 200",
                               "barge_in: p95 < 200", "caller.*: p95 < 500", "gap.*: p95 < 5",
                               "handoff.*: p95 < 50"])
    assert len(samples.select("caller.response").values) == 10_000
    size = len(report(results, table, turns=10, samples=samples).encode())
    assert size < LIMIT_BYTES, f"{size} bytes"


# -- in a browser ----------------------------------------------------------------------------

def _example_suite() -> ModuleType:
    """The example suite's module (for its call mix and line), loaded from its file."""
    spec = importlib.util.spec_from_file_location("example_suite",
                                                  EXAMPLES / "test_reference_agent_latency.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reference_run(no_flush: bool, calls: int) -> SpanTable:
    """The bundled reference agent on a virtual clock, with the example suite's call mix."""
    suite = _example_suite()
    with voice_spans() as spans:
        caller = Caller(clock="virtual", playout=suite.LINE)
        for k in range(calls):
            caller.run(ReferenceServer(**(NO_FLUSH if no_flush else {})), suite.conversation(k))
    return spans.table


def _chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium (/usr/bin/chromium, Debian's "
                    "'chromium' package) is not installed: apt-get install -y chromium")
def test_the_reference_agents_report_opens_in_chromium_without_errors(tmp_path):
    """The no-flush incident on the reference agent, gated as the example suite budgets it and
    compared with a run that flushes: Chromium loads the page offline, runs its script (it
    marks the document ``data-js-ok``), logs no console error or CSP refusal, and the DOM has
    the sections, the barge-in waterfalls and the buffered audio after the cancel.

    With ``VOICE_LATENCY_SCREENSHOTS=<dir>`` the screenshots are kept there (docs/img)."""
    baseline = tmp_path / "base.json"
    finish(_reference_run(False, 6), 1, Settings(save_path=str(baseline)))
    table = _reference_run(True, 6)
    settings = Settings(thresholds=tuple(parse_thresholds(
        ["handoff.vad_to_asr: p95 < 250", "asr: p95 < 150", "llm: p95 < 400", "tts: p95 < 350",
         "barge_in: p95 < 200", "caller.response: p95 < 1400", "caller.barge_in: p95 < 200"])),
        compare_path=str(baseline))
    results = finish(table, 9, settings).results
    assert results.gates is not None and results.comparison is not None
    page = tmp_path / "report.html"
    write_atomic(page, report(results, table, turns=5))

    dom = _chromium(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-js-ok="1"' in dom.stdout
    console = [line for line in dom.stderr.splitlines()
               if "CONSOLE" in line or "Uncaught" in line or "Refused to" in line
               or "Content Security Policy" in line]
    assert console == []
    for needle in ('id="summary"', 'id="verdicts"', 'id="distributions"', 'id="heard"',
                   'id="worst-barge_in.silence_ms', 'id="worst-caller.barge_in.latency_ms',
                   "still heard after the agent's cancel", 'class="copy"'):
        assert needle in dom.stdout, needle
    assert dom.stdout.count('<svg class="wf"') >= 10

    keep = os.environ.get("VOICE_LATENCY_SCREENSHOTS")
    out = Path(keep) if keep else tmp_path
    shots = {"html-report.png": ("1240,1500", page),
             "html-report-barge-in.png": ("1240,900", _section(page, "worst-barge_in."))}
    for name, (size, target) in shots.items():
        shot = _chromium(target, tmp_path, f"--window-size={size}",
                         f"--screenshot={out / name}")
        assert shot.returncode == 0, shot.stderr[-2000:]
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _section(page: Path, anchor: str) -> Path:
    """A copy of the page that starts at the heading ``anchor`` (a screenshot of one part)."""
    text = page.read_text(encoding="utf-8")
    start = text.index(f'<h3 id="{anchor}')
    body = text.index("<main>") + len("<main>")
    part = page.with_name("part.html")
    part.write_text(text[:body] + text[start:], encoding="utf-8")
    return part


PLUGIN_RUN = '''
import pytest
from pytest_voicelatency import stage_span

@pytest.mark.parametrize("worker_share", range(4))
def test_turns(worker_share):
    for turn in range(10):
        with stage_span("asr", f"s{worker_share}", turn) as first:
            first()
        with stage_span("llm", f"s{worker_share}", turn) as first:
            first()
'''


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "xdist"])
def test_the_html_option_writes_one_report_from_the_controller(pytester, workers):
    """--voice-latency-html writes one self-contained page with every worker's stages; under
    xdist only the controller writes it (the workers' spans reach it on their reports)."""
    pytester.makepyfile(test_html_run=PLUGIN_RUN)
    result = pytester.runpytest_subprocess("--voice-latency-html=out/report.html",
                                           "-p", "no:cacheprovider", *workers)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*wrote out/report.html*"])
    page = (pytester.path / "out" / "report.html").read_text(encoding="utf-8")
    assert "asr" in page and "llm" in page and "http://" not in page.replace(
        "http://www.w3.org/2000/svg", "")
    assert [p.name for p in (pytester.path / "out").iterdir()] == ["report.html"]  # no temp left


def test_a_bad_html_turns_value_is_a_usage_error_naming_the_key(pytester):
    pytester.makeini("[pytest]\nvoice_latency_html_turns = many\n")
    pytester.makepyfile(test_html_run=PLUGIN_RUN)
    result = pytester.runpytest_subprocess("--voice-latency-html=r.html", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*voice_latency_html_turns = 'many'*whole number*"])


ASSERTING_RUN = '''
import pytest
from pytest_voicelatency import assert_p95, stage_span


def _turns():
    for turn in range(20):
        with stage_span("asr", "s", turn) as first:
            first()


def test_passes(voice_spans):
    _turns()
    assert_p95(stage="asr", lt=10_000)


def test_fails(voice_spans):
    _turns()
    assert_p95(stage="asr", lt=0.000001)
'''


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "xdist"])
def test_in_test_assertions_reach_the_results_and_link_to_their_samples(pytester, workers):
    """Every verdict links to what it rests on, the tests' own assertions included: each one is
    in the results file and in the report, linked to its stage's histogram."""
    pytester.makepyfile(test_asserting=ASSERTING_RUN)
    result = pytester.runpytest_subprocess("--voice-latency-html=r.html",
                                           "--voice-latency-json=r.json", "-p",
                                           "no:cacheprovider", *workers)
    result.assert_outcomes(passed=1, failed=1)
    doc = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    outcomes = {a["test"].rsplit("::", 1)[1]: a["outcome"] for a in doc["assertions"]}
    assert outcomes == {"test_passes": "pass", "test_fails": "fail"}
    page = (pytester.path / "r.html").read_text(encoding="utf-8")
    assert page.count("assertion in <code>") == 2
    assert 'href="#dist-' in page.split("assertion in <code>", 2)[1]
