"""Labelled speech and noise clips, loading your own audio, and pure mixing helpers.

Samples are always mono ``float32`` in [-1, 1] (the scale soundfile uses, so 16-bit files
round-trip exactly through :func:`to_pcm16`). Each :class:`Clip` carries its ground truth — where
the speech or event starts and ends, in ms — computed when the bundled clip was generated, and
every helper here keeps it exact, so a test can measure a latency from the moment the user really
started or stopped speaking without trusting a VAD.

Example::

    >>> from pytest_voicelatency.audio.clips import add_noise, frames, load_clip
    >>> clip = load_clip("confirm_order")
    >>> clip.sample_rate, clip.kind, clip.onset_ms
    (16000, 'utterance', 200.0)
    >>> noisy = add_noise(clip, load_clip("pink_noise"), snr_db=15, seed=0)
    >>> noisy.onset_ms == clip.onset_ms
    True
    >>> len(next(frames(noisy, frame_ms=20)))  # 320 samples of 16-bit little-endian PCM
    640
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from numpy.lib.stride_tricks import sliding_window_view

from pytest_voicelatency.errors import VoiceLatencyError

__all__ = [
    "AudioError",
    "Clip",
    "ClipKind",
    "add_noise",
    "concat",
    "fixtures_dir",
    "frames",
    "from_pcm16",
    "gain",
    "list_clips",
    "load_clip",
    "pad",
    "resample",
    "to_pcm16",
]

ClipKind = Literal[
    "utterance", "interruption", "backchannel", "cough", "bark", "babble", "noise", "room_tone",
    "unknown",  # a user's file: nothing is known about its content
    "mixed",  # concat() of clips of different kinds
]  # fmt: skip

_MANIFEST_VERSION = 1
_FIXTURES = "fixtures_audio"
_FORMAT_ALIASES = {"AIF": "AIFF", "OGA": "OGG", "OPUS": "OGG"}


class AudioError(VoiceLatencyError, ValueError):
    """An audio file or array cannot be used; the message names it and says how to fix it."""


@dataclass(frozen=True, eq=False)
class Clip:
    """A mono clip and its ground truth.

    ``samples`` is a read-only 1-D ``float32`` array in [-1, 1] (a writable array passed in is
    copied, so the clip cannot change behind your back). ``onset_ms``/``offset_ms`` bound the
    speech or event in the clip; they are ``None`` when unknown (your own files, noise beds) —
    set them with ``dataclasses.replace`` if you know them. ``notes`` records every conversion
    applied since the file was read. Clips compare by identity (``eq=False``): arrays have no
    single truth value.
    """

    name: str
    samples: np.ndarray
    sample_rate: int
    kind: ClipKind = "unknown"
    transcript: str = ""
    onset_ms: float | None = None
    offset_ms: float | None = None
    source: Path | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_samples(self.samples, f"Clip {self.name!r} samples")
        if len(self.samples) == 0:
            raise AudioError(f"Clip {self.name!r} has no samples; a clip needs at least one")
        _check_rate(self.sample_rate, f"Clip {self.name!r} sample_rate")
        if self.samples.flags.writeable:
            frozen = self.samples.copy()
            frozen.flags.writeable = False
            object.__setattr__(self, "samples", frozen)
        for label, value in (("onset_ms", self.onset_ms), ("offset_ms", self.offset_ms)):
            if value is not None and not 0 <= value <= self.duration_ms:
                raise AudioError(
                    f"Clip {self.name!r} {label}={value} lies outside the clip "
                    f"(0..{self.duration_ms} ms); give a time inside it or None"
                )
        if (
            self.onset_ms is not None
            and self.offset_ms is not None
            and self.onset_ms > self.offset_ms
        ):
            raise AudioError(
                f"Clip {self.name!r} onset_ms={self.onset_ms} is after offset_ms={self.offset_ms}"
            )

    @property
    def duration_ms(self) -> float:
        """Length of the clip in milliseconds."""
        return len(self.samples) * 1000 / self.sample_rate


# ---------------------------------------------------------------- bundled clips


def fixtures_dir() -> Path:
    """The folder of bundled clips: inside the installed package, else next to it in a checkout.

    Wheels install the clips as plain files at ``pytest_voicelatency/fixtures_audio``; a source
    checkout or editable install keeps them at the repository's top-level ``fixtures_audio``.
    """
    package = Path(__file__).resolve().parent.parent  # pytest_voicelatency/, above audio/
    for folder in (package / _FIXTURES, package.parent / _FIXTURES):
        if (folder / "labels.json").is_file():
            return folder
    raise AudioError(
        f"bundled audio clips not found in {package / _FIXTURES} or {package.parent / _FIXTURES}; "
        "reinstall pytest-voicelatency (the wheel ships them) "
        "or restore fixtures_audio/ in your checkout"
    )


@lru_cache(maxsize=1)
def _manifest() -> dict[str, dict[str, Any]]:
    path = fixtures_dir() / "labels.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != _MANIFEST_VERSION:
        raise AudioError(
            f"{path} has manifest version {data.get('version')!r}, "
            f"expected {_MANIFEST_VERSION}; reinstall pytest-voicelatency"
        )
    return {entry["name"]: entry for entry in data["clips"]}


def list_clips(kind: ClipKind | None = None) -> list[str]:
    """Names of the bundled clips, sorted; only those of ``kind`` when given."""
    return sorted(
        name for name, entry in _manifest().items() if kind is None or entry["kind"] == kind
    )


def _bundled(name: str) -> dict[str, Any]:
    entry = _manifest().get(name)
    if entry is None:
        close = difflib.get_close_matches(name, list_clips(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise AudioError(
            f"no bundled clip named {name!r}{hint}; available: {', '.join(list_clips())}. "
            "To load your own file pass a pathlib.Path or a path with an extension, e.g. 'call.wav'"
        )
    return entry


# ---------------------------------------------------------------- loading


def load_clip(name_or_path: str | Path, *, sample_rate: int = 16_000) -> Clip:
    """Load a bundled clip by name, or any file soundfile reads (WAV, FLAC, OGG, MP3, ...) by path.

    A ``str`` without a directory part or extension is a bundled name; anything else is a path.
    Multi-channel audio is mixed to mono by averaging and other rates are resampled with
    :func:`resample`; each conversion is recorded in ``Clip.notes``. Ground truth is known for
    bundled clips only and is kept across resampling (the resampler has no delay).
    """
    _check_rate(sample_rate, "sample_rate")
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise AudioError(
            f"load_clip() takes a bundled clip name or a file path, got "
            f"{type(name_or_path).__name__} {name_or_path!r}; see list_clips() for the names"
        )
    if isinstance(name_or_path, str) and not _looks_like_path(name_or_path):
        entry = _bundled(name_or_path)
        clip = _read(fixtures_dir() / entry["file"], sample_rate)
        return replace(
            clip, name=entry["name"], kind=entry["kind"], transcript=entry["transcript"],
            onset_ms=entry["onset_ms"], offset_ms=entry["offset_ms"],
        )  # fmt: skip
    return _read(Path(name_or_path), sample_rate)


def _looks_like_path(text: str) -> bool:
    path = Path(text)
    return bool(path.suffix) or len(path.parts) > 1


def _read(path: Path, sample_rate: int) -> Clip:
    if not path.is_file():
        what = "is a directory, not an audio file" if path.is_dir() else "does not exist"
        raise AudioError(
            f"audio file {path} {what}; check the path (relative paths start at {Path.cwd()})"
        )
    if path.stat().st_size == 0:
        raise AudioError(f"audio file {path} is empty (0 bytes); re-record or re-export it")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except sf.SoundFileError as err:
        raise AudioError(_decode_failure(path, err)) from err
    if data.shape[0] == 0:
        raise AudioError(
            f"audio file {path} has a valid header but no samples; re-record or re-export it"
        )
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise AudioError(
            f"audio file {path} has {bad} NaN or infinite samples (a float file written from "
            "broken data); re-export it, e.g. `sox in.wav -b 16 out.wav`"
        )
    notes: list[str] = []
    if data.shape[1] > 1:
        notes.append(f"mixed {data.shape[1]} channels to mono (mean)")
    samples = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        samples = resample(samples, rate, sample_rate)
        notes.append(f"resampled {rate} Hz -> {sample_rate} Hz")
    samples = _clip_unit(samples, notes)
    return Clip(path.stem, samples, sample_rate, source=path, notes=tuple(notes))


def _decode_failure(path: Path, err: sf.SoundFileError) -> str:
    suffix = path.suffix.lstrip(".").upper()
    if _FORMAT_ALIASES.get(suffix, suffix) in sf.available_formats():
        return (
            f"cannot decode audio file {path}: {err}. Its name says {suffix} but the content "
            "is not valid (corrupt or truncated); re-export it, e.g. `sox in.xxx -b 16 out.wav`"
        )
    supported = ", ".join(sorted(sf.available_formats()))
    return (
        f"cannot read audio file {path}: format {suffix or '(no extension)'} "
        f"is not supported ({err}). soundfile reads {supported}; convert it, "
        f"e.g. `ffmpeg -i {path.name} -ac 1 -ar 16000 out.wav`"
    )


# ---------------------------------------------------------------- resampling

_ZERO_CROSSINGS = 32  # sinc lobes each side of the centre tap
_ROLLOFF = 0.92  # -6 dB point as a fraction of the lower Nyquist
_KAISER_BETA = 9.0  # about 90 dB stopband


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling of mono ``float32`` samples; returns ``float32``.

    Each output sample is a Kaiser-windowed sinc interpolation centred exactly on its instant, so
    timing is preserved (no group delay) and content above the lower rate's Nyquist frequency is
    removed instead of aliasing: flat within 0.5 dB up to 87 % of that Nyquist (7 kHz for 16 kHz),
    at least 90 dB down from the Nyquist up. The rate ratio is reduced by its gcd and one filter
    per output phase is precomputed and cached. The output has
    ``floor(n * to_rate / from_rate + 1/2)`` samples.
    """
    _check_samples(samples, "resample() samples")
    _check_rate(from_rate, "from_rate")
    _check_rate(to_rate, "to_rate")
    if from_rate == to_rate:
        return samples.copy()
    common = math.gcd(from_rate, to_rate)
    up, down = to_rate // common, from_rate // common
    n_out = (2 * len(samples) * up + down) // (2 * down)
    table = _polyphase_table(up, down)
    half = table.shape[1] // 2
    padded = np.concatenate([np.zeros(half - 1), samples.astype(np.float64), np.zeros(half + 1)])
    windows = sliding_window_view(padded, 2 * half)  # windows[i] = x[i - half + 1 : i + half + 1]
    out = np.empty(n_out)
    for first in range(min(up, n_out)):
        base, phase = divmod(first * down, up)  # every up-th output shares this phase
        count = len(range(first, n_out, up))
        # einsum reads the overlapping strided rows in place; matmul would copy them first
        out[first::up] = np.einsum("ij,j->i", windows[base::down][:count], table[phase])
    return out.astype(np.float32)


