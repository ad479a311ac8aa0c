"""The socket under every transport: connect, pump frames both ways, and fail loudly on a drop.

Why one module: a transport differs from another only in how a frame of caller audio is written
and how a server message is read (raw PCM, Twilio's JSON events...). What must behave the same for
all of them lives here, in :class:`SocketAgent`:

* ``start()`` connects within ``connect_timeout_ms``; a refused, unreachable or silent server is an
  :class:`AgentConnectError` naming the URL — never the caller's generic ``start()`` timeout;
* ``receive()`` only queues the encoded frame (a writer task sends it), so a slow server shows up
  as the server's latency, not as the caller's pacing lateness;
* a reader task decodes every server message into ``AgentAudio`` / ``AgentClear`` /
  ``AgentState`` events (:mod:`pytest_voicelatency.call.protocol`), and when the server closes
  the connection or the TCP connection drops mid-call it fails the call **at once** with
  :class:`AgentDisconnectedError` naming the URL, the close code and the reason (1006 when the
  server vanished without a close frame) — not at the next ``answer()``'s timeout;
* ``close()`` says goodbye (a subclass hook, e.g. Twilio's ``stop``), closes with code 1000 and
  cancels its tasks; it is idempotent.

Socket agents run in real time (``honours_clock = False``): the server keeps its own time.

Needs the optional ``websockets`` package (``pip install 'pytest-voicelatency[websocket]'``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

try:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "pytest_voicelatency.transports needs the optional 'websockets' package: "
        "pip install 'pytest-voicelatency[websocket]'") from _missing

from pytest_voicelatency.call.protocol import (
    AgentEvent,
    AgentProtocolError,
    AgentSession,
    SessionTasks,
)
from pytest_voicelatency.errors import VoiceLatencyError, VoiceLatencyUsageError

__all__ = ["SocketAgent", "TransportError", "AgentConnectError", "AgentDisconnectedError",
           "Message"]

Message = str | bytes

#: What a close code means, for the error message (RFC 6455 §7.4.1).
_CLOSE_CODES = {1000: "normal closure", 1001: "going away", 1002: "protocol error",
                1003: "unsupported data", 1006: "abnormal closure: no close frame, the connection "
                "dropped", 1007: "invalid payload", 1008: "policy violation", 1009: "message too "
                "big", 1011: "internal server error", 1012: "service restart", 1013: "try again "
                "later"}


class TransportError(VoiceLatencyError):
    """The connection to an agent behind a socket failed; the message names the URL."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class AgentConnectError(TransportError):
    """The agent's server could not be reached, refused the connection or never completed the
    WebSocket handshake within ``connect_timeout_ms``."""


class AgentDisconnectedError(TransportError):
    """The agent's server closed the connection (or it dropped) in the middle of a call.

    ``code`` is the WebSocket close code (1006: no close frame, the server vanished) and
    ``reason`` the server's close reason (may be empty).
    """

    def __init__(self, message: str, *, url: str, code: int, reason: str) -> None:
        super().__init__(message, url=url)
        self.code = code
        self.reason = reason


