"""Specification of the bundled clips and of pytest_voicelatency.audio.clips."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_voicelatency.audio import clips as clips_module
from pytest_voicelatency.audio.clips import (
    AudioError,
    Clip,
    add_noise,
    concat,
    fixtures_dir,
    frames,
    from_pcm16,
    gain,
    list_clips,
    load_clip,
    pad,
    resample,
    to_pcm16,
)

FIXTURES = fixtures_dir()
MANIFEST = json.loads((FIXTURES / "labels.json").read_text())
LABELS = {entry["name"]: entry for entry in MANIFEST["clips"]}
TRANSCRIBED = {"utterance", "interruption", "backchannel"}
NOISE_BEDS = {"noise", "room_tone"}


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def amplitude_at(samples: np.ndarray, freq: float, rate: int) -> float:
    """Amplitude of the ``freq`` component, measured on the middle half (away from the edges)."""
    middle = samples[len(samples) // 4 : -len(samples) // 4].astype(np.float64)
    t = np.arange(len(middle)) / rate
    return float(2 * abs(np.dot(middle, np.exp(-2j * np.pi * freq * t))) / len(middle))


def db(ratio: float) -> float:
    return float(20 * np.log10(ratio))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def speech_clip() -> Clip:
    return load_clip("confirm_order")


def truth(clip: Clip) -> tuple[float, float]:
    """The clip's ground truth, which the test needs to be known."""
    assert clip.onset_ms is not None and clip.offset_ms is not None, clip.name
    return clip.onset_ms, clip.offset_ms


# ---------------------------------------------------------------- the bundled clips


def test_every_bundled_file_matches_sha256sums() -> None:
    """SHA256SUMS lists every clip and labels.json, and each file still has its recorded hash."""
    sums = dict(
        line.split("  ")[::-1] for line in (FIXTURES / "SHA256SUMS").read_text().splitlines()
    )
    assert set(sums) == {entry["file"] for entry in MANIFEST["clips"]} | {"labels.json"}
    for file, digest in sums.items():
        assert hashlib.sha256((FIXTURES / file).read_bytes()).hexdigest() == digest, file


@pytest.mark.parametrize("name", sorted(LABELS))
def test_every_bundled_clip_is_16khz_mono_16bit_and_loads(name: str) -> None:
    """Each clip is a 16 kHz mono 16-bit WAV and loads as float32 with its labels attached."""
    info = sf.info(FIXTURES / LABELS[name]["file"])
    assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
    clip = load_clip(name)
    assert clip.samples.dtype == np.float32 and clip.sample_rate == 16_000
    assert (clip.kind, clip.transcript) == (LABELS[name]["kind"], LABELS[name]["transcript"])
    assert clip.duration_ms == LABELS[name]["duration_ms"]
    assert clip.notes == ()


def test_the_set_of_clips_covers_every_kind_a_voice_test_needs() -> None:
    """14+ clips: 6+ utterances, 2+ interruptions, 2+ backchannels and one of each noise."""
    kinds = [entry["kind"] for entry in MANIFEST["clips"]]
    assert len(kinds) >= 14
    assert kinds.count("utterance") >= 6
    assert kinds.count("interruption") >= 2 and kinds.count("backchannel") >= 2
    assert {"cough", "bark", "babble", "noise", "room_tone"} <= set(kinds)
    transcripts = {entry["transcript"] for entry in MANIFEST["clips"]}
    assert {"I want to confirm my order", "I want to cancel my order"} <= transcripts


@pytest.mark.parametrize("name", sorted(LABELS))
def test_labels_are_consistent(name: str) -> None:
    """Events have 150-300 ms of lead and trail, onset < offset; only speech has transcripts."""
    entry = LABELS[name]
    assert entry["sample_rate"] == 16_000 and entry["generator"] and entry["generator_version"]
    assert bool(entry["transcript"]) == (entry["kind"] in TRANSCRIBED)
    if entry["kind"] in NOISE_BEDS:
        assert entry["onset_ms"] is None and entry["offset_ms"] is None
        return
    assert 150 <= entry["onset_ms"] <= 300
    assert entry["onset_ms"] < entry["offset_ms"] < entry["duration_ms"]
    assert 150 <= entry["duration_ms"] - entry["offset_ms"] <= 300