@lru_cache(maxsize=8)  # real-world rate pairs need small tables; odd pairs can need MBs
def _polyphase_table(up: int, down: int) -> np.ndarray:
    """Row ``p``: taps for an output instant ``p/up`` input samples after an input sample."""
    cutoff = _ROLLOFF * min(1.0, up / down)  # fraction of the input Nyquist
    half = math.ceil(_ZERO_CROSSINGS / cutoff)
    offsets = np.arange(up)[:, None] / up - np.arange(-half + 1, half + 1)[None, :]
    taper = np.sqrt(np.clip(1 - (offsets / half) ** 2, 0, 1))
    window = np.i0(_KAISER_BETA * taper) / np.i0(_KAISER_BETA)
    taps = np.sinc(cutoff * offsets) * window
    table: np.ndarray = taps / taps.sum(axis=1, keepdims=True)  # unity gain at DC for every phase
    table.flags.writeable = False
    return table


# ---------------------------------------------------------------- mixing helpers


def gain(clip: Clip, db: float) -> Clip:
    """Scale by ``db`` decibels; samples beyond [-1, 1] are clipped and the clipping is noted."""
    notes = [f"gain {db:+.2f} dB"]
    samples = _clip_unit((clip.samples * 10 ** (db / 20)).astype(np.float32), notes)
    return replace(clip, samples=samples, notes=clip.notes + tuple(notes))


