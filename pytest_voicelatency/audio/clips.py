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
import struct
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


_LABELS_FIX = (
    "reinstall pytest-voicelatency to restore it (or, in a checkout, "
    "`git checkout fixtures_audio/labels.json` or `python scripts/regenerate_fixtures.py`)"
)
_LABEL_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "file": (str,), "kind": (str,), "transcript": (str,),
    "onset_ms": (int, float, type(None)), "offset_ms": (int, float, type(None)),
    "duration_ms": (int, float),
}  # fmt: skip


@lru_cache(maxsize=1)
def _manifest() -> dict[str, dict[str, Any]]:
    path = fixtures_dir() / "labels.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise AudioError(f"cannot read the clip labels {path}: {err}; {_LABELS_FIX}") from err
    if not isinstance(data, dict):
        raise AudioError(
            f"the clip labels {path} hold a JSON {_json_kind(data)}, not an object "
            f'{{"version": {_MANIFEST_VERSION}, "clips": [...]}}; {_LABELS_FIX}'
        )
    if data.get("version") != _MANIFEST_VERSION:
        raise AudioError(
            f"{path} has manifest version {data.get('version')!r}, "
            f"expected {_MANIFEST_VERSION}; reinstall pytest-voicelatency"
        )
    clips = data.get("clips")
    if not isinstance(clips, list):
        raise AudioError(
            f"the clip labels {path} have 'clips' = a JSON {_json_kind(clips)}, "
            f"not a list of clip objects; {_LABELS_FIX}"
        )
    return {_check_label(path, index, entry)["name"]: entry for index, entry in enumerate(clips)}


def _check_label(path: Path, index: int, entry: object) -> dict[str, Any]:
    """One ``clips`` entry of labels.json: its fields, and ground truth ordered inside the clip."""
    where = f"the clip labels {path}: clips[{index}]"
    if not isinstance(entry, dict):
        raise AudioError(f"{where} is a JSON {_json_kind(entry)}, not an object; {_LABELS_FIX}")
    for field, types in _LABEL_FIELDS.items():
        if not isinstance(entry.get(field), types) or isinstance(entry.get(field), bool):
            raise AudioError(
                f"{where} ({entry.get('name', '?')!r}) has {field} = {entry.get(field)!r}, "
                f"expected {' or '.join(dict.fromkeys(_json_kind(t()) for t in types))}; "
                f"{_LABELS_FIX}"
            )
    _check_truth(f"{where} ({entry['name']!r})", entry, entry["duration_ms"])
    return entry


def _check_truth(where: str, entry: dict[str, Any], duration_ms: float) -> None:
    onset, offset = entry["onset_ms"], entry["offset_ms"]
    for field, value in (("onset_ms", onset), ("offset_ms", offset)):
        if value is not None and not 0 <= value <= duration_ms:
            raise AudioError(
                f"{where} has {field}={value}, beyond the clip (0..{duration_ms} ms): its ground "
                f"truth would point outside the audio; {_LABELS_FIX}"
            )
    if onset is not None and offset is not None and onset > offset:
        raise AudioError(
            f"{where} has onset_ms={onset} after offset_ms={offset}: the speech would end "
            f"before it starts; {_LABELS_FIX}"
        )