@pytest.mark.parametrize(
    "name", sorted(n for n, e in LABELS.items() if e["kind"] not in NOISE_BEDS)
)
def test_ground_truth_brackets_the_signal(name: str) -> None:
    """Outside [onset, offset] there is only low room tone; inside, the clip peaks near -6 dBFS."""
    clip = load_clip(name)
    onset, offset = (round(ms * 16) for ms in truth(clip))
    outside = np.concatenate([clip.samples[:onset], clip.samples[offset:]])
    assert rms(outside) < 10 ** (-60 / 20)
    assert np.max(np.abs(clip.samples[onset:offset])) > 10 ** (-7 / 20)


def test_bundled_folder_stays_small() -> None:
    """The clips ship in the wheel, so the folder stays around 1 MB."""
    assert sum(path.stat().st_size for path in FIXTURES.iterdir()) < 1_100_000


def test_list_clips_is_sorted_and_filters_by_kind() -> None:
    """list_clips() names every bundled clip in order; kind= keeps only that kind."""
    assert list_clips() == sorted(LABELS)
    assert list_clips("interruption") == sorted(
        n for n, e in LABELS.items() if e["kind"] == "interruption"
    )


# ---------------------------------------------------------------- loading your own files


@pytest.mark.parametrize(
    ("suffix", "subtype"), [(".wav", "PCM_16"), (".flac", "PCM_16"), (".ogg", "VORBIS")]
)
def test_load_by_path_reads_any_soundfile_format(tmp_path: Path, suffix: str, subtype: str) -> None:
    """A user's WAV, FLAC or OGG file loads by path (str or Path) with no ground truth."""
    samples = tone(440, 16_000)
    path = tmp_path / f"prompt{suffix}"
    sf.write(path, samples, 16_000, subtype=subtype)
    for argument in (path, str(path)):
        clip = load_clip(argument)
        assert (clip.name, clip.source, clip.kind) == ("prompt", path, "unknown")
        assert clip.onset_ms is None and clip.offset_ms is None
        assert abs(db(amplitude_at(clip.samples, 440, 16_000) / 0.5)) < 0.5


def test_stereo_is_mixed_to_mono_by_averaging(tmp_path: Path) -> None:
    """Each output sample is the mean of the channels, and the conversion is noted."""
    left, right = tone(440, 16_000), tone(1000, 16_000, amplitude=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16_000, subtype="FLOAT")
    clip = load_clip(path)
    np.testing.assert_allclose(clip.samples, (left + right) / 2, atol=1e-7)
    assert clip.notes == ("mixed 2 channels to mono (mean)",)


def test_44k1_file_is_resampled_keeping_a_1khz_tone_and_removing_9khz(tmp_path: Path) -> None:
    """44.1 -> 16 kHz keeps 1 kHz within 0.5 dB and cuts 9 kHz (above 8 kHz) by > 40 dB."""
    path = tmp_path / "cd.wav"
    sf.write(
        path, np.stack([tone(1000, 44_100), tone(9000, 44_100)], axis=1), 44_100, subtype="FLOAT"
    )
    clip = load_clip(path)
    assert clip.sample_rate == 16_000 and len(clip.samples) == 16_000
    assert clip.notes == ("mixed 2 channels to mono (mean)", "resampled 44100 Hz -> 16000 Hz")
    spectrum = np.abs(np.fft.rfft(clip.samples[4000:12000]))
    assert np.argmax(spectrum) * 16_000 / 8000 == 1000
    assert abs(db(amplitude_at(clip.samples, 1000, 16_000) / 0.25)) < 0.5
    alias = 16_000 - 9000  # where 9 kHz would fold to without band-limiting
    assert db(amplitude_at(clip.samples, alias, 16_000) / 0.25) < -40