def pad(clip: Clip, lead_ms: float = 0.0, trail_ms: float = 0.0) -> Clip:
    """Add digital silence before and after; ground truth moves by the exact inserted duration.

    Durations are rounded to whole samples; use :func:`add_noise` afterwards for a noise bed.
    """
    lead, trail = _samples_for(lead_ms, clip, "lead_ms"), _samples_for(trail_ms, clip, "trail_ms")
    samples = np.concatenate(
        [np.zeros(lead, np.float32), clip.samples, np.zeros(trail, np.float32)]
    )
    note = f"padded {lead} samples before, {trail} after"
    onset_ms, offset_ms = _shifted(clip, lead)
    return replace(
        clip, samples=samples, onset_ms=onset_ms, offset_ms=offset_ms, notes=(*clip.notes, note)
    )


def concat(*clips: Clip, gap_ms: float = 0.0) -> Clip:
    """Join clips with ``gap_ms`` of silence between them.

    The ground truth spans from the first known onset to the last known offset (shifted to
    their new positions); transcripts are joined with spaces; the kind is the clips' common kind,
    else ``"mixed"``.
    """
    if not clips:
        raise AudioError("concat() needs at least one clip")
    rate = _common_rate(clips, "concat()")
    gap = _samples_for(gap_ms, clips[0], "gap_ms")
    lengths = [len(clip.samples) + gap for clip in clips]
    starts = list(accumulate(lengths[:-1], initial=0))
    truths = [_shifted(clip, start) for clip, start in zip(clips, starts, strict=True)]
    onsets = [onset for onset, _ in truths if onset is not None]
    offsets = [offset for _, offset in truths if offset is not None]
    silence = np.zeros(gap, np.float32)
    samples = np.concatenate([part for clip in clips for part in (silence, clip.samples)][1:])
    kinds = {clip.kind for clip in clips}
    names = [clip.name for clip in clips]
    notes = tuple(f"{c.name}: {note}" for c in clips for note in c.notes)
    return Clip(
        name="+".join(names), samples=samples, sample_rate=rate,
        kind=kinds.pop() if len(kinds) == 1 else "mixed",
        transcript=" ".join(clip.transcript for clip in clips if clip.transcript),
        onset_ms=min(onsets, default=None), offset_ms=max(offsets, default=None),
        notes=(*notes, f"concatenated {', '.join(names)} with {gap} samples between"),
    )  # fmt: skip


