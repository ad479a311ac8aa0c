"""What the listener hears: an explicit model of the client's network and playout buffer.

Why a model and not a sound card: a latency is only as exact as the instant it ends on. The user
hears the agent when its first *audible* sample plays, which is neither when the first byte
arrived (the agent's audio may begin with silence or comfort noise) nor frame-quantised. So the
caller feeds every agent event, with the instant the agent sent it, into :class:`Playout`, a
deterministic state machine that works sample by sample:

* **network**: each event arrives ``delay_ms`` plus a seeded uniform ``0..jitter_ms`` after it was
  sent, never before the previous event (a stream keeps its order);
* **jitter buffer**: a talkspurt (audio arriving while nothing is queued) starts playing
  ``buffer_ms`` after its first chunk arrives; later chunks play back to back, a cursor advanced by
  each chunk's duration. If the queue runs dry and audio resumes within ``underrun_gap_ms``, that
  is an *underrun* (an audible stutter) and the next chunk is buffered again;
* **clear**: :class:`~pytest_voicelatency.call.protocol.AgentClear` drops everything not yet
  played when it arrives, cutting a chunk mid-way if needed, as real transports do;
* **audibility**: a sample is audible when ``|x|`` exceeds ``threshold_dbfs``. Audible samples form
  *sound intervals*; quiet shorter than ``hold_ms`` inside speech does not end one.

Queries answer the caller's questions with integer-nanosecond instants on the call's clock:
:meth:`Playout.first_onset` (the first sound to start at or after an instant) and
:meth:`Playout.silent_from` / :meth:`Playout.settled` (when the sound playing at an instant stops,
and whether that is final). The same code runs live during a call and again, from the call's log,
when metrics are derived, so both agree.

>>> import numpy as np
>>> p = Playout(PlayoutConfig(buffer_ms=40), sample_rate=16_000)
>>> reply = np.concatenate([np.zeros(1600, np.float32), np.full(8000, 0.5, np.float32)])
>>> p.audio(sent_ns=0, samples=reply)       # 100 ms of silence, then 500 ms of sound, all at once
0
>>> p.first_onset(0) / 1e6                  # 40 ms buffer + 100 ms leading silence
140.0
>>> p.clear(sent_ns=300_000_000)            # the agent flushes at 300 ms
300000000
>>> p.silent_from(200_000_000) / 1e6, p.flushed_ms
(300.0, 340.0)
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from pytest_voicelatency.errors import VoiceLatencyUsageError

__all__ = ["PlayoutConfig", "Playout", "Chunk", "audible_runs"]

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class PlayoutConfig:
    """The client side of a call: network, jitter buffer and what counts as audible."""

    buffer_ms: float = 40.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    seed: int = 0
    threshold_dbfs: float = -45.0
    hold_ms: float = 250.0
    underrun_gap_ms: float = 300.0

    def __post_init__(self) -> None:
        for name in ("buffer_ms", "delay_ms", "jitter_ms", "hold_ms", "underrun_gap_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise VoiceLatencyUsageError(
                    f"PlayoutConfig.{name} must be a finite number of ms >= 0, got {value!r}")
        if not isinstance(self.threshold_dbfs, (int, float)) or not -120 <= self.threshold_dbfs < 0:
            raise VoiceLatencyUsageError(
                f"PlayoutConfig.threshold_dbfs must be between -120 and 0 dBFS (e.g. -45), "
                f"got {self.threshold_dbfs!r}")
        if self.hold_ms <= 0:
            raise VoiceLatencyUsageError("PlayoutConfig.hold_ms must be > 0 (e.g. 250)")

    @property
    def threshold(self) -> float:
        """The amplitude (|x| in [0, 1]) above which a sample is audible."""
        return float(10 ** (self.threshold_dbfs / 20))


@dataclass(slots=True)
class Chunk:
    """One agent audio event as scheduled: where it plays and which parts of it are audible.

    ``runs`` are ``(first, end)`` sample index pairs of audible stretches (quiet gaps shorter
    than the hold merged); ``kept`` is how many samples play (fewer after a clear cut it).
    """

    sent_ns: int
    arrival_ns: int
    start_ns: int
    samples: int
    runs: list[tuple[int, int]]
    kept: int
    cut_ns: int | None = None


def audible_runs(samples: np.ndarray, threshold: float, merge: int) -> list[tuple[int, int]]:
    """``(first, end)`` index pairs of samples above ``threshold``, gaps below ``merge`` joined.

    >>> audible_runs(np.array([0, .5, .5, 0, 0, .5, 0], np.float32), 0.1, merge=3)
    [(1, 6)]
    """
    return _runs(np.flatnonzero(np.abs(samples) > threshold), merge)


def _pcm_level(threshold: float) -> int:
    """The largest 16-bit magnitude that is not audible: ``|i| > level`` exactly when the
    decoded sample (``i / 32768`` in float32) exceeds ``threshold`` (compared in float32)."""
    return math.floor(float(np.float32(threshold)) * 32768)


def _runs(loud: np.ndarray, merge: int) -> list[tuple[int, int]]:
    """:func:`audible_runs` from the indices of the audible samples."""
    if loud.size == 0:
        return []
    if loud[-1] - loud[0] <= merge:  # no gap can exceed the merge: one run (the common case)
        return [(int(loud[0]), int(loud[-1]) + 1)]
    breaks = np.flatnonzero(np.diff(loud) > merge)
    firsts = np.concatenate([loud[:1], loud[breaks + 1]])
    lasts = np.concatenate([loud[breaks], loud[-1:]])
    return [(int(a), int(b) + 1) for a, b in zip(firsts, lasts)]


class Playout:
    """The client's network and playout buffer for one call; feed events in the order sent.

    Not thread-safe (one call, one event loop).
    """

    def __init__(self, config: PlayoutConfig, sample_rate: int) -> None:
        self.config = config
        self.rate = sample_rate
        self._rng = np.random.default_rng(config.seed)
        self._threshold = config.threshold
        level = _pcm_level(self._threshold)
        # 16-bit sample i is audible when |i| > level, i.e. when (i + level) mod 2**16 > 2 level
        self._pcm_shift, self._pcm_span = np.uint16(level), np.uint16(2 * level)
        self._draws: list[float] = []  # jitter drawn ahead, in the generator's order
        self._hold_ns = round(config.hold_ms * 1e6)
        self._hold_samples = round(config.hold_ms * sample_rate / 1000)
        self.chunks: list[Chunk] = []
        self._last_arrival = -(1 << 62)
        self._play_end: int | None = None  # when the last scheduled sample finishes
        self._after_clear = False
        self._spurt_start = 0
        self._spurt_samples = 0
        self._ons: list[int] = []
        self._offs: list[int] = []
        self.underruns = 0
        self.clears = 0
        self.max_buffer_ns = 0
        self.flushed_samples = 0
        self._jitter_ns = 0.0
        self._prev: tuple[int, int] | None = None  # (arrival, media offset ns) in this spurt

    # ------------------------------------------------------------------ feeding

    def _arrive(self, sent_ns: int) -> int:
        extra = 0.0
        if self.config.jitter_ms > 0:
            if not self._draws:  # 64 at a time: the same numbers, in the same order
                self._draws = self._rng.uniform(0.0, self.config.jitter_ms, 64).tolist()[::-1]
            extra = self._draws.pop()
        arrival = sent_ns + round((self.config.delay_ms + extra) * 1e6)
        self._last_arrival = max(self._last_arrival, arrival)
        return self._last_arrival

    def _ns(self, samples: int) -> int:
        return samples * _NS // self.rate

    def audio(self, sent_ns: int, samples: np.ndarray) -> int:
        """Queue agent audio sent at ``sent_ns``; return the instant it reached the client."""
        return self._queue(sent_ns, self._arrive(sent_ns), int(samples.size),
                           audible_runs(samples, self._threshold, self._hold_samples))

    def audio_pcm(self, sent_ns: int, pcm: bytes) -> int:
        """:meth:`audio` of 16-bit little-endian PCM, judged without decoding it (the same
        result as ``audio(sent_ns, from_pcm16(pcm))``)."""
        arrival = self._arrive(sent_ns)
        x = np.frombuffer(pcm, "<u2")
        loud = (np.add(x, self._pcm_shift) > self._pcm_span).nonzero()[0]
        return self._queue(sent_ns, arrival, int(x.size), _runs(loud, self._hold_samples))

    def _queue(self, sent_ns: int, arrival: int, n: int, runs: list[tuple[int, int]]) -> int:
        playing = self._play_end is not None and self._play_end >= arrival and not self._after_clear
        if not playing:
            if self._play_end is not None and not self._after_clear \
                    and arrival - self._play_end < self.config.underrun_gap_ms * 1e6:
                self.underruns += 1
            self._spurt_start = arrival + round(self.config.buffer_ms * 1e6)
            self._spurt_samples = 0
            self._prev = None
            self._after_clear = False
        media_ns = self._ns(self._spurt_samples)
        start = self._spurt_start + media_ns
        if self._prev is not None:  # RFC 3550 interarrival jitter, within a talkspurt
            d = (arrival - self._prev[0]) - (media_ns - self._prev[1])
            self._jitter_ns += (abs(d) - self._jitter_ns) / 16
        self._prev = (arrival, media_ns)
        self._spurt_samples += n
        self._play_end = self._spurt_start + self._ns(self._spurt_samples)
        self.max_buffer_ns = max(self.max_buffer_ns,
                                 self._play_end - max(arrival, self._spurt_start))
        chunk = Chunk(sent_ns, arrival, start, n, runs, n)
        self.chunks.append(chunk)
        self._add_runs(chunk)
        return arrival

    def clear(self, sent_ns: int) -> int:
        """Drop all audio not yet played when the clear arrives; return that instant."""
        arrival = self._arrive(sent_ns)
        self.clears += 1
        changed = False
        for chunk in reversed(self.chunks):
            end = chunk.start_ns + self._ns(chunk.kept)
            if end <= arrival:
                break
            keep = 0 if chunk.start_ns >= arrival else \
                math.ceil((arrival - chunk.start_ns) * self.rate / _NS)
            keep = min(keep, chunk.kept)
            self.flushed_samples += chunk.kept - keep
            chunk.kept = keep
            chunk.cut_ns = arrival
            chunk.runs = [(a, min(b, keep)) for a, b in chunk.runs if a < keep]
            changed = True
        if self._play_end is not None and self._play_end > arrival:
            self._play_end = arrival
        self._after_clear = True
        if changed:
            self._ons, self._offs = [], []
            for chunk in self.chunks:
                self._add_runs(chunk)
        return arrival

    def _add_runs(self, chunk: Chunk) -> None:
        for first, end in chunk.runs:
            on, off = chunk.start_ns + self._ns(first), chunk.start_ns + self._ns(end)
            if chunk.cut_ns is not None:  # a clear stops the sound mid-sample
                off = min(off, chunk.cut_ns)
            if self._offs and on - self._offs[-1] < self._hold_ns:
                self._offs[-1] = max(self._offs[-1], off)
            else:
                self._ons.append(on)
                self._offs.append(off)

    # ------------------------------------------------------------------ queries

    @property
    def intervals(self) -> list[tuple[int, int]]:
        """Sound intervals ``(on_ns, off_ns)``: audible from ``on`` up to (excluding) ``off``."""
        return list(zip(self._ons, self._offs))

    @property
    def hold_ns(self) -> int:
        """Quiet this long ends a sound (``PlayoutConfig.hold_ms``), in ns."""
        return self._hold_ns

    @property
    def play_end_ns(self) -> int | None:
        """When the last queued sample finishes playing (None before any audio)."""
        return self._play_end

    def first_onset(self, after_ns: int) -> int | None:
        """The start of the first sound interval beginning at or after ``after_ns``."""
        i = bisect.bisect_left(self._ons, after_ns)
        return self._ons[i] if i < len(self._ons) else None

    def silent_from(self, at_ns: int) -> int:
        """When the sound playing at ``at_ns`` stops (``at_ns`` itself if none is playing)."""
        i = bisect.bisect_right(self._ons, at_ns) - 1
        if i >= 0 and self._offs[i] > at_ns:
            return self._offs[i]
        return at_ns

    def audible_at(self, at_ns: int) -> bool:
        """True when ``at_ns`` lies inside a sound interval."""
        return self.silent_from(at_ns) > at_ns

    def settled(self, at_ns: int, now_ns: int) -> int | None:
        """:meth:`silent_from` once it is final at ``now_ns`` (quiet for the hold), else None.

        Final because audio arriving after ``now_ns`` cannot play before ``now_ns``.
        """
        silent = self.silent_from(at_ns)
        return silent if silent + self._hold_ns <= now_ns else None

    @property
    def jitter_ms(self) -> float:
        """RFC 3550 interarrival jitter of the agent's audio (within talkspurts), ms."""
        return self._jitter_ns / 1e6

    @property
    def buffer_ms(self) -> float:
        """The deepest the playout queue got (audio waiting to play), ms."""
        return self.max_buffer_ns / 1e6

    @property
    def flushed_ms(self) -> float:
        """Audio dropped by clears before it played, ms."""
        return self.flushed_samples * 1000 / self.rate
