"""The pytest plugin: options, the marker, the per-test capture, the fixture and the summary.

This module only wires hooks and options. Fixtures live in ``fixtures.py``, run state in
``state.py`` (kept in ``config.stash``), and what the hooks do in pure modules: capture (collect
spans), samples/summary (derive numbers), table/report (render).

Under pytest-xdist each test's spans travel, as compact bytes, on its teardown report; the
controller merges every report's payload as it arrives, so a crashed worker loses only the test
it was running, and only the controller prints.

CI gates: thresholds and policies are parsed at configure time (a bad value is a usage error);
at session end the controller judges them over every sample of the run, compares with a
baseline and writes the outputs (``finish.py``), and a failure changes the session's exit status
(see ``exitcodes.py``) instead of raising from a reporting hook. Each test also records its
stages' p50/p95/n as JUnit XML properties.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_voicelatency import fixtures
from pytest_voicelatency.fixtures import voice_caller_fixture, voice_spans_fixture  # noqa: F401  (registers the fixtures)
from pytest_voicelatency.options import (
    ALLOW_PARTIAL_INI,
    ALLOW_PARTIAL_OPTION,
    CALLER_MARKER,
    CLOCK_INI,
    COMPARE_BODY_INI,
    COMPARE_CONFIDENCE_INI,
    COMPARE_OPTION,
    CONFIDENCE_INI,
    CONVENTIONS_INI,
    HTML_INI,
    HTML_OPTION,
    HTML_TURNS_INI,
    INCONCLUSIVE_INI,
    INI,
    JSON_OPTION,
    MARKDOWN_OPTION,
    MARKER,
    MIN_EFFECT_MS_INI,
    MIN_EFFECT_PCT_INI,
    MISSING_INI,
    OPTION,
    OTLP_INI,
    OTLP_OPTION,
    PATH_OPTIONS,
    REPLAY_OPTION,
    SAVE_OPTION,
    SAVE_PARTIAL_INI,
    SAVE_PARTIAL_OPTION,
    SPANS_JSON_INI,
    SPANS_JSON_OPTION,
    SPANS_LIE_INI,
    SPANS_MARKER,
    STEP_SUMMARY_ENV,
    THRESHOLDS_INI,
    UNRELIABLE_INI,
)
from pytest_voicelatency.run.state import CAPTURE, STATE, RunState

if TYPE_CHECKING:
    from pytest_voicelatency.run.exporting import Export
    from pytest_voicelatency.run.settings import Settings
    from pytest_voicelatency.spans.conventions import Conventions

# The option and ini names live in options.py; re-exported here, where tests have always found them.
__all__ = ["OPTION", "INI", "MARKER", "CALLER_MARKER", "SPANS_MARKER", "SKIP_REASON",
           "REPORT_ATTRIBUTE", "JSON_OPTION", "SAVE_OPTION", "COMPARE_OPTION", "MARKDOWN_OPTION",
           "THRESHOLDS_INI", "CONFIDENCE_INI", "INCONCLUSIVE_INI", "MISSING_INI", "UNRELIABLE_INI",
           "COMPARE_CONFIDENCE_INI", "COMPARE_BODY_INI", "MIN_EFFECT_PCT_INI", "MIN_EFFECT_MS_INI",
           "SPANS_LIE_INI", "STEP_SUMMARY_ENV", "voice_spans_fixture", "voice_caller_fixture"]

_PATH_OPTIONS = {JSON_OPTION: "voice_latency_json", SAVE_OPTION: "voice_latency_save",
                 COMPARE_OPTION: "voice_latency_compare", MARKDOWN_OPTION: "voice_latency_markdown",
                 HTML_OPTION: HTML_INI}
REPORT_ATTRIBUTE = "voice_latency"
SPANS_ATTRIBUTE = "voice_latency_spans"  # a test's spans as OTLP JSON, worker -> controller
CHECKS_ATTRIBUTE = "voice_latency_checks"  # what a test's assertions decided, for the report
EXPORT = pytest.StashKey["Export | None"]()
CONVENTIONS = pytest.StashKey["Conventions"]()
SKIP_REASON = ("voice latency test: run it with `pytest --voice-latency` "
               "(or set `voice_latency = true` in the ini file)")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("voice-latency", "voice agent latency (pytest-voicelatency)")
    group.addoption(OPTION, action="store_true", default=False, dest="voice_latency",
                    help="run tests marked voice_latency, capture every test's voice spans and "
                         "print the run-wide per-stage latency table (default: off; ini: "
                         f"{INI} = true)")
    parser.addini(INI, type="bool", default=False,
                  help="same as --voice-latency (default: false)")
    group.addoption(JSON_OPTION, metavar="PATH", dest=_PATH_OPTIONS[JSON_OPTION], default=None,
                    help="write every sample, the per-stage summary, gate verdicts and the "
                         "environment to PATH as JSON (implies --voice-latency; default: none)")
    group.addoption(SAVE_OPTION, metavar="PATH", dest=_PATH_OPTIONS[SAVE_OPTION], default=None,
                    help="save this run as a baseline (small JSON, meant for git) to PATH "
                         "(implies --voice-latency; default: none)")
    group.addoption(COMPARE_OPTION, metavar="PATH", dest=_PATH_OPTIONS[COMPARE_OPTION],
                    default=None,
                    help="compare this run with the baseline at PATH; a regression fails the "
                         "run (implies --voice-latency; default: none)")
    group.addoption(MARKDOWN_OPTION, metavar="PATH", dest=_PATH_OPTIONS[MARKDOWN_OPTION],
                    default=None,
                    help=f"write the Markdown summary (PR comment) to PATH; it is also "
                         f"appended to ${STEP_SUMMARY_ENV} when set (implies --voice-latency; "
                         f"default: none)")
    group.addoption(SAVE_PARTIAL_OPTION, action="store_true", default=False,
                    dest="voice_latency_save_partial",
                    help="let an incomplete run (interrupted, a -k/--lf subset, failed tests, a "
                         "lost worker) replace an existing baseline, marked partial (default: "
                         f"keep the existing file; ini: {SAVE_PARTIAL_INI} = true)")
    parser.addini(SAVE_PARTIAL_INI, type="bool", default=False,
                  help=f"same as {SAVE_PARTIAL_OPTION} (default: false)")
    group.addoption(ALLOW_PARTIAL_OPTION, action="store_true", default=False,
                    dest="voice_latency_allow_partial",
                    help="compare with a baseline marked partial (default: refuse it; ini: "
                         f"{ALLOW_PARTIAL_INI} = true)")
    parser.addini(ALLOW_PARTIAL_INI, type="bool", default=False,
                  help=f"same as {ALLOW_PARTIAL_OPTION} (default: false)")
    parser.addini(THRESHOLDS_INI, type="linelist", default=[],
                  help="CI gates, one per line: '<stage or glob>[.<metric>_ms]: p<NN> <|<= <ms>', "
                       "e.g. 'barge_in: p95 < 200' (default: none)")
    parser.addini(CONFIDENCE_INI, default="",
                  help="judge gates with order-statistic bounds at this confidence and Holm's "
                       "correction, e.g. 0.95 (default: empty = point estimates)")
    parser.addini(INCONCLUSIVE_INI, default="warn",
                  help="warn|fail: what an inconclusive gate or comparison does (default: warn)")
    parser.addini(MISSING_INI, default="fail",
                  help="fail|warn: what a gate whose stage has no samples does (default: fail)")
    parser.addini(UNRELIABLE_INI, default="warn",
                  help="warn|fail|retry: what a gate on samples marked unreliable does; retry "
                       "is done by the caller and acts as warn here (default: warn)")
    parser.addini(COMPARE_CONFIDENCE_INI, default="0.99",
                  help="confidence of baseline comparisons, Holm-corrected over all compared "
                       "stages (default: 0.99)")
    parser.addini(COMPARE_BODY_INI, default="p50 p75 p90",
                  help="baseline quantiles whose exceedances are tested beside p95's, or 'none' "
                       "for the p95 test alone (default: p50 p75 p90)")
    parser.addini(MIN_EFFECT_PCT_INI, default="10",
                  help="smallest growth, in %, of p95 (or the middle growth of p75, p90, p95) that "
                       "counts as a regression (default: 10)")
    parser.addini(MIN_EFFECT_MS_INI, default="10",
                  help="smallest growth, in ms, of p95 (or the middle growth of p75, p90, p95) "
                       "that counts as a regression (default: 10)")
    group.addoption(HTML_OPTION, metavar="PATH", dest=HTML_INI, default=None,
                    help="write a self-contained HTML report to PATH: per-stage histograms, the "
                         "worst turns as waterfalls with the gaps painted, spans vs what the "
                         f"caller heard (implies --voice-latency; ini: {HTML_INI}; default: none)")
    parser.addini(HTML_INI, default="", help=f"same as {HTML_OPTION} (default: none)")
    parser.addini(HTML_TURNS_INI, default="10",
                  help="worst turns drawn as waterfalls per stage in the HTML report (default: 10)")
    group.addoption(REPLAY_OPTION, metavar="FILE", dest="voice_latency_replay",
                    action="append", default=[],
                    help="instead of the suite, re-run each saved call FILE (a replay file a "
                         "failing property test saved) on virtual time and fail if its samples "
                         "differ; repeatable (implies --voice-latency; default: none)")
    group.addoption(OTLP_OPTION, metavar="ENDPOINT", dest=OTLP_INI, default=None,
                    help="send the run's spans (the caller's included) and per-stage histograms "
                         "over OTLP/HTTP to ENDPOINT, a collector's base URL such as "
                         "http://127.0.0.1:4318; needs the [otlp] extra (implies "
                         f"--voice-latency; ini: {OTLP_INI}; default: none)")
    parser.addini(OTLP_INI, default="", help=f"same as {OTLP_OPTION} (default: none)")
    group.addoption(SPANS_JSON_OPTION, metavar="PATH", dest=SPANS_JSON_INI, default=None,
                    help="write the run's spans to PATH as OTLP JSON, loadable in Tempo or "
                         f"Jaeger (implies --voice-latency; ini: {SPANS_JSON_INI}; default: none)")
    parser.addini(SPANS_JSON_INI, default="", help=f"same as {SPANS_JSON_OPTION} (default: none)")
    parser.addini(CLOCK_INI, default="real",
                  help="real|virtual: the time base of the voice_caller fixture and twin when a "
                       "test does not choose one; virtual runs agents that honour the clock in "
                       "milliseconds of CPU (default: real)")
    parser.addini(CONVENTIONS_INI, type="linelist", default=[],
                  help="which span conventions to read, one per line: auto (default), pipecat, "
                       "livekit, genai, native, or a mapping 'span_name -> stage[.metric="
                       "attribute*scale]' (default: auto = every built-in convention)")
    parser.addini(SPANS_LIE_INI, default="50",
                  help="warn when the agent's own span (e.g. barge_in silence_ms) is more than "
                       "this many ms below what the caller heard (default: 50)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: a voice latency test; runs only with {OPTION}")
    config.addinivalue_line(
        "markers", f"{CALLER_MARKER}(**options): keyword arguments for the {CALLER_MARKER} "
                   f"fixture's Caller, as its twin takes them (playout=, unreliable=, ...)")
    config.addinivalue_line(
        "markers", f"{SPANS_MARKER}(**options): keyword arguments for the {SPANS_MARKER} "
                   f"fixture's capture, as its twin takes them (unreliable=, conventions=)")
    _ini_bool(config, INI)  # before anything reads it: the error names the key
    try:
        fixtures.configure(config)
    except ValueError as exc:  # a bad voice_latency_unreliable or _clock: a usage error, early
        raise pytest.UsageError(str(exc)) from None
    replays = config.getoption("voice_latency_replay")
    if replays:  # a bad file is a usage error before anything is collected
        from pytest_voicelatency.run.replaying import check_replay_files  # lazy: when asked

        check_replay_files(replays)
    paths = {dest: config.getoption(dest) for dest in _PATH_OPTIONS.values()}
    paths[HTML_INI] = paths[HTML_INI] or config.getini(HTML_INI) or None
    config.stash[CONVENTIONS] = _conventions(config)
    export = config.stash[EXPORT] = _start_export(config)
    enabled = bool(config.getoption("voice_latency") or _ini_bool(config, INI)
                   or any(paths.values()) or export is not None
                   or config.getoption("voice_latency_replay"))
    state = config.stash[STATE] = RunState(enabled=enabled,
                                           is_worker=hasattr(config, "workerinput"),
                                           replay=bool(replays))
    if enabled:
        state.settings = _settings(config, paths)
        config.pluginmanager.register(_RunReporter(config), "voicelatency-run-reporter")


def _ini_bool(config: pytest.Config, key: str) -> bool:
    """A bool ini value; pytest's own error does not name the key, this one does."""
    try:
        return bool(config.getini(key))
    except (ValueError, pytest.UsageError) as exc:  # pytest 9: a UsageError without the key
        value = str(exc).rpartition("invalid truth value ")[2] or "?"
        raise pytest.UsageError(
            f"{key} = {value} in the ini file: give true or false") from None