def _positive_ms(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise VoiceLatencyUsageError(f"{name} must be a positive number of ms, got {value!r}")
    return float(value)


class SocketAgent:
    """A :class:`~pytest_voicelatency.call.protocol.VoiceAgent` whose agent is a WebSocket server.

    Subclasses implement :meth:`opened` (messages to send right after connecting),
    :meth:`encode` (one caller frame → messages), :meth:`decode` (one server message → events)
    and may implement :meth:`goodbye` (messages to send before closing).
    """

    honours_clock = False
    #: The protocol's name in messages ("WebSocket", "Twilio Media Streams").
    protocol = "WebSocket"

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None,
                 connect_timeout_ms: float = 5000.0, close_timeout_ms: float = 1000.0,
                 max_message_bytes: int | None = 2**22) -> None:
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise VoiceLatencyUsageError(
                f"{type(self).__name__} needs a ws:// or wss:// URL, got {url!r}")
        self.url = url
        self.headers = dict(headers or {})
        self.connect_timeout_ms = _positive_ms(connect_timeout_ms, "connect_timeout_ms")
        self.close_timeout_ms = _positive_ms(close_timeout_ms, "close_timeout_ms")
        self.max_message_bytes = max_message_bytes
        self.session: AgentSession | None = None
        self.tasks = SessionTasks()
        self._ws: ClientConnection | None = None
        self._outbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._closing = False

    # -------------------------------------------------------------- subclass hooks

    def opened(self, session: AgentSession) -> list[Message]:
        """Check the session's line format; return the messages to send as soon as the
        connection is open (before the first frame). Called before connecting."""
        return []

    def encode(self, pcm: bytes) -> list[Message]:
        """One inbound caller frame (16-bit PCM at the session's rate) → messages to send."""
        raise NotImplementedError

    def decode(self, message: Message) -> list[AgentEvent]:
        """One server message → events for the caller (may schedule replies with :meth:`send`)."""
        raise NotImplementedError

    def goodbye(self) -> list[Message]:
        """Messages to send before a clean close at the end of the call."""
        return []

    # -------------------------------------------------------------- the protocol

    async def start(self, session: AgentSession) -> None:
        self.session = session
        self.tasks.session = session
        greeting = self.opened(session)  # checks the line's format before any connection
        try:
            self._ws = await connect(
                self.url, additional_headers=self.headers or None,
                open_timeout=self.connect_timeout_ms / 1000, close_timeout=self.close_timeout_ms
                / 1000, max_size=self.max_message_bytes, compression=None)
        except TimeoutError:
            raise AgentConnectError(
                f"{self.protocol} agent at {self.url} did not complete the WebSocket handshake "
                f"within connect_timeout_ms={self.connect_timeout_ms:g}: is the server accepting "
                f"connections on that path?", url=self.url) from None
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            raise AgentConnectError(
                f"could not connect to the {self.protocol} agent at {self.url}: {exc}",
                url=self.url) from exc
        for message in greeting:
            self._outbox.put_nowait(message)
        self._writer = self.tasks.spawn(self._write())
        self.tasks.spawn(self._read())

    async def receive(self, pcm: bytes) -> None:
        if self._error is not None:
            raise self._error
        for message in self.encode(pcm):
            self._outbox.put_nowait(message)

    def send(self, message: Message) -> None:
        """Queue a message to the server (in order with the audio frames)."""
        if not self._closing:
            self._outbox.put_nowait(message)

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        ws, writer = self._ws, self._writer
        if ws is not None and writer is not None and self._error is None:
            for message in self.goodbye():
                self._outbox.put_nowait(message)
            self._outbox.put_nowait(None)  # the writer stops after what is queued
            try:
                async with asyncio.timeout(self.close_timeout_ms / 1000):
                    await asyncio.gather(writer, return_exceptions=True)
            except TimeoutError:
                pass
        await self.tasks.cancel_all()
        if ws is not None:
            await ws.close(1000, "call ended")

    # -------------------------------------------------------------- the pumps

    async def _write(self) -> None:
        ws = self._ws
        assert ws is not None
        while (message := await self._outbox.get()) is not None:
            try:
                await ws.send(message)
            except ConnectionClosed:
                self._lost()
                return

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        session = self.session
        assert session is not None
        try:
            async for message in ws:
                for event in self.decode(message):
                    session.emit(event)
        except ConnectionClosed:
            pass
        self._lost()

    def _lost(self) -> None:
        """The connection is gone: unless we closed it, fail the call now."""
        if self._closing or self._error is not None:
            return
        ws = self._ws
        code = ws.close_code if ws is not None and ws.close_code is not None else 1006
        reason = (ws.close_reason if ws is not None else None) or ""
        meaning = _CLOSE_CODES.get(code, "")
        self._error = AgentDisconnectedError(
            f"the {self.protocol} agent at {self.url} closed the connection mid-call: close code "
            f"{code}{f' ({meaning})' if meaning else ''}, reason {reason!r}",
            url=self.url, code=code, reason=reason)
        assert self.session is not None
        self.session.fail(self._error)

    def protocol_error(self, what: str) -> AgentProtocolError:
        """An :class:`AgentProtocolError` for a malformed server message, naming the URL."""
        return AgentProtocolError(f"the {self.protocol} agent at {self.url} sent {what}")

    def json_object(self, message: Message) -> dict[str, Any]:
        """Parse a text message as a JSON object, or raise :meth:`protocol_error`."""
        if isinstance(message, bytes):
            raise self.protocol_error(f"a binary message ({len(message)} bytes) where JSON text "
                                      f"was expected")
        try:
            value = json.loads(message)
        except ValueError:
            raise self.protocol_error(f"a text message that is not JSON: {message[:80]!r}") \
                from None
        if not isinstance(value, dict):
            raise self.protocol_error(f"JSON that is not an object: {message[:80]!r}")
        return value
