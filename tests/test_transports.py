"""Agents behind a socket: WebSocketAgent and TwilioAgent against real servers on 127.0.0.1.

Each test starts a tiny reference agent (the ``websockets`` asyncio server, port 0, in a thread of
its own so it keeps its own time) that answers ``RESPONSE_MS`` after the user's speech ends and,
when talked over, stops ``STOP_MS`` after the interruption's onset by sending a clear. The caller
then measures what a listener hears; the numbers must be near the server's known delays (the
tolerances are wide: the machines are shared).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("websockets", reason="the transports need the optional websockets package: "
                                         "pip install 'pytest-voicelatency[websocket]'")

from websockets.asyncio.server import ServerConnection, serve  # noqa: E402

from pytest_voicelatency.agents.oracle import tone_clip  # noqa: E402
from pytest_voicelatency.call.caller import Caller  # noqa: E402
from pytest_voicelatency.call.protocol import (  # noqa: E402
    AgentAudio,
    AgentClear,
    AgentProtocolError,
    AgentState,
    AudioFormat,
)
from pytest_voicelatency.call.script import answer, barge_in, say  # noqa: E402
from pytest_voicelatency.clock import RealClock  # noqa: E402
from pytest_voicelatency.errors import VoiceLatencyUsageError  # noqa: E402
from pytest_voicelatency.transports import (  # noqa: E402
    AgentConnectError,
    AgentDisconnectedError,
    TwilioAgent,
    WebSocketAgent,
    mulaw,
)

ROOT = Path(__file__).resolve().parent.parent
RESPONSE_MS, STOP_MS, REPLY_MS, HOLD_MS = 300, 80, 1500, 150
BUFFER_MS = 40  # the caller's default client jitter buffer
CALL = [say(tone_clip(500)), answer(),
        say(tone_clip(500)), barge_in(tone_clip(400), after_ms=300), answer()]

Handler = Callable[[ServerConnection], Awaitable[None]]


@contextmanager
def running(handler: Handler, *, path: str = "") -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (OS-chosen port) in a thread; yield its URL; stop it."""
    ready, failed = threading.Event(), []
    box: dict[str, Any] = {}

    async def main() -> None:
        box["stop"] = stop = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        async with serve(handler, "127.0.0.1", 0) as server:
            box["port"] = server.sockets[0].getsockname()[1]
            ready.set()
            await stop.wait()

    def thread() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            failed.append(exc)
            ready.set()

    worker = threading.Thread(target=thread, daemon=True)
    worker.start()
    assert ready.wait(10), "the test server did not start"
    if failed:
        raise failed[0]
    try:
        yield f"ws://127.0.0.1:{box['port']}{path}"
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        worker.join(10)
        assert not worker.is_alive(), "the test server did not stop"


