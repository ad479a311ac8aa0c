"""An agent whose every delay is exactly known: the yardstick for the caller's own accuracy.

Why ship it: a latency harness that was never checked against ground truth drifts silently (the
harnesses this project was compared with read ~100 ms short on leading silence, or missed a
barge-in when the reply came in one burst). :class:`OracleAgent` detects the user's speech
sample-exactly on what it receives (an amplitude threshold, no VAD), answers ``response_delay_ms``
after the user's last loud sample and stops ``stop_delay_ms`` (+ seeded jitter) after an
interruption's first loud sample. It logs every instant it acted on in :attr:`OracleAgent.turns`,
so :func:`expected_response_ms` and :func:`expected_barge_in_ms` give what an exact listener must
measure. Modes cover the cases that fooled other tools: ``leading_silence_ms`` (optionally comfort
noise), ``mode="burst"`` (the whole reply sent at once, faster than real time), per-chunk
``send_jitter_ms`` (its frames never line up with the caller's grid) and ``stop_jitter_ms``.
``stop_delay_ms=None`` makes an agent that never stops talking; ``honours_clear=False`` one that
stops sending but leaves its queued audio playing.

Use :func:`tone_clip` for user speech with exact ground truth.

>>> from pytest_voicelatency.call.caller import Caller
>>> from pytest_voicelatency.call.script import answer, say
>>> agent = OracleAgent(OracleConfig(response_delay_ms=250, leading_silence_ms=100, reply_ms=300))
>>> caller = Caller(clock="virtual")                   # exact: the error is 0, not ~1 ms
>>> result = caller.run(agent, [say(tone_clip()), answer()])
>>> result.metrics.responses[0].value_ms == expected_response_ms(agent.turns[0], caller.playout)
True
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

from pytest_voicelatency.audio.clips import Clip, to_pcm16
from pytest_voicelatency.call.protocol import (
    AgentAudio,
    AgentClear,
    AgentSession,
    AgentState,
    SessionTasks,
    sample_instant_ns,
)
from pytest_voicelatency.errors import VoiceLatencyUsageError

if TYPE_CHECKING:
    from pytest_voicelatency.call.playout import PlayoutConfig

__all__ = ["OracleAgent", "OracleConfig", "OracleTurn", "expected_response_ms",
           "expected_barge_in_ms", "tone_clip"]

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class OracleConfig:
    """The oracle's behaviour; every delay is in ms and exactly honoured (then logged)."""

    response_delay_ms: float = 300.0
    stop_delay_ms: float | None = 50.0
    stop_jitter_ms: float = 0.0
    reply_ms: float = 1500.0
    leading_silence_ms: float = 0.0
    comfort_noise_dbfs: float | None = None
    mode: Literal["paced", "burst"] = "paced"
    frame_ms: float = 20.0
    send_jitter_ms: float = 2.0
    honours_clear: bool = True
    threshold_dbfs: float = -45.0
    #: Quiet needed before the oracle decides the user stopped. Speech pauses inside a clip
    #: longer than this split one utterance in two: the bundled ``wait_stop`` pauses ~250 ms
    #: and ``meant_tuesday`` ~170 ms, so use ``end_hold_ms=300`` with them (``tone_clip`` has
    #: no pauses).
    end_hold_ms: float = 150.0
    level: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("response_delay_ms", "stop_jitter_ms", "reply_ms", "leading_silence_ms",
                     "frame_ms", "send_jitter_ms", "end_hold_ms"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise VoiceLatencyUsageError(f"OracleConfig.{name} must be a number of ms >= 0, "
                                             f"got {value!r}")
        if self.stop_delay_ms is not None and not self.stop_delay_ms >= 0:
            raise VoiceLatencyUsageError("OracleConfig.stop_delay_ms must be >= 0 or None")
        if self.response_delay_ms < self.end_hold_ms + 40:
            raise VoiceLatencyUsageError(
                f"OracleConfig.response_delay_ms={self.response_delay_ms:g} is shorter than "
                f"end_hold_ms + 40 ({self.end_hold_ms + 40:g}): the oracle only knows the user "
                f"stopped after end_hold_ms of quiet; raise it or lower end_hold_ms")
        if self.mode not in ("paced", "burst"):
            raise VoiceLatencyUsageError(
                f"OracleConfig.mode must be 'paced' or 'burst', got {self.mode!r}")
        if self.frame_ms <= 0 or not 0 < self.level <= 1:
            raise VoiceLatencyUsageError("OracleConfig.frame_ms must be > 0 and level in (0, 1]")


@dataclass(frozen=True, slots=True)
class OracleTurn:
    """What the oracle did on one user turn, as actual instants of the session clock.

    ``user_end_ns``: one sample past the user's last loud sample. ``reply_sent_ns``: when the
    reply's first chunk was emitted. ``barge_onset_ns``: the interruption's first loud sample;
    ``stop_ns``: when the oracle stopped (emitted its clear, or stopped sending); ``sent_ms``: how
    much reply audio it had emitted by then.
    """

    user_end_ns: int
    reply_sent_ns: int
    leading_ms: float
    reply_ms: float
    barge_onset_ns: int | None = None
    stop_ns: int | None = None
    cleared: bool = False
    sent_ms: float | None = None


def expected_response_ms(turn: OracleTurn, playout: PlayoutConfig) -> float:
    """What an exact listener measures as the response (no network jitter, no underruns)."""
    return ((turn.reply_sent_ns - turn.user_end_ns) / 1e6 + playout.delay_ms + playout.buffer_ms
            + turn.leading_ms)


def expected_barge_in_ms(turn: OracleTurn, playout: PlayoutConfig) -> float | None:
    """What an exact listener measures as the barge-in, or None if the oracle never stopped."""
    if turn.barge_onset_ns is None or turn.stop_ns is None or turn.sent_ms is None:
        return None
    heard_until = turn.reply_sent_ns + round((playout.delay_ms + playout.buffer_ms
                                              + turn.sent_ms) * 1e6)
    if turn.cleared:
        heard_until = min(heard_until, turn.stop_ns + round(playout.delay_ms * 1e6))
    return (heard_until - turn.barge_onset_ns) / 1e6


def _square(samples: int, rate: int, hz: float, level: float) -> np.ndarray:
    phase = np.sin(2 * np.pi * hz * np.arange(samples) / rate)
    return np.where(phase >= 0, level, -level).astype(np.float32)


def tone_clip(ms: float = 600.0, *, lead_ms: float = 200.0, trail_ms: float = 200.0,
              sample_rate: int = 16_000, level: float = 0.3, name: str = "tone") -> Clip:
    """A square-wave "utterance" with exact ground truth: every sample inside it is loud."""
    lead, body = round(lead_ms * sample_rate / 1000), round(ms * sample_rate / 1000)
    trail = round(trail_ms * sample_rate / 1000)
    samples = np.concatenate([np.zeros(lead, np.float32), _square(body, sample_rate, 180.0, level),
                              np.zeros(trail, np.float32)])
    return Clip(name, samples, sample_rate, kind="utterance", transcript="",
                onset_ms=lead * 1000 / sample_rate, offset_ms=(lead + body) * 1000 / sample_rate)


_NONE = np.zeros(0, np.intp)
_Encoded = tuple[tuple[int, ...], tuple[AgentAudio, ...], int]


def _encode(samples: np.ndarray, cfg: OracleConfig, rate: int) -> _Encoded:
    """A reply cut into the pieces it is sent in: (their sizes, their events, total samples)."""
    chunk = max(1, round(cfg.frame_ms * rate / 1000))
    pieces = [samples] if cfg.mode == "burst" else \
        [samples[i:i + chunk] for i in range(0, samples.size, chunk)]
    return (tuple(piece.size for piece in pieces),
            tuple(AgentAudio(to_pcm16(piece), rate) for piece in pieces), int(samples.size))


@lru_cache(maxsize=32)
def _encoded_reply(cfg: OracleConfig, rate: int) -> _Encoded:
    """The reply without comfort noise depends on the config alone: built and encoded once
    (the events are immutable), not on every turn of every call."""
    lead = np.zeros(round(cfg.leading_silence_ms * rate / 1000), np.float32)
    body = _square(round(cfg.reply_ms * rate / 1000), rate, 300.0, cfg.level)
    return _encode(np.concatenate([lead, body]), cfg, rate)


class OracleAgent:
    """A :class:`~pytest_voicelatency.call.protocol.VoiceAgent` with exactly known delays."""

    honours_clock = True

    def __init__(self, config: OracleConfig | None = None) -> None:
        self.config = config or OracleConfig()
        self.turns: list[OracleTurn] = []
        self._rng = np.random.default_rng(self.config.seed)
        self._session: AgentSession | None = None
        self._tasks = SessionTasks()
        self._reply: asyncio.Task[None] | None = None
        self._in_speech = False
        self._last_loud = 0
        self._speaking_until = 0
        self._sent = 0  # samples of the current reply emitted
        self._closed = False

    async def start(self, session: AgentSession) -> None:
        self._session = session
        self._tasks.session = session
        self._rate = session.format.sample_rate
        self._threshold = round(10 ** (self.config.threshold_dbfs / 20) * 32768)
        # 16-bit sample i is loud when |i| > threshold, i.e. (i + threshold) mod 2**16 exceeds
        # 2 * threshold: one add and one compare on the raw PCM; at 32768 or more none is loud
        self._deaf = self._threshold >= 32768
        level = min(self._threshold, 32767)
        self._shift, self._span = np.uint16(level), np.uint16(2 * level)
        self._quiet = bytes(2 * session.format.frame_samples)  # digital silence: nothing loud
        session.emit(AgentState("listening"))

    async def receive(self, pcm: bytes) -> None:
        session = self._session
        assert session is not None, "start() first"
        now = session.clock.now_ns()
        n = len(pcm) // 2
        if pcm == self._quiet or self._deaf:  # a memcmp: silent frames cost no numpy work
            loud = _NONE
        else:
            x = np.frombuffer(pcm, dtype="<u2")
            loud = (np.add(x, self._shift) > self._span).nonzero()[0]
        if loud.size:
            if not self._in_speech:
                self._in_speech = True
                onset = sample_instant_ns(now, n, int(loud[0]), self._rate)
                if onset < self._speaking_until and self.config.stop_delay_ms is not None:
                    self._tasks.spawn(self._stop(onset))
            self._last_loud = sample_instant_ns(now, n, int(loud[-1]) + 1, self._rate)
        elif self._in_speech and now - self._last_loud >= self.config.end_hold_ms * 1e6:
            self._in_speech = False
            if self._reply is None or self._reply.done():
                self._reply = self._tasks.spawn(self._answer(self._last_loud))

    def _reply_samples(self) -> np.ndarray:
        cfg, rate = self.config, self._rate
        lead = round(cfg.leading_silence_ms * rate / 1000)
        quiet = np.zeros(lead, np.float32)
        if cfg.comfort_noise_dbfs is not None:
            peak = 10 ** (cfg.comfort_noise_dbfs / 20)
            quiet = self._rng.uniform(-peak, peak, lead).astype(np.float32)
        body = _square(round(cfg.reply_ms * rate / 1000), rate, 300.0, cfg.level)
        return np.concatenate([quiet, body])

    async def _answer(self, user_end: int) -> None:
        session, cfg = self._session, self.config
        assert session is not None
        clock = session.clock
        if cfg.comfort_noise_dbfs is None:  # the same reply every time: encoded once per config
            sizes, events, total = _encoded_reply(cfg, self._rate)
        else:
            sizes, events, total = _encode(self._reply_samples(), cfg, self._rate)
        total_ms = total * 1000 / self._rate
        start = user_end + round(cfg.response_delay_ms * 1e6)
        await clock.sleep_until(start)
        self._sent = 0
        first = clock.now_ns()
        self.turns.append(OracleTurn(user_end, first, cfg.leading_silence_ms, cfg.reply_ms))
        self._speaking_until = first + round(total_ms * 1e6) + 300_000_000
        for k, (size, event) in enumerate(zip(sizes, events)):
            if k:
                jitter = float(self._rng.uniform(0, cfg.send_jitter_ms)) \
                    if cfg.send_jitter_ms else 0.0
                await clock.sleep_until(first + round((k * cfg.frame_ms + jitter) * 1e6))
            session.emit(event)
            self._sent += size
            if not k:
                session.emit(AgentState("speaking"))

    async def _stop(self, onset: int) -> None:
        session, cfg = self._session, self.config
        assert session is not None and cfg.stop_delay_ms is not None
        jitter = float(self._rng.uniform(0, cfg.stop_jitter_ms)) if cfg.stop_jitter_ms else 0.0
        await session.clock.sleep_until(onset + round((cfg.stop_delay_ms + jitter) * 1e6))
        if self._reply is not None:
            self._reply.cancel()
        stopped = session.clock.now_ns()
        if cfg.honours_clear:
            session.emit(AgentClear())
        self._speaking_until = 0
        if self.turns:
            self.turns[-1] = replace(self.turns[-1], barge_onset_ns=onset, stop_ns=stopped,
                                     cleared=cfg.honours_clear,
                                     sent_ms=self._sent * 1000 / self._rate)
        session.emit(AgentState("listening"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._tasks.cancel_all()