def test_resampler_matches_scipy_on_band_limited_noise() -> None:
    """Below 6 kHz the resampler agrees with scipy.signal.resample_poly to -50 dB."""
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(0)
    noise = signal.sosfiltfilt(
        signal.butter(8, 6000, fs=44_100, output="sos"), rng.standard_normal(44_100)
    )
    ours = resample(noise.astype(np.float32), 44_100, 16_000)
    reference = signal.resample_poly(noise, 160, 441)
    middle = slice(1000, -1000)
    assert db(rms(ours[middle] - reference[middle]) / rms(reference[middle])) < -50


def test_resampling_has_no_delay() -> None:
    """An impulse at t stays at t: onsets keep their time across rates."""
    impulse = np.zeros(44_100, np.float32)
    impulse[22_050] = 1.0
    assert np.argmax(resample(impulse, 44_100, 16_000)) == 8000
    assert np.argmax(resample(impulse, 44_100, 48_000)) == 24_000


RATES = st.sampled_from([8000, 11_025, 16_000, 22_050, 24_000, 44_100, 48_000]) | st.integers(
    1000, 50_000
)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3000), from_rate=RATES, to_rate=RATES)
def test_resampled_length_is_the_rounded_duration(n: int, from_rate: int, to_rate: int) -> None:
    """n samples become floor(n * to / from + 1/2) samples, at any pair of rates."""
    out = resample(np.zeros(n, np.float32), from_rate, to_rate)
    assert len(out) == (2 * n * to_rate + from_rate) // (2 * from_rate)
    assert out.dtype == np.float32


