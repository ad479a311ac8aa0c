"""The call: the agent protocol, the caller's script (say / answer / barge_in), the simulated
caller and its per-call runner, the client playout model, the event log and the metrics derived
from it. Record, then derive: metrics are pure functions of the log.

May import: ``stats``, ``spans``, ``audio``, ``clock``, ``errors``.

Public names (``docs/api.md``): the script's steps ``say``, ``answer``, ``barge_in``, ``pause``,
``background`` and their type ``Step``; ``AudioFormat``, ``PlayoutConfig`` (the line and the
client); ``CallMetrics``, ``Measurement`` (what a ``CallResult`` holds); ``AgentProtocolError``,
``AgentTimeoutError``. (The caller, the agent protocol and its events are top-level.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_voicelatency._lazy import exports

_EXPORTS = {
    "say": ".script", "answer": ".script", "barge_in": ".script", "pause": ".script",
    "background": ".script", "Step": ".script",
    "AudioFormat": ".protocol", "PlayoutConfig": ".playout",
    "CallMetrics": ".metrics", "Measurement": ".metrics",
    "AgentProtocolError": ".protocol", "AgentTimeoutError": ".caller",
}
__all__ = ["say", "answer", "barge_in", "pause", "background", "Step", "AudioFormat",
           "PlayoutConfig", "CallMetrics", "Measurement", "AgentProtocolError",
           "AgentTimeoutError"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from pytest_voicelatency.call.caller import AgentTimeoutError
    from pytest_voicelatency.call.metrics import CallMetrics, Measurement
    from pytest_voicelatency.call.playout import PlayoutConfig
    from pytest_voicelatency.call.protocol import AgentProtocolError, AudioFormat
    from pytest_voicelatency.call.script import Step, answer, background, barge_in, pause, say
else:
    __getattr__, __dir__ = exports(__name__, _EXPORTS)
