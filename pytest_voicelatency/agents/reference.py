"""A reference voice agent to copy: the shape of a streaming pipeline, instrumented the way the
seed articles instrument theirs, with fake stages whose latencies you set.

Copy this module as the starting point for your own agent's adapter: replace each fake stage
with your provider's streaming call and keep the spans where they are.

Pipeline, per call: inbound frames → :class:`~pytest_voicelatency.audio.vad.EnergyVAD` → on speech
onset, borrow a streaming ASR connection from a pool shared by all calls (span
``voice.handoff.vad_to_asr``) → ASR partials, then a final after the end of speech (``audio.asr``:
first partial as ``first_byte_ms``, ``final_ms`` after the end of speech, ``revision_words`` — how
much the final rewrote the last partial) → LLM tokens (``audio.llm``: first token) → TTS audio
chunks (``audio.tts``: first chunk, ``max_gap_ms`` between chunks) → an outbound transport that
ships 20 ms frames up to ``outbound_lead_ms`` ahead of real-time playback. Speech while the
agent's audio is out is a barge-in (``audio.barge_in``: ``vad_detect_ms``, ``cancel_ms``,
``silence_ms``, all from the estimated speech onset): cancel generation, drop the queue and, if
``flush_on_barge_in``, send :class:`~pytest_voicelatency.call.protocol.AgentClear` so the client
drops the audio it already holds. With ``min_interruption_ms`` (:data:`BACKCHANNEL_TOLERANT`)
speech over a reply counts only once the user has been voiced that long: "mm-hm" and coughs
leave the reply playing, words still stop it (a little later).

The two seed incidents are two knobs (:data:`COLD_ASR_POOL`, :data:`NO_FLUSH`):

* a cold, lazily opened ASR pool without keep-alive, not sized for bursts: when ten calls
  talk at once the handoffs queue behind connections opened one by one (p95 around 1.4 s);
  pre-warmed, sized for the burst and kept alive, a handoff is one borrow (~70 ms p95);
* no flush on barge-in with audio shipped far ahead (a deep client buffer): the agent's own span
  says it went quiet fast, the caller hears ~500 ms more; with the flush it is under 200 ms.

A third knob is a planted race for property tests to find (:data:`RACY_FLUSH`): a TTS chunk
still in flight when the user barges in lands after the flush, is taken for the new reply and
is played. Only barge-ins during the first ~0.7 s of a reply (while TTS is still generating)
can hit it.

Every stage draws its latency from a seeded log-normal (:class:`Latency`), so runs repeat.
All time comes from the session's clock (``honours_clock = True``).

>>> from pytest_voicelatency.call.caller import Caller
>>> from pytest_voicelatency.call.script import answer, say
>>> result = Caller(clock="virtual").run(ReferenceServer(), [say("hello"), answer()])
>>> result.metrics.responses[0].outcome
'ok'
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import deque
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from pytest_voicelatency.audio.clips import from_pcm16, load_clip, to_pcm16
from pytest_voicelatency.audio.vad import EnergyVAD
from pytest_voicelatency.call.playout import PlayoutConfig
from pytest_voicelatency.call.protocol import (
    AgentAudio,
    AgentClear,
    AgentSession,
    AgentState,
    SessionTasks,
)
from pytest_voicelatency.clock import Clock
from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.spans.instrument import handoff_span, stage_span, turn_span

__all__ = ["Latency", "PoolConfig", "ReferenceConfig", "AsrPool", "ReferenceAgent",
           "ReferenceServer", "COLD_ASR_POOL", "NO_FLUSH", "RACY_FLUSH", "BACKCHANNEL_TOLERANT"]


@dataclass(frozen=True, slots=True)
class Latency:
    """A log-normal delay given by its median and p95, in ms (equal: a constant), optionally
    capped at ``max_ms`` (a stage with a timeout: its bound is then exact)."""

    median_ms: float
    p95_ms: float
    max_ms: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.median_ms <= self.p95_ms:
            raise VoiceLatencyUsageError(f"Latency needs 0 <= median_ms <= p95_ms, got {self}")
        if self.max_ms is not None and not self.max_ms >= self.p95_ms:
            raise VoiceLatencyUsageError(f"Latency needs max_ms >= p95_ms, got {self}")

    @property
    def bound_ms(self) -> float:
        """The longest a draw can be: ``max_ms``, else (uncapped) 4x the p95, a 1e-6 tail."""
        return self.max_ms if self.max_ms is not None else 4 * self.p95_ms

    def draw(self, rng: np.random.Generator) -> float:
        if self.median_ms == 0 or self.p95_ms == self.median_ms:
            return self.median_ms
        sigma = math.log(self.p95_ms / self.median_ms) / 1.6449
        value = float(self.median_ms * math.exp(sigma * rng.standard_normal()))
        return value if self.max_ms is None else min(value, self.max_ms)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """The streaming ASR connection pool: how many, opened when, kept how long.

    Connections not pre-warmed are opened lazily, on demand, one at a time (a client opening
    connections behind one lock, as lazily initialised SDK clients do): under a burst the opens
    queue. Without keep-alive a connection is closed when its turn ends and reopened next time.
    """

    size: int = 32
    prewarm: bool = True
    keepalive: bool = True
    connect: Latency = Latency(140, 200)
    borrow: Latency = Latency(45, 70)


@dataclass(frozen=True, slots=True)
class ReferenceConfig:
    """Every knob of the reference agent; the defaults are a healthy agent."""

    seed: int = 0
    vad_hangover_ms: int = 300
    asr_pool: PoolConfig = field(default_factory=PoolConfig)
    asr_first_partial: Latency = Latency(80, 110)
    asr_partial_every_ms: float = 160.0
    asr_final: Latency = Latency(70, 120)
    asr_revision_rate: float = 0.1
    llm_first_token: Latency = Latency(200, 320)
    llm_token: Latency = Latency(20, 35)
    llm_tokens: int = 30
    tts_start_tokens: int = 5
    tts_first_chunk: Latency = Latency(120, 220)
    tts_chunk: Latency = Latency(45, 90)
    tts_chunk_ms: float = 200.0
    tts_leading_silence_ms: float = 30.0
    reply_ms: float = 2400.0
    cancel: Latency = Latency(20, 40, max_ms=100)
    flush_on_barge_in: bool = True
    outbound_lead_ms: float = 60.0
    #: How long after its last audio went out the agent assumes the client may still be playing
    #: it (network delay, jitter buffer): speech starting then also flushes the client, though
    #: the agent itself has finished. Without it a barge-in on a reply's last words is missed.
    client_margin_ms: float = 500.0
    voice: tuple[str, ...] = ("book_table", "open_tomorrow", "change_address")
    #: 0: any speech over a reply interrupts it at VAD onset. Else the user must have been
    #: voiced this long (frames of a short-hangover VAD) before the reply is cancelled; speech
    #: that ends sooner (a backchannel) is ignored. 500 ms separates the bundled backchannels
    #: (at most ~460 ms voiced) from words such as "wait, stop" (at least ~520 ms).
    min_interruption_ms: float = 0.0
    #: A planted bug (see :data:`RACY_FLUSH`): TTS chunks in flight at a barge-in still land,
    #: and are stamped as the *new* reply's audio, so they play after the flush.
    racy_flush: bool = False

    def stop_bound_ms(self, playout: PlayoutConfig | None = None) -> float:
        """The budget for a flushing agent: the longest the listener may go on hearing this
        agent after the onset of a real interruption spoken over it.

        VAD detection (up to 100 ms after the onset), the voiced time a tolerant policy waits
        for plus 1 s for the pauses between words ("wait ... stop"), the capped cancel, one
        frame, and the clear's trip over the network. Independent of ``flush_on_barge_in`` and
        the lead: those decide whether the agent *meets* it.
        """
        line = playout or PlayoutConfig()
        waits = self.min_interruption_ms + 1000 if self.min_interruption_ms else 0.0
        return 100 + waits + self.cancel.bound_ms + 20 + line.delay_ms + line.jitter_ms


#: Seed incident 1: a cold, lazily opened, undersized ASR pool without keep-alive.
#: Sized for the average (10), not for a burst above it: under a 10-call burst every handoff
#: queues behind one-at-a-time opens (p95 about 1.3-1.4 s); with size < the burst, handoffs
#: also wait for another call's whole utterance (p95 > 2 s).
COLD_ASR_POOL = PoolConfig(size=10, prewarm=False, keepalive=False, connect=Latency(180, 260))
#: Seed incident 2 (``ReferenceServer(**NO_FLUSH)``): ship audio 360 ms ahead of playback (a
#: deep client buffer) and never clear it on barge-in: the listener hears ~500 ms more.
NO_FLUSH: dict[str, Any] = {"flush_on_barge_in": False, "outbound_lead_ms": 360.0}
#: A planted race (``ReferenceServer(**RACY_FLUSH)``): it flushes, but a TTS chunk in flight at the
#: barge-in lands afterwards and is played: the listener hears up to a chunk (200 ms) more.
RACY_FLUSH: dict[str, Any] = {"racy_flush": True}
#: A backchannel-tolerant policy (``ReferenceServer(**BACKCHANNEL_TOLERANT)``): "mm-hm", "uh-huh"
#: and coughs do not cancel the reply; words still do, once voiced for 500 ms.
BACKCHANNEL_TOLERANT: dict[str, Any] = {"min_interruption_ms": 500.0}


class _Conn:
    __slots__ = ("connected",)

    def __init__(self, connected: bool) -> None:
        self.connected = connected


class AsrPool:
    """Streaming ASR connections shared by every call of one server (FIFO waiters)."""

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self._idle: list[_Conn] = []
        self._count = 0
        self._waiters: deque[asyncio.Future[_Conn]] = deque()
        self._opener_free_ns = 0  # lazy opens are serialised: the next can start then
        if config.prewarm:
            self._idle = [_Conn(True) for _ in range(config.size)]
            self._count = config.size

    async def acquire(self, clock: Clock, rng: np.random.Generator) -> _Conn:
        """Borrow a connection: idle and warm, else a new one, else wait; then connect if cold."""
        if self._idle:
            conn = self._idle.pop()
        elif self._count < self.config.size:
            self._count += 1
            conn = _Conn(False)
        else:
            waiter: asyncio.Future[_Conn] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self.release(waiter.result())
                raise
        try:
            if not conn.connected:
                begin = max(clock.now_ns(), self._opener_free_ns)
                self._opener_free_ns = begin + round(self.config.connect.draw(rng) * 1e6)
                await clock.sleep_until(self._opener_free_ns)
                conn.connected = True
            await clock.sleep_until(clock.now_ns() + round(self.config.borrow.draw(rng) * 1e6))
        except BaseException:
            self.release(conn)
            raise
        return conn

    def release(self, conn: _Conn) -> None:
        if not self.config.keepalive:
            conn.connected = False
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)


#: Quiet after which pending speech over a reply is over (on top of the VAD's own hangover).
_PAUSE_NS = 300_000_000


@lru_cache(maxsize=4)
def _voice(names: tuple[str, ...], rate: int) -> np.ndarray:
    """The agent's "voice": the speech of a few bundled clips, back to back."""
    parts = []
    for name in names:
        clip = load_clip(name, sample_rate=rate)
        a, b = (round(x * rate / 1000)
                for x in (clip.onset_ms or 0, clip.offset_ms or clip.duration_ms))
        parts += [clip.samples[a:b], np.zeros(rate * 60 // 1000, np.float32)]
    voice = np.concatenate(parts)
    voice.flags.writeable = False
    return voice


class _Utterance:
    def __init__(self, onset_ns: int, fired_ns: int) -> None:
        self.onset_ns, self.fired_ns = onset_ns, fired_ns
        self.ended = asyncio.Event()
        self.end_ns = 0


class _Pending:
    """Speech over a reply that is not an interruption yet: how long it has been voiced, and
    since when it has been quiet (words pause: "wait ... stop" is one interruption)."""

    __slots__ = ("onset_ns", "voiced_ms", "quiet_since")

    def __init__(self, onset_ns: int) -> None:
        self.onset_ns, self.voiced_ms = onset_ns, 0
        self.quiet_since: int | None = None


class ReferenceAgent:
    """One call of the reference pipeline (see the module docstring). Make them with
    :class:`ReferenceServer` so calls share one ASR pool."""

    honours_clock = True

    def __init__(self, config: ReferenceConfig | None = None, *, pool: AsrPool | None = None,
                 index: int = 0) -> None:
        self.config = config or ReferenceConfig()
        self.pool = pool or AsrPool(self.config.asr_pool)
        self.rng = np.random.default_rng([self.config.seed, index])
        self._tasks = SessionTasks()  # every background task; close() cancels them
        self._inbox: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
        self._out: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()  # (generation, PCM frame)
        self._generation = 0  # bumped on barge-in: frames of an older generation are dropped
        self._frames: deque[tuple[int, int]] = deque(maxlen=64)  # (end sample, arrival ns)
        self._position = 0
        self._turn = 0
        self._utterance: _Utterance | None = None
        self._reply: asyncio.Task[None] | None = None
        self._pending: _Pending | None = None
        self._play_end = 0
        self._closed = False

    # ------------------------------------------------------------------ protocol

    async def start(self, session: AgentSession) -> None:
        self.session, self.clock = session, session.clock
        self._tasks.session = session  # from now on a task that raises ends the call
        self.rate = session.format.sample_rate
        self.vad = EnergyVAD(sample_rate=self.rate, frame_ms=session.format.frame_ms,
                             hangover_ms=self.config.vad_hangover_ms)
        # counts voiced frames for the tolerant policy: a long hangover would count pauses
        self._voiced = EnergyVAD(sample_rate=self.rate, frame_ms=session.format.frame_ms,
                                 hangover_ms=40) if self.config.min_interruption_ms > 0 else None
        self._voice = _voice(self.config.voice, self.rate)
        self._tasks.spawn(self._listen())
        self._tasks.spawn(self._transport())
        session.emit(AgentState("listening"))

    async def receive(self, pcm: bytes) -> None:
        self._inbox.put_nowait((pcm, self.clock.now_ns()))  # stamped on arrival, work elsewhere

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._tasks.cancel_all()

    # ------------------------------------------------------------------ plumbing

    async def _sleep(self, latency: Latency) -> float:
        ms = latency.draw(self.rng)
        await self.clock.sleep_until(self.clock.now_ns() + round(ms * 1e6))
        return ms

    def _span(self, stage: str, turn: str) -> Any:
        return stage_span(stage, self.session.session_id, turn, tracer=self.session.tracer,
                          clock=self.clock)

    def _instant(self, sample: int) -> int:
        """When inbound stream sample ``sample`` was spoken, from the frames' arrival stamps."""
        frame = self.session.format.frame_samples
        end, arrival = self._frames[0]  # older than every frame kept: extrapolate from the oldest
        for end_i, arrival_i in reversed(self._frames):
            if end_i - frame <= sample:
                end, arrival = end_i, arrival_i
                break
        return arrival - (end - sample) * 1_000_000_000 // self.rate

    # ------------------------------------------------------------------ listening

    async def _listen(self) -> None:
        frame_ms = self.session.format.frame_ms
        while True:
            pcm, arrival = await self._inbox.get()
            samples = from_pcm16(pcm)
            decision = self.vad.process(samples)
            voiced = self._voiced is not None and self._voiced.process(samples).speech
            self._position += samples.size
            self._frames.append((self._position, arrival))
            if decision.onset_sample is not None:
                self._speech_started(self._instant(decision.onset_sample), arrival)
            pending = self._pending
            if pending is not None:
                pending.voiced_ms += frame_ms * voiced
                if pending.voiced_ms >= self.config.min_interruption_ms:  # words: it counts
                    self._pending = None
                    self._start_turn(pending.onset_ns, arrival)
                elif pending.quiet_since is not None and arrival - pending.quiet_since > _PAUSE_NS:
                    self._pending = None  # over before it counted: a backchannel, ignored
            if decision.offset_sample is not None:
                if self._pending is not None:
                    self._pending.quiet_since = arrival  # a pause, or the end: wait and see
                elif self._utterance is not None:
                    self._utterance.end_ns = arrival
                    self._utterance.ended.set()

    def _speaking(self) -> bool:
        return self._play_end > self.clock.now_ns() or not self._out.empty()

    def _replying(self) -> bool:
        return self._speaking() or self._heard() or \
            (self._reply is not None and not self._reply.done())

    def _heard(self) -> bool:
        """The client may still be playing our last audio (see ``client_margin_ms``)."""
        return self._play_end + round(self.config.client_margin_ms * 1e6) > self.clock.now_ns()

    def _speech_started(self, onset_ns: int, fired_ns: int) -> None:
        if self._pending is not None:
            self._pending.quiet_since = None  # the same interruption goes on after a pause
            return
        if self.config.min_interruption_ms > 0 and self._replying():
            self._pending = _Pending(onset_ns)  # judged in _listen once voiced long enough
            return
        self._start_turn(onset_ns, fired_ns)

    def _start_turn(self, onset_ns: int, fired_ns: int) -> None:
        self._turn += 1
        turn = str(self._turn)
        previous = self._reply
        if self._speaking():
            self._tasks.spawn(self._barge_in(turn, previous, onset_ns, fired_ns))
        else:
            if previous is not None:
                previous.cancel()  # the user went on talking: the new turn supersedes the old one
            if self.config.flush_on_barge_in and self._heard():
                self.session.emit(AgentClear())  # sent, but maybe still playing at the client
        self._utterance = _Utterance(onset_ns, fired_ns)
        self._reply = self._tasks.spawn(self._turn_pipeline(turn, self._utterance))

    async def _barge_in(self, turn: str, reply: asyncio.Task[None] | None, onset_ns: int,
                        fired_ns: int) -> None:
        detect_ms = (fired_ns - onset_ns) / 1e6
        with self._span("barge_in", turn) as timer:
            timer.set("vad_detect_ms", round(detect_ms, 3))
            if reply is not None:
                reply.cancel()
            await self._sleep(self.config.cancel)
            timer()
            timer.set("cancel_ms", round(detect_ms + timer.elapsed_ms(), 3))
            self._generation += 1
            while not self._out.empty():
                self._out.get_nowait()
            if self.config.flush_on_barge_in:
                self.session.emit(AgentClear())
            self._play_end = self.clock.now_ns()  # what the agent believes, flush or not
            self.session.emit(AgentState("interrupted"))
            timer.set("silence_ms", round(detect_ms + timer.elapsed_ms(), 3))

    # ------------------------------------------------------------------ one user turn

    async def _turn_pipeline(self, turn: str, utterance: _Utterance) -> None:
        sid, tracer = self.session.session_id, self.session.tracer
        with turn_span(sid, turn, tracer=tracer, clock=self.clock):  # the parent of every stage
            with handoff_span("vad", "asr", sid, turn, tracer=tracer, clock=self.clock):
                conn = await self.pool.acquire(self.clock, self.rng)
            try:
                await self._asr(turn, utterance)
            finally:
                self.pool.release(conn)
            self.session.emit(AgentState("thinking"))
            tokens: asyncio.Queue[str] = asyncio.Queue()
            llm = self._tasks.spawn(self._llm(turn, tokens))
            try:
                await self._tts(turn, tokens)
            finally:
                llm.cancel()

    async def _asr(self, turn: str, utterance: _Utterance) -> None:
        config = self.config
        with self._span("asr", turn) as first_partial:
            await self._sleep(config.asr_first_partial)
            first_partial()
            started = self.clock.now_ns()
            await utterance.ended.wait()
            await self._sleep(config.asr_final)
            first_partial.set("final_ms", round((self.clock.now_ns() - utterance.end_ns) / 1e6, 3))
            heard_ms = (utterance.end_ns - started) / 1e6
            first_partial.set("partials", 1 + max(0, int(heard_ms // config.asr_partial_every_ms)))
            first_partial.set("revision_words", int(self.rng.random() < config.asr_revision_rate))

    async def _llm(self, turn: str, tokens: asyncio.Queue[str]) -> None:
        with self._span("llm", turn) as first_token:
            await self._sleep(self.config.llm_first_token)
            first_token()
            tokens.put_nowait("token")
            for _ in range(self.config.llm_tokens - 1):
                await self._sleep(self.config.llm_token)
                tokens.put_nowait("token")
            first_token.set("tokens", self.config.llm_tokens)

    async def _tts(self, turn: str, tokens: asyncio.Queue[str]) -> None:
        config = self.config
        for _ in range(config.tts_start_tokens):
            await tokens.get()  # the first phrase
        with self._span("tts", turn) as first_chunk:
            audio = self._reply_audio()
            step = round(config.tts_chunk_ms * self.rate / 1000)
            largest = 0.0
            for k, at in enumerate(range(0, audio.size, step)):
                latency, chunk = config.tts_first_chunk if k == 0 else config.tts_chunk, \
                    audio[at:at + step]
                if config.racy_flush:  # the chunk is on its way: a cancel here cannot stop it
                    waited = await asyncio.shield(self._tasks.spawn(self._in_flight(latency,
                                                                                    chunk)))
                else:
                    waited = await self._sleep(latency)
                    self._queue_audio(chunk)
                if k == 0:
                    first_chunk()
                else:
                    largest = max(largest, waited)
                first_chunk.set("max_gap_ms", round(largest, 3))  # kept if cancelled later
            first_chunk.set("audio_ms", round(audio.size * 1000 / self.rate, 3))

    async def _in_flight(self, latency: Latency, chunk: np.ndarray) -> float:
        """The racy TTS delivery: queued on arrival as the *current* generation's audio, so a
        chunk that lands after a flush is taken for the next reply (the planted bug)."""
        waited = await self._sleep(latency)
        self._queue_audio(chunk)
        return waited

    def _reply_audio(self) -> np.ndarray:
        config, voice = self.config, self._voice
        length = round(config.reply_ms * self.rate / 1000)
        start = int(self.rng.integers(0, max(1, voice.size - length)))
        lead = np.zeros(round(config.tts_leading_silence_ms * self.rate / 1000), np.float32)
        return np.concatenate([lead, voice[start:start + length]])

    def _queue_audio(self, chunk: np.ndarray) -> None:
        """Encode a TTS chunk once and queue it as outbound frames of the current reply."""
        pcm, step = to_pcm16(chunk), 2 * self.session.format.frame_samples
        for at in range(0, len(pcm), step):
            self._out.put_nowait((self._generation, pcm[at:at + step]))

    # ------------------------------------------------------------------ outbound

    async def _transport(self) -> None:
        lead_ns = round(self.config.outbound_lead_ms * 1e6)
        while True:
            generation, frame = await self._out.get()
            now = self.clock.now_ns()
            fresh = self._play_end <= now
            self._play_end = max(self._play_end, now)
            if self._play_end - lead_ns > now:
                await self.clock.sleep_until(self._play_end - lead_ns)
            if generation != self._generation:
                continue  # cancelled while this frame waited its turn: never send it
            self.session.emit(AgentAudio(frame, self.rate))
            self._play_end += len(frame) // 2 * 1_000_000_000 // self.rate
            if fresh:
                self.session.emit(AgentState("speaking"))


class ReferenceServer:
    """A factory of :class:`ReferenceAgent` calls sharing one :class:`AsrPool`, like one server.

    Pass it wherever an agent factory is wanted: ``caller.run_calls(ReferenceServer(), scripts)``.
    """

    def __init__(self, config: ReferenceConfig | None = None, **changes: Any) -> None:
        self.config = replace(config or ReferenceConfig(), **changes)
        self.pool = AsrPool(self.config.asr_pool)
        self._index = itertools.count()

    def __call__(self) -> ReferenceAgent:
        return ReferenceAgent(self.config, pool=self.pool, index=next(self._index))