def _conventions(config: pytest.Config) -> Conventions:
    # lazy: plugin start-up — a pure parser, but the spans layer is not loaded before it is needed
    from pytest_voicelatency.errors import VoiceLatencyUsageError  # lazy: start-up
    from pytest_voicelatency.spans.conventions import conventions_from_ini  # lazy: start-up

    try:
        return conventions_from_ini(config.getini(CONVENTIONS_INI))
    except VoiceLatencyUsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def _start_export(config: pytest.Config) -> Export | None:
    endpoint = config.getoption(OTLP_INI) or config.getini(OTLP_INI)
    path = config.getoption(SPANS_JSON_INI) or config.getini(SPANS_JSON_INI)
    if not (endpoint or path):
        return None
    # lazy: plugin start-up — exporters load only when asked, the OTLP one from an optional extra
    from pytest_voicelatency.errors import VoiceLatencyUsageError  # lazy: start-up
    from pytest_voicelatency.run.exporting import Export  # lazy: start-up

    export = Export(spans_path=path or None)
    try:
        if endpoint:
            from pytest_voicelatency.export import otlp  # lazy: the [otlp] extra, when asked

            export.otlp = otlp.start(endpoint)
        if path:
            from pytest_voicelatency.export.otlp_json import SpanBuffer  # lazy: when asked
            from pytest_voicelatency.spans.capture import attach  # lazy: when asked

            export.spans = SpanBuffer()
            attach().add_span_processor(export.spans)
    except VoiceLatencyUsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    return export


