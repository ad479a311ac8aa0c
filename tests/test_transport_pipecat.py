"""PipecatWebSocketAgent against a real Pipecat bot: Pipecat's own WebSocket server transport with
its ProtobufFrameSerializer, bound to 127.0.0.1, running the offline pipeline of
tests/pipecat_services.py (energy VAD → delayed STT → user aggregator → delayed LLM → delayed
TTS tone) in a thread of its own. The caller measures what a listener hears; the numbers must be
near the pipeline's injected delays (wide tolerances: the machines are shared).
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pipecat")
pytest.importorskip("websockets")

from pipecat.frames.frames import InterruptionFrame, OutputAudioRawFrame  # noqa: E402
from pipecat.frames.protobufs import frames_pb2  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.serializers.protobuf import ProtobufFrameSerializer  # noqa: E402
from pipecat.transports.websocket.server import (  # noqa: E402
    SingleClientWebsocketServerParams,
    SingleClientWebsocketServerTransport,
)
from pipecat.workers.runner import WorkerRunner  # noqa: E402
from pipecat_services import (  # noqa: E402
    LLM_DELAY_S,
    STT_DELAY_S,
    TTS_DELAY_S,
    VAD_STOP_S,
    build_pipeline,
)

from pytest_voicelatency.agents.oracle import tone_clip  # noqa: E402
from pytest_voicelatency.call.caller import Caller  # noqa: E402
from pytest_voicelatency.call.protocol import (  # noqa: E402
    AgentAudio,
    AgentClear,
    AgentProtocolError,
    AudioFormat,
)
from pytest_voicelatency.call.script import answer, barge_in, say  # noqa: E402
from pytest_voicelatency.errors import VoiceLatencyUsageError  # noqa: E402
from pytest_voicelatency.transports import (  # noqa: E402
    AgentDisconnectedError,
    PipecatWebSocketAgent,
)

ROOT = Path(__file__).resolve().parent.parent
RATE = 16_000
#: the least a reply can take after the user's last sound: the VAD's hangover, then STT, LLM, TTS
FLOOR_MS = (VAD_STOP_S + STT_DELAY_S + LLM_DELAY_S + TTS_DELAY_S) * 1000
CALL = [say(tone_clip(600)), answer(),
        say(tone_clip(600)), barge_in(tone_clip(500), after_ms=300), answer()]


def _free_port() -> int:
    with socket.socket() as probe:  # Pipecat's transport takes a port number, not a socket
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Bot:
    """A running bot: its ``url``; ``stop()`` cancels its pipeline (the server goes away)."""

    def __init__(self, url: str, box: dict[str, Any]) -> None:
        self.url, self._box = url, box

    def stop(self) -> None:
        if not self._box.get("stopped"):
            self._box["stopped"] = True
            asyncio.run_coroutine_threadsafe(self._box["worker"].cancel(),
                                             self._box["loop"]).result(15)


@contextmanager
def pipecat_bot() -> Iterator[Bot]:
    """A Pipecat bot behind SingleClientWebsocketServerTransport + ProtobufFrameSerializer, run
    by Pipecat's WorkerRunner in a thread; yields it once it accepts connections."""
    port = _free_port()
    ready, failed, box = threading.Event(), [], {}  # type: ignore[var-annotated]

    async def main() -> None:
        transport = SingleClientWebsocketServerTransport(
            SingleClientWebsocketServerParams(audio_in_enabled=True, audio_out_enabled=True,
                                              serializer=ProtobufFrameSerializer()),
            host="127.0.0.1", port=port)
        vad, stt, user, llm, tts, assistant = build_pipeline()
        worker = PipelineWorker(
            Pipeline([transport.input(), vad, stt, user, llm, tts, transport.output(),
                      assistant]),
            params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
            cancel_on_idle_timeout=False, idle_timeout_secs=None)

        @transport.event_handler("on_websocket_ready")  # type: ignore[misc]
        async def _ready(_transport: Any) -> None:
            ready.set()

        box["loop"], box["worker"] = asyncio.get_running_loop(), worker
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()

    def thread() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            failed.append(exc)
            ready.set()

    bot = threading.Thread(target=thread, daemon=True)
    bot.start()
    assert ready.wait(30), "the Pipecat bot did not start"
    if failed:
        raise failed[0]
    handle = Bot(f"ws://127.0.0.1:{port}", box)
    try:
        yield handle
    finally:
        handle.stop()
        bot.join(15)
        assert not bot.is_alive(), "the Pipecat bot did not stop"
    if failed:
        raise failed[0]


# -------------------------------------------------------------- a real Pipecat bot


@pytest.mark.slow  # real time: a two-turn call with a barge-in (~8 s)
def test_a_pipecat_bot_behind_its_websocket_server_is_heard_and_interrupted():
    with pipecat_bot() as bot:
        agent = PipecatWebSocketAgent(bot.url)
        result = Caller().run(agent, CALL)
    responses = [m.value_ms for m in result.metrics.responses]
    barge_ins = [m.value_ms for m in result.metrics.barge_ins]
    assert [m.outcome for m in result.metrics.responses] == ["ok", "ok"], responses
    assert [m.outcome for m in result.metrics.barge_ins] == ["ok"], barge_ins
    for value in responses:  # never before the injected delays; not far after them
        assert FLOOR_MS - 20 <= value <= FLOOR_MS + 1200, (responses, FLOOR_MS)
    # Pipecat's InterruptionFrame reached the client as an `interruption` frame (the clear)
    assert agent.interruptions >= 1
    # VAD start (60 ms) + Pipecat's interruption + the client's 40 ms jitter buffer; without the
    # clear the listener would hear the queued reply (Pipecat sends audio at twice real time)
    assert 20 <= barge_ins[0] <= 1000, barge_ins


