"""Specification of pytest_voicelatency.audio.vad on the bundled clips and on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_voicelatency.audio.clips import AudioError, Clip, add_noise, list_clips, load_clip, pad
from pytest_voicelatency.audio.vad import (
    VAD,
    EnergyVAD,
    SpeechRegion,
    VadDecision,
    WindowedVAD,
    speech_regions,
)

SPEECH = sorted(
    name
    for kind in ("utterance", "interruption", "backchannel", "babble")
    for name in list_clips(kind)
)


def regions(name: str, vad: VAD | None = None, trail_ms: float = 500) -> list[SpeechRegion]:
    """VAD regions of a bundled clip, with enough trailing silence for the hangover to end."""
    clip = pad(load_clip(name), trail_ms=trail_ms)
    return speech_regions(clip.samples, clip.sample_rate, vad or EnergyVAD())


def truth(clip: Clip) -> tuple[float, float]:
    """The clip's ground truth, which the test needs to be known."""
    assert clip.onset_ms is not None and clip.offset_ms is not None, clip.name
    return clip.onset_ms, clip.offset_ms


def voiced(seconds: float, rate: int = 16_000, f0: float = 140.0) -> np.ndarray:
    """A steady vowel-like sound: harmonics of ``f0`` with falling amplitude, peak 0.3."""
    t = np.arange(round(seconds * rate)) / rate
    wave = np.sum(
        [np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 20) if k * f0 < rate / 2], axis=0
    )
    peak: np.ndarray = 0.3 * wave / np.max(np.abs(wave))
    return peak.astype(np.float32)


def silence(ms: int) -> np.ndarray:
    return np.zeros(ms * 16, np.float32)


@pytest.mark.parametrize("name", SPEECH)
def test_fires_on_every_speech_clip_at_its_onset(name: str) -> None:
    """The onset estimate is within 20 ms of the truth and the decision within 60 ms."""
    onset, _ = truth(load_clip(name))
    first = regions(name)[0]
    assert abs(first.onset_ms - onset) <= 20
    assert 0 < first.detected_ms - onset <= 60


@pytest.mark.parametrize("name", list_clips("utterance"))
def test_utterance_ends_where_the_ground_truth_ends(name: str) -> None:
    """An utterance is one region whose end is within 30 ms of the ground-truth offset."""
    [region] = regions(name)
    assert region.offset_ms is not None
    assert abs(region.offset_ms - truth(load_clip(name))[1]) <= 30


def test_fires_on_babble_because_it_is_speech() -> None:
    """Babble is speech to any VAD: the false barge-in a voice agent must survive."""
    assert regions("babble")


@pytest.mark.parametrize("voicing", [True, False])
def test_does_not_fire_on_room_tone(voicing: bool) -> None:
    """Low room tone stays under the initial floor with or without the voicing gate."""
    assert regions("room_tone", EnergyVAD(voicing=voicing)) == []


def test_energy_alone_fires_on_pink_noise_and_the_voicing_gate_rejects_it() -> None:
    """Without the gate, noise above the floor is speech for good; with it, never."""
    [region] = regions("pink_noise", EnergyVAD(voicing=False), trail_ms=0)
    assert region.onset_ms == 0 and region.offset_ms is None
    assert regions("pink_noise", EnergyVAD()) == []


def test_voicing_gate_rejects_a_cough_that_energy_alone_takes_for_speech() -> None:
    """A cough is loud but aperiodic: energy fires, the voicing gate does not."""
    assert regions("cough", EnergyVAD(voicing=False))
    assert regions("cough", EnergyVAD()) == []


def test_stream_starting_mid_speech_is_speech_from_the_first_frame() -> None:
    """The floor starts from a fixed guess, not the first frame, so ongoing speech is found."""
    clip = pad(load_clip("late_pizza"), trail_ms=500)
    cut = 2 * clip.sample_rate
    [region] = speech_regions(clip.samples[cut:], clip.sample_rate, EnergyVAD())
    assert (region.onset_ms, region.detected_ms) == (0, 20)
    assert region.offset_ms == pytest.approx(truth(clip)[1] - 2000, abs=30)


def test_floor_adapts_to_a_steady_noise_bed_and_speech_is_still_found() -> None:
    """The gate lets the floor climb under pink noise; speech 30 dB above it is found."""
    clip = pad(load_clip("confirm_order"), lead_ms=1000, trail_ms=500)
    noisy = add_noise(clip, load_clip("pink_noise"), 30, seed=3)
    [region] = speech_regions(noisy.samples, noisy.sample_rate, EnergyVAD())
    assert abs(region.onset_ms - truth(clip)[0]) <= 20


