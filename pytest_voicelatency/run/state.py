"""Run state kept in ``config.stash``, and the stash keys the hooks and fixtures share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from pytest_voicelatency.run.facts import RunFacts

if TYPE_CHECKING:
    from pytest_voicelatency.run.finish import Finish
    from pytest_voicelatency.run.settings import Settings
    from pytest_voicelatency.spans.capture import Capture  # noqa: F401  (a string below)
    from pytest_voicelatency.spans.rows import SpanTable

__all__ = ["RunState", "STATE", "CAPTURE"]


@dataclass
class RunState:
    """Everything the plugin remembers about a run."""

    enabled: bool
    is_worker: bool
    table: SpanTable | None = None
    tests_with_spans: int = 0
    errors: list[str] = field(default_factory=list)
    settings: Settings | None = None  # gates and outputs, parsed at configure time
    finish: Finish | None = None  # what the end of the run produced (controller only)
    # completeness facts, recorded by the hooks (controller side; see run/facts.py)
    interrupted: bool = False
    replay: bool = False  # --voice-latency-replay: saved calls instead of the suite
    deselected: int = 0
    lastfailed: bool = False
    failed: set[str] = field(default_factory=set)
    crashed: list[str] = field(default_factory=list)
    tests_run: int = 0
    reported: set[str] = field(default_factory=set)  # node ids of every test that reported
    #: what each test's assertions decided: (test, stage, metric, rule, outcome, value_ms, n)
    checks: list[tuple[object, ...]] = field(default_factory=list)

    def record_report(self, nodeid: str, when: str, failed: bool, longrepr: object) -> None:
        """Count one test report: a call that ran, a failure, a test lost with its worker
        (pytest-xdist reports a crashed item with ``when="???"``)."""
        self.reported.add(nodeid)
        if when == "call":
            self.tests_run += 1
        if failed:
            self.failed.add(nodeid)
            if when not in ("setup", "call", "teardown"):
                self.crashed.append(str(longrepr).splitlines()[0] if longrepr else
                                    f"the worker running {nodeid!r} crashed")

    def facts(self, *, collect_only: bool, interrupted: bool) -> RunFacts:
        """The run's completeness facts as plain data."""
        crashed = tuple(self.crashed)
        return RunFacts(interrupted=self.interrupted or interrupted, collect_only=collect_only,
                        deselected=self.deselected, lastfailed=self.lastfailed,
                        failed=len(self.failed) - len(crashed), crashed=crashed,
                        tests_run=self.tests_run, reported=tuple(sorted(self.reported)),
                        replay=self.replay)



STATE = pytest.StashKey[RunState]()
CAPTURE = pytest.StashKey["Capture"]()
