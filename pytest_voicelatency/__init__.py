"""pytest-voicelatency: fail the build when a voice agent gets slower where people feel it.

Public API (imported lazily, so loading the pytest plugin costs almost nothing)::

    from pytest_voicelatency import stage_span, handoff_span, assert_p95, capture_spans

See the README for a complete example and ``docs/`` for the statistics and conventions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # instrument an agent
    "stage_span": "instrument", "handoff_span": "instrument", "turn_span": "instrument",
    "StageTimer": "instrument",
    # capture spans
    "capture_spans": "capture", "Capture": "capture", "attach": "capture",
    "current_capture": "capture",
    # samples and statistics
    "Sample": "samples", "default_metric": "samples", "nearest_rank": "stats",
    "Estimate": "stats", "estimate": "stats", "Limit": "verdict", "Verdict": "verdict",
    "judge": "verdict",
    # assertions
    "assert_quantile": "assertions", "assert_p50": "assertions", "assert_p95": "assertions",
    "assert_p99": "assertions",
    # audio in, and hearing it
    "Clip": "audio", "load_clip": "audio", "list_clips": "audio", "AudioError": "audio",
    "EnergyVAD": "vad", "speech_regions": "vad",
    # the agent under test, the simulated caller and its script
    "VoiceAgent": "agent", "AgentSession": "agent", "AudioFormat": "agent",
    "AgentAudio": "agent", "AgentClear": "agent", "AgentState": "agent",
    "AgentProtocolError": "agent",
    "Caller": "caller", "CallResult": "caller", "AgentTimeoutError": "caller",
    "simulated_caller": "fixtures", "PlayoutConfig": "playout",
    "say": "script", "answer": "script", "barge_in": "script", "pause": "script",
    "background": "script",
    "OracleAgent": "oracle", "OracleConfig": "oracle", "tone_clip": "oracle",
    "ReferenceServer": "reference_agent", "ReferenceConfig": "reference_agent",
    "spans_lie": "crosscheck",
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
    from .assertions import assert_p50, assert_p95, assert_p99, assert_quantile
    from .agent import (AgentAudio, AgentClear, AgentProtocolError, AgentSession, AgentState,
                        AudioFormat, VoiceAgent)
    from .audio import AudioError, Clip, list_clips, load_clip
    from .caller import AgentTimeoutError, Caller, CallResult
    from .crosscheck import spans_lie
    from .fixtures import simulated_caller
    from .oracle import OracleAgent, OracleConfig, tone_clip
    from .playout import PlayoutConfig
    from .reference_agent import ReferenceConfig, ReferenceServer
    from .script import answer, background, barge_in, pause, say
    from .vad import EnergyVAD, speech_regions
    from .capture import Capture, attach, capture_spans, current_capture
    from .clock import Clock, RealClock
    from .errors import (LatencyAssertionError, VoiceLatencyError, VoiceLatencyUsageError,
                         VoiceLatencyWarning)
    from .instrument import StageTimer, handoff_span, stage_span, turn_span
    from .samples import Sample, default_metric
    from .stats import Estimate, estimate, nearest_rank
    from .verdict import Limit, Verdict, judge