@settings(max_examples=30, deadline=None)
@given(level=st.floats(-1, 1), from_rate=RATES, to_rate=RATES)
def test_resampling_preserves_a_constant_level(level: float, from_rate: int, to_rate: int) -> None:
    """Away from the edges a constant signal stays constant (unity gain at DC for every phase)."""
    out = resample(np.full(from_rate // 10, level, np.float32), from_rate, to_rate)
    inner = out[len(out) // 4 : -len(out) // 4]
    np.testing.assert_allclose(inner, level, atol=1e-3)


def test_bundled_clip_at_another_rate_keeps_its_ground_truth() -> None:
    """load_clip(name, sample_rate=8000) resamples, notes it and keeps onset/offset in ms."""
    clip = load_clip("hello", sample_rate=8000)
    original = load_clip("hello")
    assert clip.sample_rate == 8000 and clip.notes == ("resampled 16000 Hz -> 8000 Hz",)
    assert (clip.onset_ms, clip.offset_ms) == (original.onset_ms, original.offset_ms)


@pytest.mark.parametrize("block", [7, 1000, 131_072])
@pytest.mark.parametrize("rate", [8000, 11_025, 22_050, 44_100, 48_000])
def test_loading_in_blocks_resamples_exactly_as_resample_does(
    monkeypatch: pytest.MonkeyPatch, rate: int, block: int
) -> None:
    """load_clip() streams blocks through the resampler; the samples equal resample()'s, bit
    for bit, whatever the block size (each output waits for its whole filter window)."""
    monkeypatch.setattr(clips_module, "_BLOCK_FRAMES", block)
    streamed = load_clip("confirm_order", sample_rate=rate)
    whole = resample(load_clip("confirm_order").samples, 16_000, rate)
    np.testing.assert_array_equal(streamed.samples, whole)


def test_loading_in_blocks_mixes_checks_and_clips_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mix-down, clipping and its count are the same as on the whole file, across blocks."""
    monkeypatch.setattr(clips_module, "_BLOCK_FRAMES", 1000)
    data = np.stack([tone(440, 16_000, 0.5), tone(1000, 16_000, 0.5, 0.25)], axis=1)
    data[[10, 999, 1000, 7000], 0] = 3.0
    path = tmp_path / "hot.wav"
    sf.write(path, data, 16_000, subtype="FLOAT")
    clip = load_clip(path)
    expected = np.clip(data.mean(axis=1, dtype=np.float32), -1, 1)
    np.testing.assert_array_equal(clip.samples, expected)
    assert clip.notes == ("mixed 2 channels to mono (mean)", "clipped 4 samples to [-1, 1]")


def test_a_long_48khz_clip_loads_in_memory_close_to_its_output(tmp_path: Path) -> None:
    """10 minutes of 48 kHz stereo loaded at 16 kHz peaks under 1.5x the output array's bytes
    (the whole-file path peaked at 21x: int file, float64 copies, padded buffers)."""
    path = tmp_path / "long.wav"
    n = 48_000 * 600
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", 48_000, 2, "PCM_16") as out:
        for start in range(0, n, 1 << 20):
            out.write((0.1 * rng.standard_normal((min(1 << 20, n - start), 2))).astype(np.float32))
    tracemalloc.start()
    try:
        clip = load_clip(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(clip.samples) == 16_000 * 600
    assert clip.notes == ("mixed 2 channels to mono (mean)", "resampled 48000 Hz -> 16000 Hz")
    assert peak < 1.5 * clip.samples.nbytes, f"peak {peak / 1e6:.1f} MB"


# ---------------------------------------------------------------- errors


def test_unknown_name_lists_the_available_clips() -> None:
    """A bare name that is not bundled fails with every available name and how to pass a path."""
    with pytest.raises(AudioError) as info:
        load_clip("confirm_ordr")
    assert all(name in str(info.value) for name in list_clips())
    assert "pathlib.Path" in str(info.value)
    assert "did you mean 'confirm_order'?" in str(info.value)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    """A path that does not exist fails naming the path."""
    with pytest.raises(AudioError, match=r"nothere\.wav does not exist"):
        load_clip(tmp_path / "nothere.wav")


def test_directory_is_not_an_audio_file(tmp_path: Path) -> None:
    """A directory fails as such rather than with a decoder error."""
    with pytest.raises(AudioError, match="is a directory"):
        load_clip(tmp_path)


def test_empty_file_is_reported_as_empty(tmp_path: Path) -> None:
    """A 0-byte file fails as empty; a valid header without samples also fails."""
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_clip(tmp_path / "empty.wav")
    sf.write(tmp_path / "header.wav", np.zeros(0, np.float32), 16_000)
    with pytest.raises(AudioError, match="no samples"):
        load_clip(tmp_path / "header.wav")


def test_corrupt_file_is_reported_as_corrupt(tmp_path: Path) -> None:
    """A .wav whose content is not a valid WAV fails as corrupt, wrapping soundfile's error."""
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioError, match="corrupt") as info:
        load_clip(path)
    assert isinstance(info.value.__cause__, sf.SoundFileError)


def test_unsupported_format_lists_what_is_supported(tmp_path: Path) -> None:
    """An unreadable format fails naming it, the supported ones and a conversion."""
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(64))
    with pytest.raises(AudioError, match=r"format M4A is not supported.*WAV.*ffmpeg"):
        load_clip(path)


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros(10, np.int16), "float32.*from_pcm16"),
        (np.zeros((10, 2), np.float32), "1-D"),
        ([0.0, 0.1], "numpy array"),
    ],
)
def test_helpers_reject_arrays_they_cannot_use(samples: object, message: str) -> None:
    """Wrong dtype, channels or type fail with the conversion to apply."""
    with pytest.raises(AudioError, match=message):
        to_pcm16(samples)  # type: ignore[arg-type]


def test_mixing_clips_of_different_rates_fails_naming_both() -> None:
    """concat()/add_noise() refuse mixed rates and say which clip has which."""
    slow = load_clip("hello", sample_rate=8000)
    with pytest.raises(AudioError, match=r"'hello' 16000 Hz, 'hello' 8000 Hz"):
        concat(load_clip("hello"), slow)
    with pytest.raises(AudioError, match="sample_rate="):
        add_noise(slow, load_clip("pink_noise"), 10, seed=0)


