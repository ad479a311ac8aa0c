"""Twilio Media Streams, spoken from Twilio's side: drive a deployed phone agent as a call would.

A phone agent behind Twilio is a WebSocket server that Twilio connects to. :class:`TwilioAgent`
plays Twilio's part of the bidirectional Media Streams protocol, so the same server is tested
with no adapter:

* **sent** (JSON text, each with a string ``sequenceNumber``): ``connected``; ``start``
  (``streamSid``, ``callSid``, ``accountSid``, ``tracks: ["inbound"]``, ``customParameters``,
  ``mediaFormat`` ``audio/x-mulaw`` 8000 Hz mono); one ``media`` per caller frame (``track``
  ``"inbound"``, ``chunk``, ``timestamp`` in ms since the stream started, base64 μ-law 8 kHz
  ``payload``: 160 bytes per 20 ms frame); ``mark`` echoes; ``stop`` when the call ends;
* **received**: ``media`` (base64 μ-law 8 kHz agent audio → 16-bit PCM at the caller's rate,
  :class:`~pytest_voicelatency.call.protocol.AgentAudio`); ``mark`` (echoed back once the audio
  sent before it has played out — in real time from its arrival — or at once on ``clear``, as
  Twilio does); ``clear`` (→ :class:`~pytest_voicelatency.call.protocol.AgentClear`: the queued
  audio is dropped). Other events are ignored; a message for another ``streamSid`` fails the call.

The caller's line rate must be a multiple of 8 kHz (8, 16, 48 kHz...): frames are converted by a
whole ratio, so no sample moves in time; with ``Caller(format=AudioFormat(8000))`` the line is
exactly the phone's.

>>> agent = TwilioAgent("ws://127.0.0.1:8765/media", custom_parameters={"lang": "en"})
>>> agent.honours_clock, agent.stream_sid[:2], len(agent.stream_sid)
(False, 'MZ', 34)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from typing import Any

import numpy as np

from pytest_voicelatency.call.protocol import AgentAudio, AgentClear, AgentEvent, AgentSession
from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.transports.link import Message, SocketAgent
from pytest_voicelatency.transports.mulaw import decode, downsample, encode, ratio, upsample

__all__ = ["TwilioAgent"]

RATE = 8000


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class TwilioAgent(SocketAgent):
    """Drive a voice agent that serves Twilio Media Streams (μ-law 8 kHz over JSON).

    One instance serves one call: give the caller a factory (``lambda: TwilioAgent(url)``) for
    several. ``stream_sid``, ``call_sid`` and ``account_sid`` default to fresh random ids of
    Twilio's shape; ``custom_parameters`` are the ``<Parameter>`` values of the TwiML
    ``<Stream>``. :attr:`marks_echoed` lists the mark names echoed back, in order.
    """

    protocol = "Twilio Media Streams"

    def __init__(self, url: str, *, stream_sid: str | None = None, call_sid: str | None = None,
                 account_sid: str | None = None,
                 custom_parameters: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None, connect_timeout_ms: float = 5000.0,
                 close_timeout_ms: float = 1000.0) -> None:
        super().__init__(url, headers=headers, connect_timeout_ms=connect_timeout_ms,
                         close_timeout_ms=close_timeout_ms)
        self.stream_sid = stream_sid or _sid("MZ")
        self.call_sid = call_sid or _sid("CA")
        self.account_sid = account_sid or _sid("AC")
        self.custom_parameters = dict(custom_parameters or {})
        self.marks_echoed: list[str] = []
        self._sequence = 0
        self._chunk = 0
        self._played_until = 0       # when the agent audio received so far ends, at real rate
        self._marks: list[tuple[asyncio.Task[None], str]] = []

    def _event(self, event: str, **fields: Any) -> str:
        self._sequence += 1
        body: dict[str, Any] = {"event": event, "sequenceNumber": str(self._sequence)}
        body.update(fields)
        if event != "connected":
            body["streamSid"] = self.stream_sid
        return json.dumps(body)

    def opened(self, session: AgentSession) -> list[Message]:
        line = session.format
        self._line_rate = line.sample_rate
        if line.sample_rate < RATE:
            raise VoiceLatencyUsageError(
                f"TwilioAgent({self.url!r}) needs a caller line of at least {RATE} Hz (a multiple "
                f"of it), got {line.sample_rate} Hz")
        self._factor = ratio(line.sample_rate, RATE, f"TwilioAgent({self.url!r})")
        self._frame_ms = line.frame_ms
        return [
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
            self._event("start", start={
                "accountSid": self.account_sid, "streamSid": self.stream_sid,
                "callSid": self.call_sid, "tracks": ["inbound"],
                "customParameters": self.custom_parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1}}),
        ]

    def encode(self, pcm: bytes) -> list[Message]:
        x = downsample(np.frombuffer(pcm, dtype="<i2"), self._factor)
        timestamp = self._chunk * self._frame_ms
        self._chunk += 1
        payload = base64.b64encode(encode(x).tobytes()).decode("ascii")
        return [self._event("media", media={"track": "inbound", "chunk": str(self._chunk),
                                            "timestamp": str(timestamp), "payload": payload})]

    def decode(self, message: Message) -> list[AgentEvent]:
        value = self.json_object(message)
        event = value.get("event")
        sid = value.get("streamSid")
        if event in ("media", "mark", "clear") and sid is not None and sid != self.stream_sid:
            raise self.protocol_error(f"a {event!r} for streamSid {sid!r}; this call's streamSid "
                                      f"is {self.stream_sid!r}")
        if event == "media":
            media = value.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str):
                raise self.protocol_error(f"a media event without media.payload: {message!r:.120}")
            try:
                ulaw = base64.b64decode(payload, validate=True)
            except binascii.Error:
                raise self.protocol_error(f"a media payload that is not base64: {payload[:40]!r}") \
                    from None
            if not ulaw:
                return []
            pcm = upsample(decode(ulaw), self._factor)
            now = self._now()
            self._played_until = max(self._played_until, now) + len(ulaw) * 1_000_000_000 // RATE
            return [AgentAudio(pcm.astype("<i2").tobytes(), self._line_rate)]
        if event == "mark":
            mark = value.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str):
                raise self.protocol_error(f"a mark event without mark.name: {message!r:.120}")
            task = self.tasks.spawn(self._echo_later(name, self._played_until))
            self._marks.append((task, name))
            return []
        if event == "clear":
            pending, self._marks = self._marks, []
            for task, name in pending:
                if not task.done():
                    task.cancel()
                    self._echo(name)
            self._played_until = 0
            return [AgentClear()]
        return []

    def goodbye(self) -> list[Message]:
        return [self._event("stop", stop={"accountSid": self.account_sid,
                                          "callSid": self.call_sid})]

    def _now(self) -> int:
        assert self.session is not None
        return self.session.clock.now_ns()

    def _echo(self, name: str) -> None:
        self.marks_echoed.append(name)
        self.send(self._event("mark", mark={"name": name}))

    async def _echo_later(self, name: str, due_ns: int) -> None:
        assert self.session is not None
        await self.session.clock.sleep_until(due_ns)
        self._marks = [(t, n) for t, n in self._marks if t is not asyncio.current_task()]
        self._echo(name)
