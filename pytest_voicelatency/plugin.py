"""The pytest plugin: options, the marker, the per-test capture, the fixture and the summary.

This module only wires hooks and options. Fixtures live in ``fixtures.py``, run state in
``state.py`` (kept in ``config.stash``), and what the hooks do in pure modules: capture (collect
spans), samples/summary (derive numbers), table/report (render).

Under pytest-xdist each test's spans travel, as compact bytes, on its teardown report; the
controller merges every report's payload as it arrives, so a crashed worker loses only the test
it was running, and only the controller prints.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from .fixtures import *  # noqa: F403  (registers the plugin's fixtures)
from .state import CAPTURE, STATE, RunState

__all__ = ["OPTION", "INI", "MARKER", "SKIP_REASON", "REPORT_ATTRIBUTE"]

OPTION = "--voice-latency"
INI = "voice_latency"
MARKER = "voice_latency"
REPORT_ATTRIBUTE = "voice_latency"
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: a voice latency test; runs only with {OPTION}")
    enabled = bool(config.getoption("voice_latency") or config.getini(INI))
    config.stash[STATE] = RunState(enabled=enabled, is_worker=hasattr(config, "workerinput"))
    if enabled:
        config.pluginmanager.register(_RunReporter(config), "voicelatency-run-reporter")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash[STATE].enabled:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if item.get_closest_marker(MARKER) is not None:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.config.stash[STATE].enabled:
        from .capture import start

        item.stash[CAPTURE] = start(item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    try:
        return (yield)
    finally:
        capture = item.stash.get(CAPTURE, None)
        if capture is not None:
            from .capture import stop
            from .errors import VoiceLatencyWarning

            stop(capture)
            for problem in capture.problems:
                warnings.warn(VoiceLatencyWarning(problem), stacklevel=1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if call.when == "teardown":
        capture = item.stash.get(CAPTURE, None)
        if capture is not None and len(capture):
            setattr(report, REPORT_ATTRIBUTE, capture.table.to_payload())
    return report


class _RunReporter:
    """Collects every test's payload (on the controller) and prints the run-wide table."""

    def __init__(self, config: pytest.Config) -> None:
        self.state = config.stash[STATE]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, REPORT_ATTRIBUTE, None)
        if payload is None or self.state.is_worker:
            return
        try:
            self.state.run_table().extend_payload(payload, test=report.nodeid)
            self.state.tests_with_spans += 1
        except Exception as exc:  # a bad payload must not lose the other tests' samples
            self.state.errors.append(f"{report.nodeid}: voice spans not merged: {exc}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.state.is_worker:
            return
        from .report import terminal_lines

        terminalreporter.write_sep("=", "voice latency (ms)")
        for line in terminal_lines(self.state.table, self.state.tests_with_spans,
                                   self.state.errors):
            terminalreporter.write_line(line)