@settings(max_examples=40, deadline=None)
@given(start=st.integers(0, 16_000), frame_ms=st.sampled_from([10, 20, 30]))
def test_onset_is_found_to_the_millisecond_wherever_it_falls_in_a_frame(
    start: int, frame_ms: int
) -> None:
    """After digital silence, a vowel starting at any sample is placed within 1 ms."""
    samples = np.concatenate([np.zeros(start, np.float32), voiced(0.3), silence(500)])
    vad = EnergyVAD(frame_ms=frame_ms)
    [region] = speech_regions(samples, 16_000, vad)
    assert start <= region.onset_ms * 16 <= start + 16
    assert region.offset_ms is not None
    assert abs(region.offset_ms * 16 - (start + 4800)) <= 16


def test_each_decision_carries_onset_and_offset_once() -> None:
    """onset_sample is on the first speech frame only; offset_sample on the first after."""
    samples = np.concatenate([silence(200), voiced(0.2), silence(500)])
    vad = EnergyVAD()
    decisions = [vad.process(frame) for frame in samples.reshape(-1, 320)]
    flags = [decision.speech for decision in decisions]
    first, last = flags.index(True), len(flags) - flags[::-1].index(True) - 1
    assert [i for i, d in enumerate(decisions) if d.onset_sample is not None] == [first]
    assert [i for i, d in enumerate(decisions) if d.offset_sample is not None] == [last + 1]
    assert decisions[first].onset_sample == pytest.approx(
        3200, abs=2
    )  # the vowel is a sine: sample 3200 is 0
    assert decisions[last + 1].offset_sample == pytest.approx(3200 + 3200, abs=2)


def test_hangover_bridges_short_pauses() -> None:
    """A 100 ms pause inside speech keeps one region; a 400 ms pause splits it."""
    short = np.concatenate([voiced(0.3), silence(100), voiced(0.3), silence(500)])
    long = np.concatenate([voiced(0.3), silence(400), voiced(0.3), silence(500)])
    assert len(speech_regions(short, 16_000, EnergyVAD())) == 1
    assert len(speech_regions(long, 16_000, EnergyVAD())) == 2


def test_reset_starts_a_new_stream() -> None:
    """After reset() the same audio gives the same decisions, with sample indices from 0 again."""
    clip = load_clip("hello")
    assert speech_regions(clip.samples, 16_000, vad := EnergyVAD()) == speech_regions(
        clip.samples, 16_000, vad
    )


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros(160, np.float32), r"shape \(320,\)"),
        (np.zeros(320, np.int16), "int16.*from_pcm16"),
        (b"\x00" * 640, "bytes"),
    ],
)
def test_frames_of_the_wrong_size_or_type_are_refused(frame: object, message: str) -> None:
    """A frame must be float32 of exactly frame_ms; anything else fails saying how to convert."""
    with pytest.raises(AudioError, match=message):
        EnergyVAD().process(frame)  # type: ignore[arg-type]


def test_speech_regions_refuses_a_sample_rate_the_vad_does_not_use() -> None:
    """Samples at another rate than the VAD's fail rather than being misread."""
    clip = load_clip("hello", sample_rate=8000)
    with pytest.raises(AudioError, match="8000 Hz but the VAD expects 16000 Hz"):
        speech_regions(clip.samples, clip.sample_rate, EnergyVAD())


def test_frame_size_must_be_whole_samples() -> None:
    """A frame_ms that is not a whole number of samples at the rate is refused at construction."""
    with pytest.raises(AudioError, match="frame_ms=20 at 11025 Hz"):
        EnergyVAD(sample_rate=11_025, frame_ms=20)


class LoudnessModel:
    """Stands in for a window model such as Silero: probability 1 when a window is loud."""

    created = 0

    def __init__(self) -> None:
        type(self).created += 1
        self.windows: list[int] = []

    def __call__(self, window: np.ndarray) -> float:
        self.windows.append(len(window))
        return float(np.sqrt(np.mean(window.astype(np.float64) ** 2)) > 0.01)


def test_windowed_adapter_buffers_frames_into_model_windows() -> None:
    """20 ms frames reach the model as 512-sample windows; onset = first loud window."""
    models: list[LoudnessModel] = []

    def factory() -> LoudnessModel:
        models.append(LoudnessModel())
        return models[-1]

    samples = np.concatenate([silence(320), voiced(0.5), silence(500)])
    [region] = speech_regions(samples, 16_000, WindowedVAD(factory, window=512))
    assert set(models[-1].windows) == {512}
    assert region.onset_ms * 16 == 5120
    assert region.offset_ms is not None and abs(region.offset_ms * 16 - (5120 + 8000)) <= 512


def test_windowed_adapter_starts_a_fresh_model_on_reset() -> None:
    """reset() asks the factory for a new model so a stateful model does not carry over streams."""
    before = LoudnessModel.created
    vad = WindowedVAD(LoudnessModel)
    vad.reset()
    assert LoudnessModel.created == before + 2


def test_windowed_adapter_is_silent_until_the_first_window_is_full() -> None:
    """Frames before the first complete window cannot be judged and are non-speech."""
    vad = WindowedVAD(LoudnessModel, window=512)
    loud = voiced(0.02)
    assert vad.process(loud) == VadDecision(False)
    assert vad.process(loud).speech
