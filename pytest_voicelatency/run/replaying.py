"""``pytest --voice-latency-replay FILE``: re-run a saved call as the session's only test.

A property test that fails saves the minimal call it shrank to as a replay file
(:mod:`pytest_voicelatency.replay`). With this option the session collects one test per file
instead of the suite: it re-runs the call on a fresh virtual clock as saved, fails with the
samples side by side when they differ from the saved ones, and otherwise passes — its spans land
in the per-test capture like any test's, so the table, the gates and the reports cover them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.replay import ReplayMismatch, load_replay, run_replay

__all__ = ["ReplayItem", "check_replay_files", "replay_items"]


class ReplayItem(pytest.Item):
    """One saved call, re-run as a test."""

    def __init__(self, *, path: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path

    def runtest(self) -> None:
        run_replay(self.path)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ReplayMismatch):
            return f"replay {self.path} measured other samples:\n{excinfo.value}"
        if isinstance(excinfo.value, VoiceLatencyUsageError):  # the file or its factory
            return f"replay {self.path}: {excinfo.value}"
        # the agent failed: its traceback from the replay on, not pytest's and pluggy's frames
        entries = excinfo.traceback
        start = next((i for i, entry in enumerate(entries) if entry.name == "run_replay"), 0)
        excinfo.traceback = entries[start:]
        return str(super().repr_failure(excinfo, style="short"))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"replay {self.path.name}"


def check_replay_files(paths: list[str]) -> None:
    """A file that cannot be replayed is a usage error naming it (at configure time, so the
    suite is not collected first)."""
    for raw in paths:
        try:
            load_replay(Path(raw))
        except VoiceLatencyUsageError as exc:
            raise pytest.UsageError(f"--voice-latency-replay {raw}: {exc}") from None


def replay_items(session: pytest.Session, paths: list[str]) -> list[pytest.Item]:
    """A test per replay file (checked by :func:`check_replay_files`)."""
    return [ReplayItem.from_parent(session, name=f"replay[{Path(raw).name}]",
                                   path=Path(raw).resolve()) for raw in paths]
