"""Pipecat's own WebSocket wire: a bot behind ``SingleClientWebsocketServerTransport`` (or
``FastAPIWebsocketTransport``) with the ``ProtobufFrameSerializer``, driven as its web client is.

The protocol, as :class:`PipecatWebSocketAgent` speaks it (see ``docs/transports.md``): every
message, both ways, is a **binary** protobuf ``pipecat.Frame`` (Pipecat's ``frames.proto``, the
generated ``pipecat.frames.protobufs.frames_pb2``) with one of ``text``, ``audio``,
``transcription``, ``message`` or ``interruption`` set.

* **caller → bot**: one ``audio`` (``AudioRawFrame``: ``audio`` = 16-bit little-endian PCM,
  ``sample_rate``, ``num_channels`` = 1) per ``frame_ms`` of microphone audio; the serializer
  turns it into an ``InputAudioRawFrame`` on the bot's side;
* **bot → caller**: ``audio`` is the bot's ``OutputAudioRawFrame`` (PCM16 at the frame's
  ``sample_rate``, ``num_channels`` interleaved; mixed down to mono and converted to the line's
  rate by a whole ratio) → :class:`~pytest_voicelatency.call.protocol.AgentAudio`;
  ``interruption`` is the bot's ``InterruptionFrame``, which the server output transport writes
  to the client after flushing its own audio queue: the client drops what it has queued but not
  played → :class:`~pytest_voicelatency.call.protocol.AgentClear`. ``text``, ``transcription``
  and ``message`` (RTVI and other transport messages, JSON) are ignored.

Pipecat's server transport sends audio **faster than real time** (twice the rate: it paces
its writes at half a chunk's duration), so the client's queue grows while the bot talks; the
``interruption`` frame is what empties it. A bot that never sends one keeps talking in the
listener's ear until its queued audio runs out — which the barge-in metric then measures.

>>> agent = PipecatWebSocketAgent("ws://127.0.0.1:8765", sample_rate=16_000, frame_ms=20)
>>> agent.honours_clock, agent.protocol
(False, 'Pipecat WebSocket')
>>> len(agent.audio_message(bytes(640), 16_000)) > 640
True

Needs ``pipecat-ai`` (``pip install 'pytest-voicelatency[pipecat]'``) and ``websockets``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

try:
    from pipecat.frames.protobufs import frames_pb2
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "PipecatWebSocketAgent needs the optional 'pipecat-ai' package (Pipecat's protobuf "
        "frames): pip install 'pytest-voicelatency[pipecat]'") from _missing
from google.protobuf.message import DecodeError  # protobuf is a dependency of pipecat-ai

from pytest_voicelatency.call.protocol import AgentAudio, AgentClear, AgentEvent, AgentSession
from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.transports.link import Message, SocketAgent
from pytest_voicelatency.transports.mulaw import downsample, ratio, to_wire, upsample

__all__ = ["PipecatWebSocketAgent"]

#: ``pipecat.Frame``, the oneof envelope of Pipecat's generated protobuf module (no stubs ship).
_Frame: Any = frames_pb2.Frame  # type: ignore[attr-defined,unused-ignore]


class PipecatWebSocketAgent(SocketAgent):
    """Drive a Pipecat bot served over a WebSocket with Pipecat's ``ProtobufFrameSerializer``.

    One instance serves one call: give the caller a factory (``lambda: PipecatWebSocketAgent(url)``)
    for several. ``sample_rate`` is the rate of the audio sent (default: the caller's line rate;
    another must be a whole multiple or divisor of it) and ``frame_ms`` the audio per message
    (default: the caller's frame). The bot's audio may come at any rate that is a whole multiple
    or divisor of the line's. ``headers`` go on the HTTP upgrade request. A server that closes or
    drops the connection mid-call fails the call at once with
    :class:`~pytest_voicelatency.transports.link.AgentDisconnectedError`.
    :attr:`interruptions` counts the ``interruption`` frames received.
    """

    protocol = "Pipecat WebSocket"

    def __init__(self, url: str, *, sample_rate: int | None = None, frame_ms: int | None = None,
                 headers: Mapping[str, str] | None = None, connect_timeout_ms: float = 5000.0,
                 close_timeout_ms: float = 1000.0) -> None:
        super().__init__(url, headers=headers, connect_timeout_ms=connect_timeout_ms,
                         close_timeout_ms=close_timeout_ms)
        for name, value in (("sample_rate", sample_rate), ("frame_ms", frame_ms)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value <= 0):
                raise VoiceLatencyUsageError(f"PipecatWebSocketAgent {name} must be a positive "
                                             f"int, got {value!r}")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.interruptions = 0
        self._line_rate = sample_rate or 16_000
        self._wire_rate = self._line_rate
        self._factor = 1
        self._wire_frame = 0
        self._pending = np.zeros(0, np.int16)  # wire-rate samples not yet sent (frame_ms)

    # -------------------------------------------------------------- the wire format

    @staticmethod
    def audio_message(pcm: bytes, sample_rate: int, channels: int = 1) -> bytes:
        """One ``pipecat.Frame`` with its ``audio`` set: what the caller sends per frame."""
        frame = _Frame()
        frame.audio.audio = pcm
        frame.audio.sample_rate = sample_rate
        frame.audio.num_channels = channels
        data: bytes = frame.SerializeToString()
        return data

    # -------------------------------------------------------------- SocketAgent hooks

    def opened(self, session: AgentSession) -> list[Message]:
        line = session.format
        self._line_rate = line.sample_rate
        self._wire_rate = self.sample_rate or line.sample_rate
        self._factor = ratio(self._line_rate, self._wire_rate,
                             f"PipecatWebSocketAgent({self.url!r})")
        frame_ms = self.frame_ms or line.frame_ms
        samples = self._wire_rate * frame_ms / 1000
        if not samples.is_integer():
            raise VoiceLatencyUsageError(
                f"PipecatWebSocketAgent frame_ms={frame_ms} is not a whole number of samples at "
                f"{self._wire_rate} Hz")
        self._wire_frame = int(samples)
        return []

    def encode(self, pcm: bytes) -> list[Message]:
        frames, self._pending = to_wire(pcm, self._pending, line_rate=self._line_rate,
                                        wire_rate=self._wire_rate, factor=self._factor,
                                        frame=self._wire_frame)
        return [self.audio_message(frame.tobytes(), self._wire_rate) for frame in frames]

    def decode(self, message: Message) -> list[AgentEvent]:
        if isinstance(message, str):
            raise self.protocol_error(
                f"a text message where a binary protobuf frame was expected: {message[:80]!r} "
                f"(is the bot's transport using ProtobufFrameSerializer?)")
        try:
            frame = _Frame.FromString(message)
        except DecodeError:
            raise self.protocol_error(
                f"a binary message ({len(message)} bytes) that is not a protobuf pipecat.Frame "
                f"(is the bot's transport using ProtobufFrameSerializer?)") from None
        which = frame.WhichOneof("frame")
        if which == "interruption":
            self.interruptions += 1
            return [AgentClear()]
        if which == "audio":
            return self._audio(frame.audio)
        return []  # text, transcription, message (RTVI): nothing a listener hears

    def _audio(self, audio: Any) -> list[AgentEvent]:
        rate, channels, pcm = int(audio.sample_rate), int(audio.num_channels or 1), audio.audio
        if rate <= 0:
            raise self.protocol_error("an audio frame without a sample_rate")
        if len(pcm) % (2 * channels):
            raise self.protocol_error(
                f"an audio frame of {len(pcm)} bytes, not whole 16-bit samples of {channels} "
                f"channel(s)")
        if not pcm:
            return []
        x = np.frombuffer(pcm, dtype="<i2")
        if channels > 1:
            x = np.round(x.reshape(-1, channels).astype(np.int32).mean(axis=1)).astype(np.int16)
        if rate != self._line_rate:
            try:
                factor = ratio(rate, self._line_rate, f"the Pipecat bot at {self.url}")
            except VoiceLatencyUsageError as exc:
                raise self.protocol_error(f"audio at {rate} Hz: {exc}") from None
            x = downsample(x, factor) if rate > self._line_rate else upsample(x, factor)
            if not x.size:
                return []
        return [AgentAudio(x.astype("<i2").tobytes(), self._line_rate)]
