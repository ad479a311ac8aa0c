"""Specification of the client playout model: network, jitter buffer, clear, audibility. Pure."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_voicelatency.call.playout import Playout, PlayoutConfig, audible_runs
from pytest_voicelatency.errors import VoiceLatencyUsageError

MS = 1_000_000
RATE = 16_000


def loud(ms: float, level: float = 0.5) -> np.ndarray:
    return np.full(round(ms * RATE / 1000), level, np.float32)


def quiet(ms: float, level: float = 0.0) -> np.ndarray:
    return np.full(round(ms * RATE / 1000), level, np.float32)


def playout(**kw: float) -> Playout:
    return Playout(PlayoutConfig(**kw), RATE)


def test_first_audible_sample_not_first_arrival_counts_with_sample_accuracy():
    """Leading silence is skipped to the exact sample: 1601 quiet samples = 100.0625 ms."""
    p = playout(buffer_ms=40)
    reply = np.concatenate([np.zeros(1601, np.float32), loud(200)])
    p.audio(sent_ns=1_000 * MS, samples=reply)
    assert p.first_onset(0) == 1_000 * MS + 40 * MS + 1601 * 62_500


def test_comfort_noise_below_the_threshold_is_not_audible_but_above_it_is():
    """Noise at -60 dBFS plays but is silence to the listener; at -30 dBFS it is sound."""
    p = playout(buffer_ms=0, threshold_dbfs=-45)
    p.audio(0, np.concatenate([quiet(100, 10 ** (-60 / 20)), loud(100)]))
    assert p.first_onset(0) == 100 * MS
    q = playout(buffer_ms=0, threshold_dbfs=-45)
    q.audio(0, np.concatenate([quiet(100, 10 ** (-30 / 20)), loud(100)]))
    assert q.first_onset(0) == 0


def test_a_reply_sent_all_at_once_is_queued_and_played_at_real_time():
    """Burst delivery: onset exact, playback lasts the audio's duration, buffer depth = reply."""
    p = playout(buffer_ms=40)
    p.audio(500 * MS, loud(1200))
    assert p.first_onset(0) == 540 * MS
    assert p.play_end_ns == 1740 * MS
    assert p.silent_from(1000 * MS) == 1740 * MS
    assert p.buffer_ms == 1200.0


def test_paced_frames_play_back_to_back_with_the_cursor_advanced_by_each_duration():
    """Frames arriving in real time (with small jitter) join one sound; no underrun."""
    p = playout(buffer_ms=40)
    for k in range(50):
        p.audio(k * 20 * MS + (k % 3) * MS, loud(20))
    assert p.underruns == 0
    assert p.intervals == [(40 * MS, 40 * MS + 1000 * MS)]
    assert [c.start_ns for c in p.chunks[:3]] == [40 * MS, 60 * MS, 80 * MS]


def test_a_clear_drops_queued_audio_at_its_arrival_instant():
    """The listener goes quiet when the clear arrives, mid-chunk; the dropped audio is counted."""
    p = playout(buffer_ms=40)
    p.audio(0, loud(1000))
    p.clear(300 * MS)
    assert p.silent_from(100 * MS) == 300 * MS
    assert p.flushed_ms == pytest.approx(740.0, abs=0.07)
    assert p.play_end_ns == 300 * MS


def test_without_a_clear_queued_audio_keeps_playing():
    """The agent stopping to send does not stop what the client already holds."""
    p = playout(buffer_ms=40)
    p.audio(0, loud(1000))
    assert p.silent_from(300 * MS) == 1040 * MS
    assert p.flushed_ms == 0


def test_audio_after_a_clear_starts_a_new_talkspurt_and_is_not_an_underrun():
    """After a clear the next reply is buffered again from its own arrival."""
    p = playout(buffer_ms=40)
    p.audio(0, loud(500))
    p.clear(100 * MS)
    p.audio(120 * MS, loud(100))
    assert p.underruns == 0
    assert p.chunks[-1].start_ns == 160 * MS


