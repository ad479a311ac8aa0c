"""The plugin's pytest fixtures. Each has a plain context-manager twin for use outside fixtures
(for example inside a hypothesis ``@given`` test, where function-scoped fixtures do not reset
between examples). Heavy imports happen inside the fixtures, not at plugin load.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .state import CAPTURE

if TYPE_CHECKING:
    from .capture import Capture

__all__ = ["voice_spans"]


@pytest.fixture
def voice_spans(request: pytest.FixtureRequest) -> Iterator[Capture]:
    """The voice spans finished during this test (a :class:`~pytest_voicelatency.Capture`).

    Assertions such as ``assert_p95(stage="asr", lt=150)`` read it by default. Twin:
    :func:`pytest_voicelatency.capture_spans`.
    """
    capture = request.node.stash.get(CAPTURE, None)
    if capture is not None:
        yield capture
        return
    from .capture import capture_spans

    with capture_spans(request.node.nodeid) as capture:
        yield capture
