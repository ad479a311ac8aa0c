"""pytest-voicelatency: fail the build when a voice agent gets slower where people feel it.

Public API (imported lazily, so loading the pytest plugin costs almost nothing)::

    from pytest_voicelatency import stage_span, handoff_span, assert_p95, capture_spans

See the README for a complete example and ``docs/`` for the statistics and conventions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_voicelatency._version import __version__

_EXPORTS = {
    # instrument an agent
    "stage_span": "spans.instrument", "handoff_span": "spans.instrument", "turn_span": "spans.instrument",
    "StageTimer": "spans.instrument",
    # capture spans
    "capture_spans": "spans.capture", "Capture": "spans.capture", "attach": "spans.capture",
    "current_capture": "spans.capture",
    # samples and statistics
    "Sample": "spans.samples", "default_metric": "spans.samples", "nearest_rank": "stats.quantiles",
    "Estimate": "stats.quantiles", "estimate": "stats.quantiles", "Limit": "stats.verdict", "Verdict": "stats.verdict",
    "judge": "stats.verdict",
    # assertions
    "assert_quantile": "gate.assertions", "assert_p50": "gate.assertions", "assert_p95": "gate.assertions",
    "assert_p99": "gate.assertions",
    # audio in, and hearing it
    "Clip": "audio.clips", "load_clip": "audio.clips", "list_clips": "audio.clips", "AudioError": "audio.clips",
    "EnergyVAD": "audio.vad", "speech_regions": "audio.vad",
    # the agent under test, the simulated caller and its script
    "VoiceAgent": "call.protocol", "AgentSession": "call.protocol", "AudioFormat": "call.protocol",
    "AgentAudio": "call.protocol", "AgentClear": "call.protocol", "AgentState": "call.protocol",
    "AgentProtocolError": "call.protocol",
    "Caller": "call.caller", "CallResult": "call.caller", "AgentTimeoutError": "call.caller",
    "simulated_caller": "fixtures", "PlayoutConfig": "call.playout",
    "say": "call.script", "answer": "call.script", "barge_in": "call.script", "pause": "call.script",
    "background": "call.script",
    "OracleAgent": "agents.oracle", "OracleConfig": "agents.oracle", "tone_clip": "agents.oracle",
    "ReferenceServer": "agents.reference", "ReferenceConfig": "agents.reference",
    "spans_lie": "gate.crosscheck",
    # time
    "Clock": "clock", "RealClock": "clock",
    # errors
    "VoiceLatencyError": "errors", "VoiceLatencyUsageError": "errors",
    "VoiceLatencyWarning": "errors", "LatencyAssertionError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_voicelatency' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from pytest_voicelatency.gate.assertions import assert_p50, assert_p95, assert_p99, assert_quantile
    from pytest_voicelatency.call.protocol import (AgentAudio, AgentClear, AgentProtocolError, AgentSession, AgentState,
                        AudioFormat, VoiceAgent)
    from pytest_voicelatency.audio.clips import AudioError, Clip, list_clips, load_clip
    from pytest_voicelatency.call.caller import AgentTimeoutError, Caller, CallResult
    from pytest_voicelatency.gate.crosscheck import spans_lie
    from pytest_voicelatency.fixtures import simulated_caller
    from pytest_voicelatency.agents.oracle import OracleAgent, OracleConfig, tone_clip
    from pytest_voicelatency.call.playout import PlayoutConfig
    from pytest_voicelatency.agents.reference import ReferenceConfig, ReferenceServer
    from pytest_voicelatency.call.script import answer, background, barge_in, pause, say
    from pytest_voicelatency.audio.vad import EnergyVAD, speech_regions
    from pytest_voicelatency.spans.capture import Capture, attach, capture_spans, current_capture
    from pytest_voicelatency.clock import Clock, RealClock
    from pytest_voicelatency.errors import (LatencyAssertionError, VoiceLatencyError, VoiceLatencyUsageError,
                         VoiceLatencyWarning)
    from pytest_voicelatency.spans.instrument import StageTimer, handoff_span, stage_span, turn_span
    from pytest_voicelatency.spans.samples import Sample, default_metric
    from pytest_voicelatency.stats.quantiles import Estimate, estimate, nearest_rank
    from pytest_voicelatency.stats.verdict import Limit, Verdict, judge