def add_noise(clip: Clip, noise: Clip, snr_db: float, *, seed: int) -> Clip:
    """Mix ``noise`` under ``clip`` at ``snr_db``, measured over the clip's ground-truth region.

    The noise is looped or cropped to the clip's length from a start offset drawn from ``seed``
    (same seed, same result). Its gain comes from the RMS of the clip and of the noise over the
    speech region (the whole clip when the onset is unknown), so the SNR is exact before any
    clipping to [-1, 1], which is noted.
    """
    _common_rate((clip, noise), "add_noise()")
    start = int(np.random.default_rng(seed).integers(len(noise.samples)))
    bed = np.resize(np.roll(noise.samples.astype(np.float64), -start), len(clip.samples))
    region = _truth_slice(clip)
    signal_rms, noise_rms = _rms(clip.samples[region]), _rms(bed[region])
    if signal_rms == 0 or noise_rms == 0:
        silent = clip.name if signal_rms == 0 else noise.name
        raise AudioError(
            f"add_noise(): {silent!r} is silent over the speech region, so no SNR can be set"
        )
    scale = signal_rms / noise_rms / 10 ** (snr_db / 20)
    notes = [f"added {noise.name!r} at {snr_db:g} dB SNR (seed {seed}, offset {start})"]
    samples = _clip_unit((clip.samples + scale * bed).astype(np.float32), notes)
    return replace(clip, samples=samples, notes=clip.notes + tuple(notes))