# -------------------------------------------------------------- the wire, without a server


class FakeSession:
    session_id = "s"
    format = AudioFormat()
    clock = None
    tracer = None

    def emit(self, event: object) -> None: ...

    def fail(self, error: BaseException) -> None: ...


def _frame(**fields: Any) -> bytes:
    frame = frames_pb2.Frame()  # type: ignore[attr-defined]
    (which, values), = fields.items()
    for key, value in values.items():
        setattr(getattr(frame, which), key, value)
    data: bytes = frame.SerializeToString()
    return data


def test_caller_frames_are_what_pipecats_serializer_reads_as_input_audio():
    agent = PipecatWebSocketAgent("ws://127.0.0.1:1", sample_rate=8000, frame_ms=40)
    assert agent.opened(FakeSession()) == []  # type: ignore[arg-type]
    pcm = np.arange(320, dtype="<i2").tobytes()            # 20 ms at 16 kHz
    assert agent.encode(pcm) == []                          # half of a 40 ms wire frame
    (sent,) = agent.encode(pcm)
    frame = asyncio.run(ProtobufFrameSerializer().deserialize(sent))
    assert type(frame).__name__ == "InputAudioRawFrame"
    assert (frame.sample_rate, frame.num_channels, len(frame.audio)) == (8000, 1, 640)


def test_bot_audio_interruption_and_other_frames_become_events():
    agent = PipecatWebSocketAgent("ws://127.0.0.1:1")
    agent.opened(FakeSession())  # type: ignore[arg-type]
    tone = np.array([1, 1, 2, 2], "<i2")
    # what Pipecat's serializer writes for the bot's OutputAudioRawFrame / InterruptionFrame
    serializer = ProtobufFrameSerializer()
    audio = asyncio.run(serializer.serialize(OutputAudioRawFrame(tone.tobytes(), 16_000, 1)))
    interruption = asyncio.run(serializer.serialize(InterruptionFrame()))
    assert isinstance(audio, bytes) and isinstance(interruption, bytes)
    assert agent.decode(audio) == [AgentAudio(tone.tobytes(), 16_000)]
    assert agent.decode(interruption) == [AgentClear()] and agent.interruptions == 1
    stereo_48k = np.tile(np.array([10, 20], "<i2"), 6)  # 6 interleaved L, R pairs at 48 kHz
    (mono,) = agent.decode(_frame(audio={"audio": stereo_48k.tobytes(), "sample_rate": 48_000,
                                         "num_channels": 2}))
    assert mono == AgentAudio(np.array([15, 15], "<i2").tobytes(), 16_000)
    assert agent.decode(_frame(text={"text": "hello"})) == []
    assert agent.decode(_frame(message={"data": '{"label": "rtvi-ai"}'})) == []
    with pytest.raises(AgentProtocolError, match="ws://127.0.0.1:1.*text message"):
        agent.decode('{"type": "clear"}')
    with pytest.raises(AgentProtocolError, match="not a protobuf"):
        agent.decode(b"\xff\xff\xff")
    with pytest.raises(AgentProtocolError, match="22050 Hz"):
        agent.decode(_frame(audio={"audio": b"\0\0", "sample_rate": 22_050}))


def test_bad_arguments_fail_before_any_connection():
    with pytest.raises(VoiceLatencyUsageError, match="ws://"):
        PipecatWebSocketAgent("http://127.0.0.1:1")
    with pytest.raises(VoiceLatencyUsageError, match="sample_rate"):
        PipecatWebSocketAgent("ws://127.0.0.1:1", sample_rate=0)
    with pytest.raises(VoiceLatencyUsageError, match="whole multiple"):
        PipecatWebSocketAgent("ws://127.0.0.1:1", sample_rate=11_025).opened(FakeSession())  # type: ignore[arg-type]


def test_a_missing_pipecat_is_an_import_error_saying_how_to_get_it():
    code = (
        "import sys; sys.modules['pipecat'] = None\n"
        "import pytest_voicelatency.transports as t\n"
        "t.WebSocketAgent\n"
        "try:\n"
        "    t.PipecatWebSocketAgent\n"
        "except ImportError as exc:\n"
        "    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "pip install 'pytest-voicelatency[pipecat]'" in result.stdout


@pytest.mark.slow  # real time: a bot that goes away mid-call
def test_a_pipecat_bot_that_goes_away_mid_call_fails_the_call_at_once():
    with pipecat_bot() as bot:
        stopped: list[float] = []

        def stop_soon() -> None:  # while the caller waits for the answer
            time.sleep(0.4)
            stopped.append(time.monotonic())
            bot.stop()

        threading.Thread(target=stop_soon, daemon=True).start()
        with pytest.raises(AgentDisconnectedError) as caught:
            Caller().run(PipecatWebSocketAgent(bot.url),
                         [say(tone_clip(200)), answer(timeout_ms=20_000)])
        raised = time.monotonic()
    assert bot.url in str(caught.value) and "mid-call" in str(caught.value)
    assert stopped and raised - stopped[0] < 5  # at once, not at the answer's 20 s timeout


# -------------------------------------------------------------- the docs


@pytest.mark.slow  # real time: the documented call against a Pipecat bot
def test_the_documented_pipecat_example_runs_as_written(tmp_path):
    doc = (ROOT / "docs" / "transports.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.S)
                if "PipecatWebSocketAgent(" in b and "asyncio.run(" in b]
    script = tmp_path / "pipecat_ws_example.py"
    script.write_text(block, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=120, check=False, cwd=ROOT / "tests")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"heard after \d+ ms", result.stdout), result.stdout