def test_clip_rejects_ground_truth_outside_itself() -> None:
    """A Clip's onset/offset must lie inside it and in order."""
    with pytest.raises(AudioError, match="outside the clip"):
        Clip("x", np.zeros(160, np.float32), 16_000, onset_ms=20.0)
    with pytest.raises(AudioError, match="after offset_ms"):
        Clip("x", np.zeros(160, np.float32), 16_000, onset_ms=8.0, offset_ms=2.0)


def test_clip_samples_are_read_only_copies() -> None:
    """A Clip copies a writable array and its own samples cannot be written."""
    source = np.zeros(16, np.float32)
    clip = Clip("x", source, 16_000)
    source[0] = 1.0
    assert clip.samples[0] == 0.0
    with pytest.raises(ValueError):
        clip.samples[0] = 1.0


# ---------------------------------------------------------------- mixing helpers


@settings(max_examples=25, deadline=None)
@given(snr_db=st.floats(-5, 40), seed=st.integers(0, 2**32 - 1))
def test_add_noise_hits_the_requested_snr_over_the_speech_region(snr_db: float, seed: int) -> None:
    """Speech RMS over noise RMS, both over [onset, offset], is the requested SNR within 0.1 dB."""
    clip = speech_clip()
    noisy = add_noise(clip, load_clip("pink_noise"), snr_db, seed=seed)
    onset, offset = truth(clip)
    region = slice(round(onset * 16), round(offset * 16))
    noise = noisy.samples[region].astype(np.float64) - clip.samples[region]
    assert abs(db(rms(clip.samples[region]) / rms(noise)) - snr_db) < 0.1
    assert (noisy.onset_ms, noisy.offset_ms, noisy.transcript) == (
        clip.onset_ms,
        clip.offset_ms,
        clip.transcript,
    )


def test_add_noise_is_deterministic_per_seed() -> None:
    """The same seed gives identical samples; another seed starts the noise elsewhere."""
    clip, noise = speech_clip(), load_clip("babble")
    first, again = add_noise(clip, noise, 10, seed=7), add_noise(clip, noise, 10, seed=7)
    np.testing.assert_array_equal(first.samples, again.samples)
    assert not np.array_equal(first.samples, add_noise(clip, noise, 10, seed=8).samples)
    assert "seed 7" in first.notes[-1]


def test_add_noise_loops_a_short_noise_under_a_long_clip() -> None:
    """A noise shorter than the clip is repeated, so the whole clip gets noise."""
    long_clip, short_noise = load_clip("late_pizza"), load_clip("pink_noise")
    assert short_noise.duration_ms < long_clip.duration_ms
    noisy = add_noise(long_clip, short_noise, 0, seed=1)
    tail = noisy.samples[-1600:].astype(np.float64) - long_clip.samples[-1600:]
    assert rms(tail) > 0.01


def test_gain_scales_and_notes_clipping() -> None:
    """+3.52 dB multiplies by 1.5; samples pushed past full scale are clipped and noted."""
    clip = speech_clip()
    louder = gain(clip, 20 * np.log10(1.5))
    np.testing.assert_allclose(louder.samples, 1.5 * clip.samples, rtol=1e-6)
    clipped = gain(clip, 20)
    assert np.max(np.abs(clipped.samples)) == 1.0
    assert clipped.notes[-1].startswith("clipped")


@settings(max_examples=40, deadline=None)
@given(lead_ms=st.floats(0, 500), trail_ms=st.floats(0, 500))
def test_pad_shifts_ground_truth_by_exactly_the_inserted_silence(
    lead_ms: float, trail_ms: float
) -> None:
    """After pad(), the samples at the new onset are the samples that were at the old one."""
    clip = speech_clip()
    padded = pad(clip, lead_ms, trail_ms)
    lead = round(lead_ms * 16)
    (onset, offset), (new_onset, new_offset) = truth(clip), truth(padded)
    assert len(padded.samples) == len(clip.samples) + lead + round(trail_ms * 16)
    assert new_onset == pytest.approx(onset + lead / 16)
    assert new_offset == pytest.approx(offset + lead / 16)
    np.testing.assert_array_equal(padded.samples[lead : lead + len(clip.samples)], clip.samples)
    assert not padded.samples[:lead].any()