def test_a_short_dry_spell_is_an_underrun_and_a_long_one_a_pause():
    """The queue running dry and refilling within underrun_gap_ms is a stutter."""
    p = playout(buffer_ms=40, underrun_gap_ms=300)
    p.audio(0, loud(100))                     # plays 40..140
    p.audio(200 * MS, loud(100))              # dry 140..200: an underrun, rebuffered to 240
    p.audio(2000 * MS, loud(100))             # dry long after: a new reply
    assert p.underruns == 1
    assert p.chunks[1].start_ns == 240 * MS


def test_network_delay_and_jitter_are_seeded_and_keep_the_stream_in_order():
    """Same seed, same arrivals; arrivals never go backwards and are never before send + delay."""
    def arrivals(seed: int) -> list[int]:
        p = playout(delay_ms=30, jitter_ms=20, seed=seed)
        return [p.audio(k * 5 * MS, loud(20)) for k in range(40)]

    first = arrivals(1)
    assert first == arrivals(1) and first != arrivals(2)
    assert first == sorted(first)
    assert all(a >= k * 5 * MS + 30 * MS for k, a in enumerate(first))


def test_pauses_shorter_than_the_hold_are_speech_and_longer_ones_end_it():
    """A 100 ms gap inside speech does not end the sound; a 400 ms gap does."""
    p = playout(buffer_ms=0, hold_ms=250)
    p.audio(0, np.concatenate([loud(200), quiet(100), loud(200), quiet(400), loud(100)]))
    assert p.intervals == [(0, 500 * MS), (900 * MS, 1000 * MS)]
    assert p.first_onset(10 * MS) == 900 * MS
    assert p.settled(100 * MS, 700 * MS) is None           # not quiet for the hold yet
    assert p.settled(100 * MS, 750 * MS) == 500 * MS


def test_audible_runs_are_sample_exact_inside_a_frame():
    """Sound starting 7 samples into a frame starts at sample 7, not at the frame boundary."""
    frame = np.zeros(320, np.float32)
    frame[7:100] = 0.2
    assert audible_runs(frame, 0.01, merge=10) == [(7, 100)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=60), st.integers(0, 12))
def test_audible_runs_match_a_sample_by_sample_scan_whatever_the_gaps(pattern, merge):
    """The one-run shortcut (no gap can exceed the merge) agrees with the general case."""
    samples = np.repeat(np.array(pattern, np.float32) * 0.5, 3)
    expected: list[tuple[int, int]] = []
    for i in np.flatnonzero(samples > 0.1).tolist():
        if expected and i - (expected[-1][1] - 1) <= merge:
            expected[-1] = (expected[-1][0], i + 1)
        else:
            expected.append((i, i + 1))
    assert audible_runs(samples, 0.1, merge) == expected


def test_the_hold_is_exposed_in_nanoseconds_for_waits_on_it():
    assert playout(hold_ms=250).hold_ns == 250 * MS


@pytest.mark.parametrize("kw", [{"buffer_ms": -1}, {"hold_ms": 0}, {"threshold_dbfs": 3},
                                {"jitter_ms": float("nan")}])
def test_bad_settings_name_the_field(kw):
    with pytest.raises(VoiceLatencyUsageError, match=next(iter(kw))):
        PlayoutConfig(**kw)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 2000), st.booleans()),
                min_size=1, max_size=30),
       st.floats(0, 100), st.floats(0, 50), st.floats(0, 200))
def test_sound_never_plays_before_it_arrives_and_intervals_stay_ordered(events, delay, jitter, buf):
    """Whatever the sends, sizes, clears and network: causality and ordered, disjoint sound."""
    p = Playout(PlayoutConfig(buffer_ms=buf, delay_ms=delay, jitter_ms=jitter, seed=3), RATE)
    now = 0
    for gap_ms, samples, clear in events:
        now += gap_ms * MS
        if clear:
            p.clear(now)
        else:
            p.audio(now, np.full(samples, 0.5, np.float32))
    for chunk in p.chunks:
        assert chunk.start_ns >= chunk.arrival_ns >= chunk.sent_ns
    flat = [t for interval in p.intervals for t in interval]
    assert flat == sorted(flat)