class TurnTaker:
    """The reference agent's brain, independent of the wire: amplitude VAD on what it receives,
    a paced tone reply ``RESPONSE_MS`` after the user stops, a clear ``STOP_MS`` after a barge-in.
    ``send_audio(int16 samples)`` / ``send_clear()`` / ``after_reply()`` are the wire's."""

    def __init__(self, rate: int, send_audio: Callable[[np.ndarray], Awaitable[None]],
                 send_clear: Callable[[], Awaitable[None]],
                 after_reply: Callable[[], Awaitable[None]] | None = None) -> None:
        self.rate = rate
        self.send_audio, self.send_clear, self.after_reply = send_audio, send_clear, after_reply
        self.talking, self.last_loud = False, 0
        self.reply: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.log: list[tuple[str, int]] = []  # (what, monotonic ns)

    def heard(self, x: np.ndarray) -> None:
        now, n = time.monotonic_ns(), x.size
        loud = np.flatnonzero(np.abs(x.astype(np.int32)) > 2000)
        if loud.size:
            if not self.talking:
                self.talking = True
                onset = now - (n - int(loud[0])) * 1_000_000_000 // self.rate
                if self.reply is not None and not self.reply.done():
                    self._spawn(self._stop(onset))
            self.last_loud = now - (n - int(loud[-1]) - 1) * 1_000_000_000 // self.rate
        elif self.talking and now - self.last_loud > HOLD_MS * 1_000_000:
            self.talking = False
            self.log.append(("user_end", self.last_loud))
            self.reply = self._spawn(self._answer(self.last_loud))

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _answer(self, user_end: int) -> None:
        frame = self.rate // 50
        tone = (0.3 * 32767 * np.sign(np.sin(2 * np.pi * 300 * np.arange(
            self.rate * REPLY_MS // 1000) / self.rate))).astype(np.int16)
        start = user_end + RESPONSE_MS * 1_000_000
        await asyncio.sleep(max(0, start - time.monotonic_ns()) / 1e9)
        self.log.append(("reply", time.monotonic_ns()))
        for k in range(0, tone.size, frame):
            await asyncio.sleep(max(0, start + k * 1_000_000_000 // self.rate
                                    - time.monotonic_ns()) / 1e9)
            await self.send_audio(tone[k:k + frame])
        if self.after_reply is not None:
            await self.after_reply()

    async def _stop(self, onset: int) -> None:
        await asyncio.sleep(max(0, onset + STOP_MS * 1_000_000 - time.monotonic_ns()) / 1e9)
        if self.reply is not None:
            self.reply.cancel()
        self.log.append(("clear", time.monotonic_ns()))
        await self.send_clear()

    async def finish(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class PcmServer:
    """A raw-PCM WebSocket agent; records what it was sent."""

    def __init__(self, rate: int = 16_000) -> None:
        self.rate = rate
        self.texts: list[str] = []
        self.frame_sizes: list[int] = []
        self.headers: dict[str, str] = {}

    async def __call__(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.headers = dict(ws.request.headers.raw_items())

        async def audio(x: np.ndarray) -> None:
            await ws.send(x.astype("<i2").tobytes())

        async def clear() -> None:
            await ws.send(json.dumps({"type": "clear"}))

        turns = TurnTaker(self.rate, audio, clear)
        try:
            async for message in ws:
                if isinstance(message, str):
                    self.texts.append(message)
                    continue
                self.frame_sizes.append(len(message))
                turns.heard(np.frombuffer(message, "<i2"))
        finally:
            await turns.finish()


class TwilioServer:
    """A Twilio Media Streams agent (the server Twilio connects to); records the events."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.payload_sizes: list[int] = []
        self.marks_back: list[str] = []
        self.replies = 0

    async def __call__(self, ws: ServerConnection) -> None:
        sid: list[str] = []

        async def audio(x: np.ndarray) -> None:
            payload = base64.b64encode(mulaw.encode(x).tobytes()).decode()
            await ws.send(json.dumps({"event": "media", "streamSid": sid[0],
                                      "media": {"payload": payload}}))

        async def clear() -> None:
            await ws.send(json.dumps({"event": "clear", "streamSid": sid[0]}))

        async def mark() -> None:
            self.replies += 1
            await ws.send(json.dumps({"event": "mark", "streamSid": sid[0],
                                      "mark": {"name": f"reply-{self.replies}"}}))

        turns = TurnTaker(8000, audio, clear, mark)
        try:
            async for message in ws:
                event = json.loads(message)
                self.events.append(event)
                if event["event"] == "start":
                    sid.append(event["start"]["streamSid"])
                elif event["event"] == "media":
                    ulaw = base64.b64decode(event["media"]["payload"])
                    self.payload_sizes.append(len(ulaw))
                    turns.heard(mulaw.decode(ulaw))
                elif event["event"] == "mark":
                    self.marks_back.append(event["mark"]["name"])
        finally:
            await turns.finish()


def _plausible(result: Any) -> None:
    """Responses near RESPONSE_MS + the jitter buffer; barge-ins near STOP_MS + the buffer."""
    responses = [m.value_ms for m in result.metrics.responses]
    barge_ins = [m.value_ms for m in result.metrics.barge_ins]
    assert [m.outcome for m in result.metrics.responses] == ["ok", "ok"]
    assert [m.outcome for m in result.metrics.barge_ins] == ["ok"]
    for value in responses:
        assert RESPONSE_MS - 20 <= value <= RESPONSE_MS + BUFFER_MS + 400, responses
    assert STOP_MS - 20 <= barge_ins[0] <= STOP_MS + BUFFER_MS + 400, barge_ins


# -------------------------------------------------------------- raw PCM over a WebSocket


@pytest.mark.slow  # real time: a two-turn call with a barge-in (~6 s)
def test_a_raw_pcm_websocket_agent_is_measured_as_the_listener_hears_it():
    server = PcmServer()
    with running(server) as url:
        result = Caller().run(WebSocketAgent(url), CALL)
    _plausible(result)
    assert set(server.frame_sizes) == {640}  # 20 ms of 16 kHz PCM16 per binary message


@pytest.mark.slow  # real time: a two-turn call with a barge-in (~6 s)
def test_raw_pcm_options_rate_frame_headers_and_start_message_reach_the_server():
    server = PcmServer(rate=8000)
    with running(server) as url:
        agent = WebSocketAgent(url, sample_rate=8000, frame_ms=40,
                               headers={"Authorization": "Bearer t0ken"},
                               start_message={"type": "start", "call": "c-1"})
        result = Caller().run(agent, CALL)
    _plausible(result)
    assert server.headers["Authorization"] == "Bearer t0ken"
    assert [json.loads(t) for t in server.texts] == [{"type": "start", "call": "c-1"}]
    assert set(server.frame_sizes) == {640}  # 40 ms of 8 kHz PCM16


# -------------------------------------------------------------- Twilio Media Streams


@pytest.mark.slow  # real time: a two-turn call with a barge-in (~6 s)
def test_a_twilio_media_streams_agent_is_measured_and_its_marks_echoed():
    server = TwilioServer()
    with running(server) as url:
        agent = TwilioAgent(url, custom_parameters={"lang": "en"})
        result = Caller().run(agent, CALL)
    _plausible(result)
    kinds = [e["event"] for e in server.events]
    assert kinds[:2] == ["connected", "start"] and kinds[-1] == "stop"
    start = server.events[1]["start"]
    assert start["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert start["streamSid"] == agent.stream_sid and start["callSid"] == agent.call_sid
    assert start["customParameters"] == {"lang": "en"}
    assert set(server.payload_sizes) == {160}  # 20 ms of 8 kHz μ-law
    sequence = [int(e["sequenceNumber"]) for e in server.events if "sequenceNumber" in e]
    assert sequence == list(range(1, len(sequence) + 1))
    # the interrupted reply never reached its mark; the two played replies did, once played out
    assert server.marks_back == agent.marks_echoed == ["reply-1", "reply-2"]


# -------------------------------------------------------------- failures, at once and named


TIMEOUT_MS = 8000.0


@pytest.mark.filterwarnings("ignore:session call-1. the caller fell behind")  # a 0.3 s call:
@pytest.mark.parametrize("how", ["close", "crash"])  # one late frame is its p99; not the point
def test_a_server_that_hangs_up_mid_call_fails_the_call_at_once(how):
    """Closing with a code (or vanishing: 1006) while the caller waits for an answer."""
    closed: list[int] = []

    async def hang_up(ws: ServerConnection) -> None:
        talking, frames = False, 0
        async for message in ws:
            frames += 1
            loud = np.abs(np.frombuffer(message, "<i2")).max() > 2000
            talking = talking or bool(loud)
            if talking and not loud and frames > 10:  # the user stopped: now hang up
                closed.append(time.monotonic_ns())
                if how == "close":
                    await ws.close(1011, "agent crashed")
                else:
                    ws.transport.abort()
                return

    with running(hang_up) as url:
        with pytest.raises(AgentDisconnectedError) as caught:
            Caller().run(WebSocketAgent(url), [say(tone_clip(300, trail_ms=0)),
                                               answer(timeout_ms=TIMEOUT_MS)])
        raised = time.monotonic_ns()
    message = str(caught.value)
    assert url in message and "mid-call" in message
    if how == "close":
        assert caught.value.code == 1011 and "1011" in message and "agent crashed" in message
    else:
        assert caught.value.code == 1006 and "1006" in message
    assert closed and (raised - closed[0]) / 1e6 < TIMEOUT_MS / 4


def test_a_server_that_never_accepts_is_a_connect_timeout_naming_the_url():
    with socket.socket() as silent:  # listens (the kernel completes TCP) but never answers HTTP
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}/agent"
        started = time.monotonic()
        with pytest.raises(AgentConnectError, match=re.escape(url)) as caught:
            Caller().run(WebSocketAgent(url, connect_timeout_ms=300), [say(tone_clip()), answer()])
    assert "connect_timeout_ms=300" in str(caught.value)
    assert time.monotonic() - started < Caller().agent_timeout_ms / 1000  # not start()'s timeout


def test_a_refused_connection_is_an_error_naming_the_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{probe.getsockname()[1]}"  # bound, not listening: refused
        with pytest.raises(AgentConnectError, match=re.escape(url)):
            Caller().run(TwilioAgent(url), [say(tone_clip()), answer()])


def test_a_server_sending_garbage_fails_the_call_with_a_protocol_error_naming_the_url():
    async def garbage(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send("this is not JSON")
        await ws.wait_closed()

    with running(garbage) as url:
        with pytest.raises(AgentProtocolError, match="not JSON") as caught:
            Caller().run(TwilioAgent(url), [say(tone_clip()), answer()])
    assert url in str(caught.value)


# -------------------------------------------------------------- the codecs, without a server


class FakeSession:
    session_id = "s"
    format = AudioFormat()
    clock = None
    tracer = None

    def emit(self, event: object) -> None: ...

    def fail(self, error: BaseException) -> None: ...


def test_raw_pcm_frames_and_server_messages_are_translated_without_moving_samples():
    agent = WebSocketAgent("ws://127.0.0.1:1", sample_rate=8000, frame_ms=40)
    assert agent.opened(FakeSession()) == []  # type: ignore[arg-type]
    frame = np.arange(320, dtype="<i2").tobytes()                 # 20 ms at 16 kHz
    assert agent.encode(frame) == []                              # half of a 40 ms wire frame
    (sent,) = agent.encode(frame)
    assert len(sent) == 640                                       # 320 samples at 8 kHz
    first, second = agent.decode(b"\x01\x00\x02"), agent.decode(b"\x00")  # a sample split in two
    assert first == [AgentAudio(np.array([1, 1], "<i2").tobytes(), 16_000)]
    assert second == [AgentAudio(np.array([2, 2], "<i2").tobytes(), 16_000)]
    assert agent.decode('{"type": "clear"}') == [AgentClear()]
    assert agent.decode('{"type": "state", "state": "speaking"}') == [AgentState("speaking")]
    assert agent.decode('{"type": "transcript", "text": "hi"}') == []
    with pytest.raises(AgentProtocolError, match="ws://127.0.0.1:1.*not JSON"):
        agent.decode("clear")


def test_twilio_media_is_mulaw_8k_in_20_ms_chunks_and_back_at_the_line_rate():
    agent = TwilioAgent("ws://127.0.0.1:1", stream_sid="MZ1")
    connected, start = (json.loads(m) for m in agent.opened(FakeSession()))  # type: ignore[arg-type]
    assert connected["event"] == "connected" and start["event"] == "start"
    (media,) = agent.encode(np.zeros(320, "<i2").tobytes())
    body = json.loads(media)
    assert body["streamSid"] == "MZ1" and body["media"]["chunk"] == "1"
    assert base64.b64decode(body["media"]["payload"]) == b"\xff" * 160
    with pytest.raises(AgentProtocolError, match="streamSid 'MZ2'"):
        agent.decode(json.dumps({"event": "clear", "streamSid": "MZ2"}))


def test_a_twilio_mark_is_echoed_once_its_audio_has_played_or_at_once_on_clear():
    """Twilio's rule: a mark comes back when the audio sent before it finished playing; a clear
    drops the audio and returns every pending mark immediately."""

    class Session(FakeSession):
        clock = RealClock()

    async def call() -> tuple[list[str], list[str], list[str]]:
        agent = TwilioAgent("ws://127.0.0.1:1", stream_sid="MZ1")
        session = Session()
        agent.session, agent.tasks.session = session, session  # type: ignore[assignment]
        agent.opened(session)  # type: ignore[arg-type]
        second = base64.b64encode(b"\x00" * 8000).decode()   # 1 s of audio
        (audio,) = agent.decode(json.dumps({"event": "media", "media": {"payload": second}}))
        assert isinstance(audio, AgentAudio) and len(audio.pcm) == 2 * 16_000
        agent.decode(json.dumps({"event": "mark", "mark": {"name": "end-of-reply"}}))
        await asyncio.sleep(0.05)
        before_clear = list(agent.marks_echoed)                # still playing: not yet
        assert agent.decode(json.dumps({"event": "clear"})) == [AgentClear()]
        after_clear = list(agent.marks_echoed)
        agent.decode(json.dumps({"event": "mark", "mark": {"name": "idle"}}))  # nothing queued
        await asyncio.sleep(0.05)
        await agent.tasks.cancel_all()
        return before_clear, after_clear, agent.marks_echoed

    assert asyncio.run(call()) == ([], ["end-of-reply"], ["end-of-reply", "idle"])


def test_bad_transport_arguments_fail_before_any_connection():
    with pytest.raises(VoiceLatencyUsageError, match="ws://"):
        WebSocketAgent("http://127.0.0.1:1")
    with pytest.raises(VoiceLatencyUsageError, match="connect_timeout_ms"):
        TwilioAgent("ws://127.0.0.1:1", connect_timeout_ms=0)
    with pytest.raises(VoiceLatencyUsageError, match="whole multiple"):
        WebSocketAgent("ws://127.0.0.1:1", sample_rate=11_025).opened(FakeSession())  # type: ignore[arg-type]


def test_the_package_and_plugin_import_without_websockets_and_the_transports_say_how_to_get_it():
    code = (
        "import sys; sys.modules['websockets'] = None\n"
        "import pytest_voicelatency, pytest_voicelatency.plugin, pytest_voicelatency.transports\n"
        "from pytest_voicelatency.transports import mulaw\n"
        "try:\n"
        "    from pytest_voicelatency.transports import WebSocketAgent\n"
        "except ImportError as exc:\n"
        "    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "pip install 'pytest-voicelatency[websocket]'" in result.stdout


# -------------------------------------------------------------- the docs


@pytest.mark.slow  # real time: the documented call
def test_the_documented_example_runs_as_written(tmp_path):
    doc = (ROOT / "docs" / "transports.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.S) if "serve(" in b]
    script = tmp_path / "transports_example.py"
    script.write_text(block, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert re.search(r"heard after \d+ ms", result.stdout), result.stdout
