"""Judging: in-test assertions, CI threshold lines and their policies, the baseline comparison and
the spans-lie crosscheck. Each takes plain samples or distributions and returns a verdict object.

May import: ``stats``, ``spans``, ``clock``, ``errors``.

Public names (``docs/api.md``): ``spans_lie``. (The assertions are top-level; CI gates are
configured in the ini.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_voicelatency._lazy import exports

_EXPORTS = {
    "spans_lie": ".crosscheck",
}
__all__ = ["spans_lie"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from pytest_voicelatency.gate.crosscheck import spans_lie
else:
    __getattr__, __dir__ = exports(__name__, _EXPORTS)
