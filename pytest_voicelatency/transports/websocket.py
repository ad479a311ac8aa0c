"""Raw PCM over a WebSocket: the simplest wire a deployed voice agent speaks.

The protocol, as :class:`WebSocketAgent` speaks it (see ``docs/transports.md``):

* **caller → server**: an optional start message first (``start_message``: a ``dict`` is sent as
  JSON text, ``str`` as text, ``bytes`` as binary), then one **binary** message per ``frame_ms`` of
  microphone audio: 16-bit little-endian mono PCM at ``sample_rate``;
* **server → caller**: **binary** messages are agent audio, the same encoding, any length (a
  byte split across two messages is carried over); **text** messages are JSON objects:
  ``{"type": "clear"}`` means the agent flushed its audio (barge-in): the client drops what it
  queued but has not played (:class:`~pytest_voicelatency.call.protocol.AgentClear`);
  ``{"type": "state", "state": "speaking"}`` is an optional
  :class:`~pytest_voicelatency.call.protocol.AgentState` label; other types are ignored.

``sample_rate`` defaults to the caller's line rate; another rate must be a whole multiple or
divisor of it (16 kHz line, 8 kHz or 48 kHz server): frames are converted without moving any
sample in time (:mod:`pytest_voicelatency.transports.mulaw`). ``frame_ms`` defaults to the
caller's frame; a longer one buffers caller frames (the client's own latency, as in production),
a shorter one splits them.

>>> agent = WebSocketAgent("ws://127.0.0.1:8765", sample_rate=8000, frame_ms=40,
...                        headers={"Authorization": "Bearer test"},
...                        start_message={"type": "start", "call": "demo"})
>>> agent.honours_clock, agent.url
(False, 'ws://127.0.0.1:8765')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from pytest_voicelatency.call.protocol import (
    AgentAudio,
    AgentClear,
    AgentEvent,
    AgentSession,
    AgentState,
)
from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.transports.link import Message, SocketAgent
from pytest_voicelatency.transports.mulaw import downsample, ratio, to_wire, upsample

__all__ = ["WebSocketAgent"]


class WebSocketAgent(SocketAgent):
    """Drive a voice agent served over a WebSocket with raw PCM16 frames (binary both ways).

    One instance serves one call: give the caller a factory (``lambda: WebSocketAgent(url)``)
    for several. ``headers`` go on the HTTP upgrade request (auth tokens); ``start_message`` is
    sent right after connecting. A server that closes or drops the connection mid-call fails the
    call at once with :class:`~pytest_voicelatency.transports.link.AgentDisconnectedError`.
    """

    protocol = "WebSocket"

    def __init__(self, url: str, *, sample_rate: int | None = None, frame_ms: int | None = None,
                 headers: Mapping[str, str] | None = None,
                 start_message: Mapping[str, Any] | str | bytes | None = None,
                 connect_timeout_ms: float = 5000.0, close_timeout_ms: float = 1000.0) -> None:
        super().__init__(url, headers=headers, connect_timeout_ms=connect_timeout_ms,
                         close_timeout_ms=close_timeout_ms)
        for name, value in (("sample_rate", sample_rate), ("frame_ms", frame_ms)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value <= 0):
                raise VoiceLatencyUsageError(f"WebSocketAgent {name} must be a positive int, "
                                             f"got {value!r}")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.start_message = start_message
        self._pending = np.zeros(0, np.int16)   # wire-rate samples not yet sent (frame_ms)
        self._carry = b""                        # server audio short of a whole sample

    def opened(self, session: AgentSession) -> list[Message]:
        line = session.format
        self._line_rate = line.sample_rate
        self._wire_rate = self.sample_rate or line.sample_rate
        self._factor = ratio(self._line_rate, self._wire_rate, f"WebSocketAgent({self.url!r})")
        frame_ms = self.frame_ms or line.frame_ms
        samples = self._wire_rate * frame_ms / 1000
        if not samples.is_integer():
            raise VoiceLatencyUsageError(
                f"WebSocketAgent frame_ms={frame_ms} is not a whole number of samples at "
                f"{self._wire_rate} Hz")
        self._wire_frame = int(samples)
        message = self.start_message
        if message is None:
            return []
        if isinstance(message, (str, bytes)):
            return [message]
        return [json.dumps(dict(message))]

    def encode(self, pcm: bytes) -> list[Message]:
        frames, self._pending = to_wire(pcm, self._pending, line_rate=self._line_rate,
                                        wire_rate=self._wire_rate, factor=self._factor,
                                        frame=self._wire_frame)
        return [frame.tobytes() for frame in frames]

    def decode(self, message: Message) -> list[AgentEvent]:
        if isinstance(message, bytes):
            data = self._carry + message
            unit = 2 * (self._factor if self._wire_rate > self._line_rate else 1)
            cut = len(data) - len(data) % unit
            self._carry = data[cut:]
            if not cut:
                return []
            x = np.frombuffer(data[:cut], dtype="<i2")
            if self._wire_rate > self._line_rate:
                x = downsample(x, self._factor)
            elif self._wire_rate < self._line_rate:
                x = upsample(x, self._factor)
            return [AgentAudio(x.astype("<i2").tobytes(), self._line_rate)]
        value = self.json_object(message)
        kind = value.get("type")
        if kind == "clear":
            self._carry = b""
            return [AgentClear(str(value.get("reason", "barge_in")))]
        if kind == "state":
            state = value.get("state")
            if not isinstance(state, str) or not state:
                raise self.protocol_error(f"a state message without a state name: {message!r}")
            return [AgentState(state)]
        return []
