"""Agents behind a socket: implement the ``VoiceAgent`` protocol by talking to a server, so a
deployed agent is driven by the simulated caller with no adapter.

May import: ``call``, ``stats``, ``spans``, ``audio``, ``clock``, ``errors``.

Public names (``docs/transports.md``): ``WebSocketAgent`` (raw PCM16 over a WebSocket),
``TwilioAgent`` (Twilio Media Streams, μ-law 8 kHz), ``PipecatWebSocketAgent`` (a Pipecat bot
behind its WebSocket server transport with the ``ProtobufFrameSerializer``), and their errors
``TransportError``, ``AgentConnectError``, ``AgentDisconnectedError``. They need the optional
``websockets`` package (``pip install 'pytest-voicelatency[websocket]'``), and
``PipecatWebSocketAgent`` also ``pipecat-ai`` (``[pipecat]``); importing this package alone needs
neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_voicelatency._lazy import exports

_EXPORTS = {
    "WebSocketAgent": ".websocket",
    "TwilioAgent": ".twilio",
    "PipecatWebSocketAgent": ".pipecat_ws",
    "TransportError": ".link",
    "AgentConnectError": ".link",
    "AgentDisconnectedError": ".link",
}
__all__ = ["WebSocketAgent", "TwilioAgent", "PipecatWebSocketAgent", "TransportError",
           "AgentConnectError", "AgentDisconnectedError"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from pytest_voicelatency.transports.link import (
        AgentConnectError,
        AgentDisconnectedError,
        TransportError,
    )
    from pytest_voicelatency.transports.pipecat_ws import PipecatWebSocketAgent
    from pytest_voicelatency.transports.twilio import TwilioAgent
    from pytest_voicelatency.transports.websocket import WebSocketAgent
else:
    __getattr__, __dir__ = exports(__name__, _EXPORTS)