# ---------------------------------------------------------------- PCM


def frames(clip: Clip, frame_ms: int = 20) -> Iterator[bytes]:
    """Split the clip into 16-bit little-endian PCM frames of ``frame_ms``; the last is zero-padded.

    The frame size is checked at once, not on the first ``next()``.
    """
    size = clip.sample_rate * frame_ms / 1000
    if frame_ms <= 0 or not size.is_integer():
        raise AudioError(
            f"frame_ms={frame_ms} does not give a whole number of samples at {clip.sample_rate} Hz"
        )
    step = int(size) * 2
    pcm = to_pcm16(clip.samples)
    pcm += bytes(-len(pcm) % step)
    return (pcm[start : start + step] for start in range(0, len(pcm), step))


def to_pcm16(samples: np.ndarray) -> bytes:
    """Encode ``float32`` samples as 16-bit little-endian PCM (x * 32768, rounded, saturated).

    This is the inverse of :func:`from_pcm16` and of soundfile's 16-bit reading, so audio that
    came from a 16-bit file round-trips bit-exactly.
    """
    _check_samples(samples, "to_pcm16() samples")
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()


def from_pcm16(data: bytes) -> np.ndarray:
    """Decode 16-bit little-endian PCM into ``float32`` samples (x / 32768)."""
    if len(data) % 2:
        raise AudioError(f"from_pcm16() got {len(data)} bytes; 16-bit PCM needs an even number")
    return (np.frombuffer(data, dtype="<i2") / np.float32(32768.0)).astype(np.float32)


# ---------------------------------------------------------------- internals


def _check_samples(samples: object, what: str) -> None:
    if not isinstance(samples, np.ndarray):
        raise AudioError(f"{what} must be a numpy array, got {type(samples).__name__}")
    if samples.ndim != 1:
        raise AudioError(
            f"{what} must be 1-D (mono), got shape {samples.shape}; "
            "mix down first, e.g. x.mean(axis=1)"
        )
    if samples.dtype != np.float32:
        raise AudioError(
            f"{what} must be float32 in [-1, 1], got {samples.dtype}; "
            "for 16-bit PCM use from_pcm16() or x.astype(np.float32) / 32768"
        )


def _check_rate(rate: object, what: str) -> None:
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise AudioError(f"{what} must be a positive integer number of Hz, got {rate!r}")


def _common_rate(clips: tuple[Clip, ...], what: str) -> int:
    rates = {clip.sample_rate for clip in clips}
    if len(rates) > 1:
        listed = ", ".join(f"{clip.name!r} {clip.sample_rate} Hz" for clip in clips)
        raise AudioError(
            f"{what} needs one sample rate, got {listed}; load them with the same sample_rate="
        )
    return rates.pop()


def _samples_for(ms: float, clip: Clip, what: str) -> int:
    if ms < 0:
        raise AudioError(f"{what}={ms} is negative; give a duration >= 0 ms")
    return round(ms * clip.sample_rate / 1000)


def _shifted(clip: Clip, samples: int) -> tuple[float | None, float | None]:
    """The clip's ground truth after ``samples`` samples are inserted before it."""
    shift = samples * 1000 / clip.sample_rate
    return (
        None if clip.onset_ms is None else clip.onset_ms + shift,
        None if clip.offset_ms is None else clip.offset_ms + shift,
    )


def _truth_slice(clip: Clip) -> slice:
    if clip.onset_ms is None or clip.offset_ms is None:
        return slice(None)
    start = round(clip.onset_ms * clip.sample_rate / 1000)
    return slice(start, max(start + 1, round(clip.offset_ms * clip.sample_rate / 1000)))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _clip_unit(samples: np.ndarray, notes: list[str]) -> np.ndarray:
    over = int(np.count_nonzero(np.abs(samples) > 1))
    if over:
        notes.append(f"clipped {over} samples to [-1, 1]")
        clipped: np.ndarray = np.clip(samples, -1, 1)
        return clipped
    return samples