def _json_kind(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


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

    The file is read in blocks and converted block by block, so a long clip needs little more
    memory than its output. A file that holds fewer frames than its header declares (a
    truncated copy) is refused: loading the part that is there would shift the ground truth.
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
        labels = fixtures_dir() / "labels.json"
        _check_truth(f"the clip labels {labels} ({entry['name']!r})", entry, clip.duration_ms)
        return replace(
            clip, name=entry["name"], kind=entry["kind"], transcript=entry["transcript"],
            onset_ms=entry["onset_ms"], offset_ms=entry["offset_ms"],
        )  # fmt: skip
    return _read(Path(name_or_path), sample_rate)


def _looks_like_path(text: str) -> bool:
    path = Path(text)
    return bool(path.suffix) or len(path.parts) > 1


def _read(path: Path, sample_rate: int) -> Clip:
    """Stream ``path`` in blocks: mono ``float32`` at ``sample_rate``, peak memory O(output)."""
    if not path.is_file():
        what = "is a directory, not an audio file" if path.is_dir() else "does not exist"
        raise AudioError(
            f"audio file {path} {what}; check the path (relative paths start at {Path.cwd()})"
        )
    if path.stat().st_size == 0:
        raise AudioError(f"audio file {path} is empty (0 bytes); re-record or re-export it")
    try:
        with sf.SoundFile(path) as file:
            if file.format in ("WAV", "WAVEX", "RF64"):
                _check_riff_complete(path)
            header_frames = _aiff_frames(path) if file.format == "AIFF" else None
            samples, notes = _stream(file, path, sample_rate, header_frames)
    except sf.SoundFileError as err:
        raise AudioError(_decode_failure(path, err)) from err
    return Clip(path.stem, samples, sample_rate, source=path, notes=tuple(notes))


_BLOCK_FRAMES = 1 << 17  # frames read at a time: 512 KiB per channel of float32


def _stream(
    file: sf.SoundFile, path: Path, sample_rate: int, header_frames: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """Read, check, mix down, resample and clip ``file`` one block at a time.

    Only one block of input, the resampler's filter-length tail and the output array are alive at
    once; the output is filled in place and handed to :class:`Clip` read-only (no copy). Fewer
    frames than libsndfile or ``header_frames`` (the file's own count) declare is a truncation.
    """
    rate, channels, declared = file.samplerate, file.channels, file.frames
    resampler = None if rate == sample_rate else _StreamResampler(rate, sample_rate)
    # A corrupt header can declare any count: allocate no more than the bytes could hold
    # (no codec packs 4096 frames into one byte) and grow past that if the file really does.
    expected = min(declared, path.stat().st_size * 4096)
    out = _Output(expected if resampler is None else resampler.length(expected))
    buffer = np.empty((min(_BLOCK_FRAMES, max(declared, 1)), channels), np.float32)
    read = bad = over = 0
    while True:
        block = file.read(len(buffer), dtype="float32", always_2d=True, out=buffer)
        if len(block) == 0:
            break
        read += len(block)
        bad += int(block.size - np.count_nonzero(np.isfinite(block)))
        mono = block.mean(axis=1, dtype=np.float32) if channels > 1 else block[:, 0]
        over += out.append(mono if resampler is None else resampler.push(mono))
    if read == 0:
        raise AudioError(
            f"audio file {path} has a valid header but no samples; re-record or re-export it"
        )
    if read < max(declared, header_frames or 0):
        raise AudioError(_truncated(path, max(declared, header_frames or 0) / rate, read / rate))
    if bad:
        raise AudioError(
            f"audio file {path} has {bad} NaN or infinite samples (a float file written from "
            "broken data); re-export it, e.g. `sox in.wav -b 16 out.wav`"
        )
    if resampler is not None:
        over += out.append(resampler.finish())
    notes: list[str] = []
    if channels > 1:
        notes.append(f"mixed {channels} channels to mono (mean)")
    if resampler is not None:
        notes.append(f"resampled {rate} Hz -> {sample_rate} Hz")
    if over:
        notes.append(f"clipped {over} samples to [-1, 1]")
    return out.result(), notes


class _Output:
    """A float32 array filled block by block, sized up front, clipped to [-1, 1] as it fills."""

    def __init__(self, capacity: int) -> None:
        self.array = np.empty(max(capacity, 1), np.float32)
        self.size = 0

    def append(self, block: np.ndarray) -> int:
        """Store ``block`` (clipped to [-1, 1]); returns how many samples were clipped."""
        end = self.size + len(block)
        if end > len(self.array):  # more than the header said: grow (rare; amortised doubling)
            self.array = np.resize(self.array, max(end, 2 * len(self.array)))
        target = self.array[self.size : end]
        over = int(np.count_nonzero(np.abs(block) > 1))
        np.clip(block, -1, 1, out=target)
        self.size = end
        return over

    def result(self) -> np.ndarray:
        samples = self.array if self.size == len(self.array) else self.array[: self.size].copy()
        samples.flags.writeable = False
        return samples


def _truncated(path: Path, declared_s: float, present_s: float) -> str:
    return (
        f"audio file {path} is truncated: its header declares {declared_s:.3f} s of audio but "
        f"the file holds only {present_s:.3f} s (a copy or recording cut short); loading the "
        "part that is there would silently shift the clip's ground truth, so re-export the clip "
        "from the original recording"
    )


def _check_riff_complete(path: Path) -> None:
    """Refuse a WAV whose ``data`` chunk declares more bytes than the file holds.

    libsndfile silently shortens such a file to what is there, so the header is read here. A size
    of 0xFFFFFFFF is the "unknown length" a streaming writer leaves, and is not checked; a size of
    0 with data after it (a writer that never closed the file) is refused, as libsndfile would
    read it as empty.
    """
    size = path.stat().st_size
    with path.open("rb") as stream:
        head = stream.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX", b"RF64"):
            return
        order = ">" if head[:4] == b"RIFX" else "<"
        byte_rate = data_size64 = 0
        position = 12
        for _ in range(_MAX_CHUNKS):
            stream.seek(position)
            header = stream.read(8)
            if len(header) < 8:
                return
            chunk, (length,) = header[:4], struct.unpack(order + "I", header[4:])
            if chunk == b"ds64":  # RF64: the real 64-bit sizes
                sizes = stream.read(16)
                data_size64 = struct.unpack("<Q", sizes[8:])[0] if len(sizes) == 16 else 0
            elif chunk == b"fmt ":
                fmt = stream.read(12)
                byte_rate = struct.unpack(order + "I", fmt[8:12])[0] if len(fmt) == 12 else 0
            elif chunk == b"data":
                declared = data_size64 if length == 0xFFFFFFFF and data_size64 else length
                present = size - position - 8
                if declared == 0 and present > 0:
                    raise AudioError(
                        f"audio file {path} has a header that says its data is 0 bytes long, but "
                        f"{present} bytes follow (a recording that was never closed properly); "
                        "re-export the clip, e.g. `sox in.wav -b 16 out.wav`"
                    )
                if declared == 0xFFFFFFFF or present >= declared or byte_rate == 0:
                    return
                raise AudioError(_truncated(path, declared / byte_rate, present / byte_rate))
            position += 8 + length + (length & 1)  # chunks are padded to an even size


def _aiff_frames(path: Path) -> int | None:
    """The frame count an AIFF/AIFC file's ``COMM`` chunk declares (libsndfile trusts the file)."""
    with path.open("rb") as stream:
        head = stream.read(12)
        if len(head) < 12 or head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
            return None
        position = 12
        for _ in range(_MAX_CHUNKS):
            stream.seek(position)
            header = stream.read(8)
            if len(header) < 8:
                return None
            (length,) = struct.unpack(">I", header[4:])
            if header[:4] == b"COMM":
                comm = stream.read(6)
                return struct.unpack(">I", comm[2:6])[0] if len(comm) == 6 else None
            position += 8 + length + (length & 1)
    return None


_MAX_CHUNKS = 1024


def _decode_failure(path: Path, err: sf.SoundFileError) -> str:
    suffix = path.suffix.lstrip(".").upper()
    reason = str(err).rstrip(": .") or type(err).__name__
    if _FORMAT_ALIASES.get(suffix, suffix) in sf.available_formats():
        content = _sniff(path)
        if content is not None:
            return (
                f"cannot decode audio file {path}: its name says {suffix} but it holds "
                f"{content}, not audio; point to the real recording, or export it as {suffix} "
                "again, e.g. `sox in.xxx -b 16 out.wav`"
            )
        return (
            f"cannot decode audio file {path}: {reason}. Its name says {suffix} but the content "
            "is not valid (corrupt or truncated); re-export it, e.g. `sox in.xxx -b 16 out.wav`"
        )
    supported = ", ".join(sorted(sf.available_formats()))
    return (
        f"cannot read audio file {path}: format {suffix or '(no extension)'} "
        f"is not supported ({reason}). soundfile reads {supported}; convert it, "
        f"e.g. `ffmpeg -i {path.name} -ac 1 -ar 16000 out.wav`"
    )


_AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM", b"\xff\xfb")


def _sniff(path: Path) -> str | None:
    """What a file that failed to decode holds, when it is plainly not audio; else ``None``."""
    with path.open("rb") as stream:
        head = stream.read(512)
    if head.startswith(_AUDIO_MAGIC):
        return None  # an audio container, damaged: the caller says corrupt or truncated
    text = head.decode("utf-8", errors="replace").rstrip("\ufffd")  # a cut multi-byte character
    if text and "\ufffd" not in text and all(c.isprintable() or c.isspace() for c in text):
        start = " ".join(text.split())[:40]
        return f"text (it starts with {start!r})"
    return f"bytes of no audio format (it starts with {head[:8]!r})"


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


class _StreamResampler:
    """:func:`resample` over a stream of blocks, giving the same samples.

    Output ``j`` is the dot product of the input window around ``j * down / up`` with the filter
    of its phase, exactly as in :func:`resample`; it is computed as soon as its whole window has
    arrived, and only the input that later outputs still need (about one filter length) is kept.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        common = math.gcd(from_rate, to_rate)
        self.up, self.down = to_rate // common, from_rate // common
        self.table = _polyphase_table(self.up, self.down)
        self.half = self.table.shape[1] // 2
        self.tail = np.zeros(self.half - 1)  # tail[k] is input sample start + k (zeros before 0)
        self.start = -(self.half - 1)
        self.received = 0
        self.emitted = 0

    def length(self, n_in: int) -> int:
        """How many samples ``n_in`` input samples become (as :func:`resample` gives)."""
        return (2 * n_in * self.up + self.down) // (2 * self.down)

    def push(self, block: np.ndarray) -> np.ndarray:
        """Take the next input samples; return the output samples they complete."""
        self.tail = np.concatenate([self.tail, block.astype(np.float64)])
        self.received += len(block)
        last_base = self.received - self.half - 1  # the last window start fully received
        return self._emit(max(self.emitted, ((last_base + 1) * self.up - 1) // self.down + 1))

    def finish(self) -> np.ndarray:
        """The remaining output samples, with the input's end padded by zeros."""
        self.tail = np.concatenate([self.tail, np.zeros(self.half + 1)])
        return self._emit(self.length(self.received))

    def _emit(self, stop: int) -> np.ndarray:
        first_out, up, down, half = self.emitted, self.up, self.down, self.half
        if stop <= first_out:
            return np.empty(0, np.float32)
        out = np.empty(stop - first_out)
        windows = sliding_window_view(self.tail, 2 * half)  # row k: input start + k onwards
        for first in range(first_out, min(first_out + up, stop)):
            base, phase = divmod(first * down, up)
            count = len(range(first, stop, up))
            row = base - half + 1 - self.start
            out[first - first_out :: up] = np.einsum(
                "ij,j->i", windows[row::down][:count], self.table[phase]
            )
        self.emitted = stop
        keep = (stop * down) // up - half + 1 - self.start  # the next output's window start
        self.tail, self.start = self.tail[keep:], self.start + keep
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
    return (np.frombuffer(data, dtype="<i2") / np.float32(32768.0)).astype(np.float32, copy=False)


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
