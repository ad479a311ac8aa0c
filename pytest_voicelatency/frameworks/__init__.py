"""Frameworks: run a Pipecat pipeline or a LiveKit ``AgentSession`` as a ``VoiceAgent``.

Each adapter is transport glue: the simulated caller's inbound frames go into the framework's
pipeline, its output audio comes back as ``AgentAudio`` events and its interruptions as
``AgentClear``; the framework's own OpenTelemetry spans are read by the span conventions
(:mod:`pytest_voicelatency.spans.conventions`). Each adapter module imports its framework at
module top, so this package never imports one until a name is used (an optional extra:
``pip install "pytest-voicelatency[pipecat]"`` / ``[livekit]``).

May import: call, stats, spans, audio, clock, errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_voicelatency._lazy import exports

_EXPORTS = {"PipecatAgent": ".pipecat", "LiveKitAgent": ".livekit"}
__all__ = ["PipecatAgent", "LiveKitAgent"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from pytest_voicelatency.frameworks.livekit import LiveKitAgent
    from pytest_voicelatency.frameworks.pipecat import PipecatAgent
else:
    __getattr__, __dir__ = exports(__name__, _EXPORTS)