def pytest_unconfigure(config: pytest.Config) -> None:
    fixtures.unconfigure(config)


def _settings(config: pytest.Config, paths: dict[str, str | None]) -> Settings:
    # lazy: plugin start-up — only a run with --voice-latency parses its settings
    from pytest_voicelatency.errors import VoiceLatencyUsageError  # lazy: start-up
    from pytest_voicelatency.run.settings import build, misread_path_options  # lazy: start-up

    misread = misread_path_options(config.invocation_params.args, PATH_OPTIONS,
                                   invocation_dir=str(config.invocation_params.dir),
                                   rootdir=str(config.rootpath))
    if misread is not None:
        raise pytest.UsageError(misread)
    try:
        return build(
            thresholds=config.getini(THRESHOLDS_INI), confidence=config.getini(CONFIDENCE_INI),
            inconclusive=config.getini(INCONCLUSIVE_INI), missing=config.getini(MISSING_INI),
            unreliable=config.getini(UNRELIABLE_INI),
            compare_confidence=config.getini(COMPARE_CONFIDENCE_INI),
            compare_body=config.getini(COMPARE_BODY_INI),
            min_effect_pct=config.getini(MIN_EFFECT_PCT_INI),
            min_effect_ms=config.getini(MIN_EFFECT_MS_INI),
            json_path=paths["voice_latency_json"], save_path=paths["voice_latency_save"],
            compare_path=paths["voice_latency_compare"],
            markdown_path=paths["voice_latency_markdown"],
            step_summary=os.environ.get(STEP_SUMMARY_ENV) or None, root=str(config.rootpath),
            judge=not config.getoption("collectonly"),
            spans_lie_margin_ms=config.getini(SPANS_LIE_INI),
            save_partial=bool(config.getoption("voice_latency_save_partial")
                              or _ini_bool(config, SAVE_PARTIAL_INI)),
            allow_partial=bool(config.getoption("voice_latency_allow_partial")
                               or _ini_bool(config, ALLOW_PARTIAL_INI)),
            html_path=paths[HTML_INI], html_turns=config.getini(HTML_TURNS_INI))
    except VoiceLatencyUsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                   items: list[pytest.Item]) -> None:
    replays = config.getoption("voice_latency_replay")
    if replays:
        from pytest_voicelatency.run.replaying import replay_items  # lazy: only when asked

        config.hook.pytest_deselected(items=list(items))
        items[:] = replay_items(session, replays)
        return
    if config.stash[STATE].enabled:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if item.get_closest_marker(MARKER) is not None:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    state = item.config.stash[STATE]
    if state.enabled:
        from pytest_voicelatency.spans.capture import start  # lazy: plugin start-up

        policy = state.settings.policy.unreliable if state.settings is not None else "warn"
        item.stash[CAPTURE] = start(item.nodeid, policy, item.config.stash[CONVENTIONS])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    try:
        return (yield)
    finally:
        capture = item.stash.get(CAPTURE, None)
        if capture is not None:
            # lazy: plugin start-up — only a test that opened a capture closes one
            from pytest_voicelatency.errors import VoiceLatencyWarning
            from pytest_voicelatency.spans.capture import stop

            stop(capture)
            for problem in capture.problems:
                warnings.warn(VoiceLatencyWarning(problem), stacklevel=1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "teardown":
        export = item.config.stash.get(EXPORT, None)
        if export is not None and export.spans is not None:
            setattr(report, SPANS_ATTRIBUTE, export.spans.drain())
        capture = item.stash.get(CAPTURE, None)
        if capture is not None and capture.checks:
            setattr(report, CHECKS_ATTRIBUTE, [list(check) for check in capture.checks])
        if capture is not None and (len(capture) or capture.table.unread_count):
            # lazy: plugin start-up — numpy only for a test that captured spans
            from pytest_voicelatency.report.junit import junit_properties

            setattr(report, REPORT_ATTRIBUTE, capture.table.to_payload())
            report.user_properties.extend(junit_properties(capture.sample_set()))
    return report


class _RunReporter:
    """Collects every test's payload (on the controller), finishes the run, prints the table."""

    def __init__(self, config: pytest.Config) -> None:
        self.state = config.stash[STATE]
        self.export = config.stash[EXPORT]

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        lf = session.config.pluginmanager.get_plugin("lfplugin")
        self.state.lastfailed = bool(session.config.getoption("lf", False)
                                     and getattr(lf, "lastfailed", None))

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        settings = self.state.settings
        if settings is None or not settings.compare_path or self.state.is_worker:
            return []
        from pytest_voicelatency.run.finish import baseline_problem  # lazy: a compare run only

        problem = baseline_problem(settings)
        return [f"voice latency: {problem}"] if problem else []

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.state.deselected += len(items)

    def pytest_keyboard_interrupt(self) -> None:
        self.state.interrupted = True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.state.is_worker:
            return
        spans = getattr(report, SPANS_ATTRIBUTE, None)
        if spans and self.export is not None and self.export.spans is not None:
            self.export.spans.receive(spans)
        checks = getattr(report, CHECKS_ATTRIBUTE, None)
        if isinstance(checks, list):
            self.state.checks.extend((report.nodeid, *c) for c in checks if isinstance(c, list))
        self.state.record_report(report.nodeid, report.when, report.failed, report.longrepr)
        payload = getattr(report, REPORT_ATTRIBUTE, None)
        if payload is None:
            return
        try:
            if self.state.table is None:
                from pytest_voicelatency.spans.rows import SpanTable  # lazy: plugin start-up

                self.state.table = SpanTable()
            self.state.table.extend_payload(payload, test=report.nodeid)
            self.state.tests_with_spans += 1
        except Exception as exc:  # a bad payload must not lose the other tests' samples
            self.state.errors.append(f"{report.nodeid}: voice spans not merged: {exc}")

    @pytest.hookimpl(optionalhook=True)  # pytest-xdist's: a worker's export warnings come home
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        if self.export is not None:
            self.export.notes += getattr(node, "workeroutput", {}).get(SPANS_ATTRIBUTE, [])

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        state = self.state
        if self.export is not None:
            from pytest_voicelatency.run.exporting import finish as finish_export  # lazy: start-up

            notes = finish_export(self.export, state.table, is_worker=state.is_worker)
            if state.is_worker:
                session.config.workeroutput[SPANS_ATTRIBUTE] = notes  # type: ignore[attr-defined]
            else:  # warnings only: an export failure never changes the exit code
                self.export.notes += notes
        if state.is_worker or state.settings is None or not state.settings.has_work(state.table):
            return
        # lazy: plugin start-up — the end of the run, only when there is work to judge
        from pytest_voicelatency.run.exitcodes import ExitCode  # lazy: start-up
        from pytest_voicelatency.run.finish import finish  # lazy: start-up

        facts = state.facts(collect_only=bool(session.config.getoption("collectonly")),
                            interrupted=session.exitstatus == pytest.ExitCode.INTERRUPTED)
        try:
            state.finish = finish(state.table, state.tests_with_spans, state.settings,
                                  state.errors, facts, checks=state.checks)
            code = state.finish.exit_code
        except Exception as exc:  # a bug here must not hide the tests' own outcome
            state.errors.append(f"pytest-voicelatency failed at the end of the run: {exc!r}; "
                                "please report it")
            code = ExitCode.INTERNAL_ERROR
        if session.exitstatus == 0 and code != ExitCode.OK:
            session.exitstatus = int(code)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = self.state
        if state.is_worker:
            return
        from pytest_voicelatency.report.terminal import terminal_lines  # lazy: plugin start-up

        terminalreporter.write_sep("=", "voice latency (ms)")
        done = state.finish
        spans = len(state.table) if state.table is not None else 0
        lines = terminal_lines(None, state.errors, spans=spans) if done is None \
            else terminal_lines(done.results)
        # lazy: plugin start-up — the conventions load only when a summary is printed
        from pytest_voicelatency.spans.conventions import unread_sentence

        unread = unread_sentence(*state.table.unread_snapshot()) if state.table is not None \
            else None
        notes = self.export.notes if self.export is not None else []
        extra = [f"warning: {line}" for line in ([unread] if unread else []) + notes]
        for line in [*lines, *extra]:
            red = line.startswith("error:") or line.endswith(": FAILED")
            terminalreporter.write_line(line, red=red, yellow=line.startswith("warning:"))
