"""Run state kept in ``config.stash``, and the stash keys the hooks and fixtures share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from pytest_voicelatency.spans.rows import SpanTable  # light: no numpy, no OpenTelemetry

if TYPE_CHECKING:
    from pytest_voicelatency.run.finish import Finish
    from pytest_voicelatency.run.settings import Settings
    from pytest_voicelatency.spans.capture import Capture

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

    def run_table(self) -> SpanTable:
        """The merged span table of the whole run (controller side), made on first use."""
        if self.table is None:
            self.table = SpanTable()
        return self.table


STATE = pytest.StashKey[RunState]()
CAPTURE = pytest.StashKey["Capture"]()