@settings(max_examples=25, deadline=None)
@given(
    names=st.lists(st.sampled_from(sorted(LABELS)), min_size=1, max_size=4),
    gap_ms=st.floats(0, 400),
)
def test_concat_spans_from_the_first_onset_to_the_last_offset(
    names: list[str], gap_ms: float
) -> None:
    """concat() lays clips end to end; truth spans the first onset to the last offset."""
    clips = [load_clip(name) for name in names]
    joined = concat(*clips, gap_ms=gap_ms)
    gap = round(gap_ms * 16)
    starts = np.cumsum([0] + [len(c.samples) + gap for c in clips[:-1]])
    assert len(joined.samples) == starts[-1] + len(clips[-1].samples)
    onsets = [
        s / 16 + c.onset_ms for s, c in zip(starts, clips, strict=True) if c.onset_ms is not None
    ]
    offsets = [
        s / 16 + c.offset_ms for s, c in zip(starts, clips, strict=True) if c.offset_ms is not None
    ]
    assert joined.onset_ms == (min(onsets) if onsets else None)
    assert joined.offset_ms == (max(offsets) if offsets else None)
    for start, clip in zip(starts, clips, strict=True):
        np.testing.assert_array_equal(
            joined.samples[start : start + len(clip.samples)], clip.samples
        )
    assert joined.kind == (clips[0].kind if len({c.kind for c in clips}) == 1 else "mixed")


def test_frames_round_trip_to_the_samples() -> None:
    """frames() yields 640-byte frames that decode to the clip plus zero padding."""
    clip = speech_clip()
    chunks = list(frames(clip, frame_ms=20))
    assert {len(chunk) for chunk in chunks} == {640}
    decoded = from_pcm16(b"".join(chunks))
    np.testing.assert_array_equal(decoded[: len(clip.samples)], clip.samples)
    assert not decoded[len(clip.samples) :].any()
    assert len(decoded) - len(clip.samples) < 320


def test_frames_refuses_a_size_that_is_not_whole_samples() -> None:
    """A frame length that is not a whole number of samples fails up front."""
    clip = load_clip("hello", sample_rate=11_025)
    with pytest.raises(AudioError, match="frame_ms=20"):
        frames(clip, frame_ms=20)


@given(st.lists(st.integers(-32768, 32767), max_size=400))
def test_pcm16_round_trips_every_16bit_value(values: list[int]) -> None:
    """to_pcm16(from_pcm16(b)) == b for any 16-bit little-endian PCM."""
    data = np.array(values, dtype="<i2").tobytes()
    assert to_pcm16(from_pcm16(data)) == data


def test_pcm16_saturates_instead_of_wrapping() -> None:
    """Values beyond full scale become the extreme 16-bit values, never wrap around."""
    assert np.frombuffer(to_pcm16(np.array([1.5, -1.5, 1.0], np.float32)), "<i2").tolist() == [
        32767,
        -32768,
        32767,
    ]


def test_odd_byte_count_is_not_pcm16() -> None:
    """from_pcm16() refuses an odd number of bytes."""
    with pytest.raises(AudioError, match="even"):
        from_pcm16(b"\x00\x01\x02")


def test_a_file_with_nan_samples_is_refused_naming_the_count(tmp_path: Path) -> None:
    """NaN/inf in a float file would become garbage PCM for the agent: refused, with the fix."""
    path = tmp_path / "nan.wav"
    data = np.zeros(1600, dtype=np.float32)
    data[10:13] = np.nan
    data[20] = np.inf
    sf.write(path, data, 16_000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav has 4 NaN or infinite samples"):
        load_clip(path)


def test_something_that_is_neither_name_nor_path_is_an_audio_error() -> None:
    """load_clip(123) says what it takes instead of a bare TypeError."""
    with pytest.raises(AudioError, match="takes a bundled clip name or a file path, got int 123"):
        load_clip(123)  # type: ignore[arg-type]
