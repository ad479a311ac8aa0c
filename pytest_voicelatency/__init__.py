"""pytest-voicelatency: fail the build when a voice agent gets slower where people feel it.

The small API a test author needs (imported lazily, so loading the pytest plugin costs almost
nothing)::

    from pytest_voicelatency import stage_span, voice_spans, voice_caller, assert_p95

Everything else lives in a documented namespace, one import path per name (``docs/api.md``):
``pytest_voicelatency.call`` (the caller's script — say, answer, barge_in ... — its configuration
and errors), ``.agents`` (the oracle and the reference agent), ``.audio`` (clips, mixing, the
VAD), ``.spans``, ``.stats``, ``.gate`` and ``.clock``. Names that 0.1.0 exported here still
resolve, with a ``DeprecationWarning`` naming their new path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_voicelatency._lazy import exports
from pytest_voicelatency._version import __version__

_EXPORTS = {
    # instrument an agent
    "stage_span": ".spans.instrument", "handoff_span": ".spans.instrument",
    "turn_span": ".spans.instrument",
    # capture its spans: the voice_spans fixture's twin, and what it yields
    "voice_spans": ".fixtures", "Capture": ".spans.capture",
    # assert on them
    "assert_p50": ".gate.assertions", "assert_p95": ".gate.assertions",
    "assert_p99": ".gate.assertions", "assert_quantile": ".gate.assertions",
    # call the agent: the voice_caller fixture's twin, what it yields and what a call returns
    "voice_caller": ".fixtures", "Caller": ".call.caller", "CallResult": ".call.caller",
    # write an agent: the protocol, its events and its task helper
    "VoiceAgent": ".call.protocol", "AgentSession": ".call.protocol",
    "AgentAudio": ".call.protocol", "AgentClear": ".call.protocol",
    "AgentState": ".call.protocol", "SessionTasks": ".call.protocol",
    # audio in
    "load_clip": ".audio.clips", "Clip": ".audio.clips",
    # errors and warnings
    "VoiceLatencyError": ".errors", "VoiceLatencyUsageError": ".errors",
    "LatencyAssertionError": ".errors", "VoiceLatencyWarning": ".errors",
}

#: 0.1.0's top-level names that moved: old name -> (module to import from, name there)
_MOVED = {
    "capture_spans": ("pytest_voicelatency", "voice_spans"),
    "simulated_caller": ("pytest_voicelatency", "voice_caller"),
    **{name: ("pytest_voicelatency.agents", name)
       for name in ("OracleAgent", "OracleConfig", "ReferenceServer", "ReferenceConfig")},
    **{name: ("pytest_voicelatency.audio", name)
       for name in ("tone_clip", "list_clips", "AudioError", "EnergyVAD", "speech_regions")},
    **{name: ("pytest_voicelatency.call", name)
       for name in ("say", "answer", "barge_in", "pause", "background", "AudioFormat",
                    "PlayoutConfig", "AgentProtocolError", "AgentTimeoutError")},
    **{name: ("pytest_voicelatency.spans", name)
       for name in ("attach", "current_capture", "StageTimer", "Sample", "default_metric")},
    **{name: ("pytest_voicelatency.stats", name)
       for name in ("Estimate", "estimate", "nearest_rank", "Limit", "Verdict", "judge")},
    "spans_lie": ("pytest_voicelatency.gate", "spans_lie"),
    "Clock": ("pytest_voicelatency.clock", "Clock"),
    "RealClock": ("pytest_voicelatency.clock", "RealClock"),
}

__all__ = ["stage_span", "handoff_span", "turn_span", "voice_spans", "Capture", "assert_p50",
           "assert_p95", "assert_p99", "assert_quantile", "voice_caller", "Caller", "CallResult",
           "VoiceAgent", "AgentSession", "AgentAudio", "AgentClear", "AgentState", "SessionTasks",
           "load_clip", "Clip", "VoiceLatencyError", "VoiceLatencyUsageError",
           "LatencyAssertionError", "VoiceLatencyWarning", "__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    # The public names ...
    # ... and the moved ones, so code written for 0.1.0 still type-checks (it warns at run time).
    from pytest_voicelatency.agents import OracleAgent as OracleAgent
    from pytest_voicelatency.agents import OracleConfig as OracleConfig
    from pytest_voicelatency.agents import ReferenceConfig as ReferenceConfig
    from pytest_voicelatency.agents import ReferenceServer as ReferenceServer
    from pytest_voicelatency.audio import AudioError as AudioError
    from pytest_voicelatency.audio import EnergyVAD as EnergyVAD
    from pytest_voicelatency.audio import list_clips as list_clips
    from pytest_voicelatency.audio import speech_regions as speech_regions
    from pytest_voicelatency.audio import tone_clip as tone_clip
    from pytest_voicelatency.audio.clips import Clip, load_clip
    from pytest_voicelatency.call import AgentProtocolError as AgentProtocolError
    from pytest_voicelatency.call import AgentTimeoutError as AgentTimeoutError
    from pytest_voicelatency.call import AudioFormat as AudioFormat
    from pytest_voicelatency.call import PlayoutConfig as PlayoutConfig
    from pytest_voicelatency.call import answer as answer
    from pytest_voicelatency.call import background as background
    from pytest_voicelatency.call import barge_in as barge_in
    from pytest_voicelatency.call import pause as pause
    from pytest_voicelatency.call import say as say
    from pytest_voicelatency.call.caller import Caller, CallResult
    from pytest_voicelatency.call.protocol import (
        AgentAudio,
        AgentClear,
        AgentSession,
        AgentState,
        SessionTasks,
        VoiceAgent,
    )
    from pytest_voicelatency.clock import Clock as Clock
    from pytest_voicelatency.clock import RealClock as RealClock
    from pytest_voicelatency.errors import (
        LatencyAssertionError,
        VoiceLatencyError,
        VoiceLatencyUsageError,
        VoiceLatencyWarning,
    )
    from pytest_voicelatency.fixtures import voice_caller, voice_spans
    from pytest_voicelatency.gate import spans_lie as spans_lie
    from pytest_voicelatency.gate.assertions import (
        assert_p50,
        assert_p95,
        assert_p99,
        assert_quantile,
    )
    from pytest_voicelatency.spans import Sample as Sample
    from pytest_voicelatency.spans import StageTimer as StageTimer
    from pytest_voicelatency.spans import attach as attach
    from pytest_voicelatency.spans import current_capture as current_capture
    from pytest_voicelatency.spans import default_metric as default_metric
    from pytest_voicelatency.spans.capture import Capture
    from pytest_voicelatency.spans.instrument import handoff_span, stage_span, turn_span
    from pytest_voicelatency.stats import Estimate as Estimate
    from pytest_voicelatency.stats import Limit as Limit
    from pytest_voicelatency.stats import Verdict as Verdict
    from pytest_voicelatency.stats import estimate as estimate
    from pytest_voicelatency.stats import judge as judge
    from pytest_voicelatency.stats import nearest_rank as nearest_rank

    capture_spans = voice_spans
    simulated_caller = voice_caller
else:
    __getattr__, __dir__ = exports(__name__, _EXPORTS, deprecated=_MOVED)
