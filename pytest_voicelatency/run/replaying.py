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

from pytest_voicelatency.replay import ReplayMismatch, load_replay, run_replay

__all__ = ["ReplayItem", "replay_items"]


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
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"replay {self.path.name}"


def replay_items(session: pytest.Session, paths: list[str]) -> list[pytest.Item]:
    """A test per replay file; a file that cannot be read is a usage error naming it."""
    items: list[pytest.Item] = []
    for raw in paths:
        path = Path(raw).resolve()
        try:
            load_replay(path)
        except Exception as exc:  # noqa: BLE001  any unreadable file: one clear message
            raise pytest.UsageError(f"--voice-latency-replay {raw}: {exc}") from None
        items.append(ReplayItem.from_parent(session, name=f"replay[{path.name}]", path=path))
    return items
