"""Spans: instrument an agent (``stage_span`` …), capture finished spans in memory, keep them as
compact rows, and turn rows into samples (including the gaps between the bars).

``otel`` is the only module that touches OpenTelemetry objects; everything after it sees plain
records. May import: ``audio``, ``clock``, ``errors``.

Public names (``docs/api.md``): ``attach``, ``current_capture``, ``StageTimer``, ``Sample``,
``default_metric``. (The span helpers and ``Capture`` are top-level.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_voicelatency._lazy import exports

_EXPORTS = {
    "attach": ".capture",
    "current_capture": ".capture",
    "StageTimer": ".instrument",
    "Sample": ".samples",
    "default_metric": ".samples",
}
__all__ = ["attach", "current_capture", "StageTimer", "Sample", "default_metric"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from pytest_voicelatency.spans.capture import attach, current_capture
    from pytest_voicelatency.spans.instrument import StageTimer
    from pytest_voicelatency.spans.samples import Sample, default_metric
else:
    __getattr__, __dir__ = exports(__name__, _EXPORTS)
