"""Regenerate the bundled audio fixtures in ``fixtures_audio/`` (developer tool, never run in CI).

Requires the Debian packages ``flite``, ``espeak-ng`` and ``sox`` on PATH plus numpy and soundfile.
Every clip is 16 kHz mono 16-bit WAV; its ground truth (speech/event onset and offset) is computed
here, from the samples this script generates, and written to ``labels.json``.

How a clip is made:

1. Raw audio: flite ``kal16`` (16 kHz), or espeak-ng (22.05 kHz) resampled by ``sox -R -D`` (no
   random dither, so the output is repeatable), or a seeded numpy synthesis (cough, bark).
2. Peak-normalised to -6 dBFS and trimmed to the span from the first to the last sample within
   40 dB of the peak (-46 dBFS): that span *is* the ground truth, so it stays exact. A lower level
   would catch the TTS engines' own low-level noise (flite's "silence" reaches -60 dBFS) and
   faint breath long before audible speech.
3. Padded with 150-300 ms of digital silence on each side, then low room tone (-66 dBFS RMS, seeded)
   is added under the whole clip, so that no clip starts or ends in digital zero.

Noise beds (``pink_noise``, ``room_tone``) are stationary, unpadded and have no onset/offset.

TTS and sox output is byte-identical across runs with the versions recorded in ``labels.json``;
numpy's random streams may change between numpy versions, which is why the audio itself is committed
and CI only verifies ``SHA256SUMS``.

Usage::

    python scripts/regenerate_fixtures.py            # rewrite fixtures_audio/
    python scripts/regenerate_fixtures.py --check    # regenerate to a temp dir, diff the checksums
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16_000
MANIFEST_VERSION = 1
PEAK = 10 ** (-6 / 20)
GROUND_TRUTH_LEVEL = PEAK / 100  # after normalising: |x| within 40 dB of the peak counts as signal
ROOM_TONE_UNDER_DBFS = -66.0
REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "fixtures_audio"
LATE_PIZZA = "I ordered a large pizza an hour ago and it still has not arrived at my house"

Synth = Callable[
    [Path], np.ndarray
]  # writes scratch files under the given dir, returns float64 audio


# ---------------------------------------------------------------- external tools


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _read_16k(path: Path) -> np.ndarray:
    samples, rate = sf.read(path, dtype="int16")
    if rate != SAMPLE_RATE or samples.ndim != 1:
        raise SystemExit(f"{path}: expected 16 kHz mono, got {rate} Hz, shape {samples.shape}")
    return samples.astype(np.float64) / 32768.0


def flite_version() -> str:
    # flite --version prints its banner but exits with status 1
    banner = subprocess.run(("flite", "--version"), capture_output=True, text=True).stdout
    match = re.search(r"version: (\S+)", banner)
    return match.group(1) if match else "unknown"


def espeak_version() -> str:
    return _run("espeak-ng", "--version").split()[3]


def sox_version() -> str:
    return _run("sox", "--version").split()[-1].lstrip("v")


def flite(text: str, voice: str = "kal16") -> Synth:
    def synth(scratch: Path) -> np.ndarray:
        out = scratch / f"flite-{voice}.wav"
        _run("flite", "-voice", voice, "-t", text, "-o", str(out))
        if sf.info(out).samplerate != SAMPLE_RATE:  # e.g. voice "kal" is 8 kHz
            _run(
                "sox",
                "-R",
                "-D",
                str(out),
                "-r",
                str(SAMPLE_RATE),
                str(out.with_suffix(".16k.wav")),
            )
            out = out.with_suffix(".16k.wav")
        return _read_16k(out)

    return synth


def espeak(text: str, voice: str = "en-us", speed: int = 165) -> Synth:
    def synth(scratch: Path) -> np.ndarray:
        raw, out = scratch / "espeak-22k.wav", scratch / "espeak-16k.wav"
        _run("espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text)
        _run("sox", "-R", "-D", str(raw), "-r", str(SAMPLE_RATE), str(out))
        return _read_16k(out)

    return synth


def babble(voices: list[tuple[Synth, float, float]]) -> Synth:
    """Mix voices with ``sox -m`` and explicit ``-v`` gains; entries are (synth, delay_s, gain)."""

    def synth(scratch: Path) -> np.ndarray:
        args: list[str] = []
        for i, (voice, delay_s, gain) in enumerate(voices):
            track = scratch / f"voice{i}.wav"
            sf.write(track, _to_int16(voice(scratch)), SAMPLE_RATE, subtype="PCM_16")
            delayed = scratch / f"voice{i}-delayed.wav"
            _run("sox", "-R", "-D", str(track), str(delayed), "pad", f"{delay_s}")
            args += ["-v", f"{gain}", str(delayed)]
        out = scratch / "babble.wav"
        _run("sox", "-R", "-D", "-m", *args, str(out))
        return _read_16k(out)

    return synth


# ---------------------------------------------------------------- seeded numpy synthesis


def _shaped_noise(
    rng: np.random.Generator, n: int, envelope: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """White noise whose magnitude spectrum is multiplied by ``envelope(frequency_hz)``."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    shaped = np.fft.irfft(spectrum * envelope(freqs), n)
    return shaped / np.sqrt(np.mean(shaped**2))


def _pink(f: np.ndarray) -> np.ndarray:
    return 1 / np.sqrt(np.maximum(f, 20.0))


def _room(f: np.ndarray) -> np.ndarray:
    return _pink(f) / np.sqrt(1 + (f / 800.0) ** 4)  # ventilation rumble, little above 1 kHz


def noise_bed(
    seconds: float, dbfs: float, envelope: Callable[[np.ndarray], np.ndarray], seed: int
) -> Synth:
    def synth(_: Path) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return _shaped_noise(rng, int(seconds * SAMPLE_RATE), envelope) * 10 ** (dbfs / 20)

    return synth


def cough(seed: int) -> Synth:
    """Two unvoiced bursts: broadband noise with a sharp attack and an exponential decay."""

    def burst(rng: np.random.Generator, seconds: float) -> np.ndarray:
        n = int(seconds * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        envelope = np.minimum(t / 0.008, 1.0) * np.exp(-t / 0.07)
        noise = _shaped_noise(rng, n, lambda f: 1 / np.sqrt(1 + ((f - 1200) / 1500) ** 2))
        return noise * envelope

    def synth(_: Path) -> np.ndarray:
        rng = np.random.default_rng(seed)
        gap = np.zeros(int(0.12 * SAMPLE_RATE))
        return np.concatenate([burst(rng, 0.28), gap, 0.7 * burst(rng, 0.24)])

    return synth


def bark(seed: int) -> Synth:
    """Two barks: a harmonic tone gliding 620 -> 440 Hz plus breath noise."""

    def one(rng: np.random.Generator, seconds: float) -> np.ndarray:
        n = int(seconds * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        f0 = np.linspace(620.0, 440.0, n)
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        tone = sum(np.sin(k * phase) / k for k in range(1, 12) if k * 620 < SAMPLE_RATE / 2)
        voiced = tone * (1 + 0.3 * np.exp(-((np.arange(n) / n - 0.3) ** 2) / 0.02))
        breath = 0.25 * _shaped_noise(rng, n, lambda f: 1 / np.sqrt(1 + (f / 3000) ** 2))
        envelope = np.minimum(t / 0.01, 1.0) * np.minimum((seconds - t) / 0.04, 1.0)
        return (voiced / np.max(np.abs(voiced)) + breath) * envelope

    def synth(_: Path) -> np.ndarray:
        rng = np.random.default_rng(seed)
        gap = np.zeros(int(0.18 * SAMPLE_RATE))
        return np.concatenate([one(rng, 0.16), gap, 0.8 * one(rng, 0.14)])

    return synth


# ---------------------------------------------------------------- clip assembly


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str
    transcript: str
    synth: Synth
    generator: tuple[str, str]  # (tool chain, versions)
    lead_ms: int = 0
    trail_ms: int = 0
    seed: int = 0  # room tone under the clip


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def _event_span(x: np.ndarray) -> tuple[int, int]:
    """Indices of the first and one-past-the-last sample above ``GROUND_TRUTH_LEVEL``."""
    above = np.flatnonzero(np.abs(x) > GROUND_TRUTH_LEVEL)
    if above.size == 0:
        raise SystemExit("generated audio is silent")
    return int(above[0]), int(above[-1]) + 1


def assemble(spec: Spec, raw: np.ndarray) -> tuple[np.ndarray, float | None, float | None]:
    """Return int16 samples and the ground-truth onset/offset in ms (None for noise beds)."""
    if spec.kind in ("noise", "room_tone"):
        return _to_int16(raw), None, None
    normalised = raw * (PEAK / np.max(np.abs(raw)))
    start, stop = _event_span(normalised)
    event = normalised[start:stop]
    lead = spec.lead_ms * SAMPLE_RATE // 1000
    trail = spec.trail_ms * SAMPLE_RATE // 1000
    padded = np.concatenate([np.zeros(lead), event, np.zeros(trail)])
    tone = noise_bed(len(padded) / SAMPLE_RATE, ROOM_TONE_UNDER_DBFS, _room, spec.seed)(Path())
    samples = _to_int16(padded + tone[: len(padded)])
    return samples, lead * 1000 / SAMPLE_RATE, (lead + len(event)) * 1000 / SAMPLE_RATE


def specs() -> list[Spec]:
    flite_v, espeak_v, sox_v = flite_version(), espeak_version(), sox_version()
    f = ("flite kal16", flite_v)
    e = ("espeak-ng en-us, sox rate -R -D", f"espeak-ng {espeak_v}; sox {sox_v}")
    n = ("numpy seeded synthesis", f"numpy {np.__version__}")
    b = (
        "flite slt/rms/awb + espeak-ng, sox -m -v",
        f"{flite_v}; espeak-ng {espeak_v}; sox {sox_v}",
    )
    return [
        Spec("confirm_order", "utterance", "I want to confirm my order",
             flite("I want to confirm my order"), f, 200, 250, 1),
        Spec("cancel_order", "utterance", "I want to cancel my order",
             flite("I want to cancel my order"), f, 240, 200, 2),
        Spec("open_tomorrow", "utterance", "what time do you open tomorrow",
             espeak("What time do you open tomorrow?"), e, 180, 220, 3),
        Spec("hello", "utterance", "hello", flite("Hello."), f, 150, 300, 4),
        Spec("book_table", "utterance", "can you book a table for two at seven",
             flite("Can you book a table for two at seven?"), f, 260, 180, 5),
        Spec("change_address", "utterance", "please change my delivery address",
             espeak("Please change my delivery address.", "en-us+f3"), e, 220, 260, 6),
        Spec("late_pizza", "utterance", LATE_PIZZA, flite(LATE_PIZZA), f, 200, 200, 7),
        Spec("wait_stop", "interruption", "wait stop", flite("Wait, stop!"), f, 170, 230, 8),
        Spec("meant_tuesday", "interruption", "no I meant Tuesday",
             espeak("No, I meant Tuesday."), e, 200, 200, 9),
        Spec("mm_hm", "backchannel", "mm-hm", espeak("[[m:_'hm:]]"), e, 210, 240, 10),
        Spec("uh_huh", "backchannel", "uh-huh", espeak("uh-huh"), e, 190, 210, 11),
        Spec("cough", "cough", "", cough(seed=101), n, 230, 250, 12),
        Spec("dog_bark", "bark", "", bark(seed=102), n, 200, 270, 13),
        Spec("babble", "babble", "", babble([
            (flite("Did you see the game last night?", "slt"), 0.0, 0.4),
            (flite("We should leave before the traffic.", "rms"), 0.3, 0.35),
            (flite("The coffee here is better now.", "awb"), 0.5, 0.3),
            (espeak("Pass me the menu, please.", "en-us+f2"), 0.2, 0.3),
        ]), b, 200, 200, 14),
        Spec("pink_noise", "noise", "", noise_bed(2.0, -26.0, _pink, seed=103), n),
        Spec("room_tone", "room_tone", "", noise_bed(2.0, -60.0, _room, seed=104), n),
    ]  # fmt: skip


def generate(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for spec in specs():
        with tempfile.TemporaryDirectory() as scratch:
            samples, onset_ms, offset_ms = assemble(spec, spec.synth(Path(scratch)))
        file = f"{spec.name}.wav"
        sf.write(out_dir / file, samples, SAMPLE_RATE, subtype="PCM_16")
        entries.append({
            "name": spec.name, "file": file, "kind": spec.kind, "transcript": spec.transcript,
            "onset_ms": onset_ms, "offset_ms": offset_ms,
            "duration_ms": len(samples) * 1000 / SAMPLE_RATE, "sample_rate": SAMPLE_RATE,
            "generator": spec.generator[0], "generator_version": spec.generator[1],
        })  # fmt: skip
    manifest = {
        "version": MANIFEST_VERSION,
        "generated_by": "scripts/regenerate_fixtures.py",
        "ground_truth": "onset/offset: first/last generated sample within 40 dB of the peak",
        "clips": sorted(entries, key=lambda entry: str(entry["name"])),
    }
    (out_dir / "labels.json").write_text(json.dumps(manifest, indent=2) + "\n")
    files = sorted(p for p in out_dir.iterdir() if p.suffix in (".wav", ".json"))
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in files)
    (out_dir / "SHA256SUMS").write_text(sums)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="regenerate to a temp dir and diff SHA256SUMS"
    )
    args = parser.parse_args()
    if not args.check:
        generate(OUT_DIR)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = (Path(tmp) / "SHA256SUMS").read_text().splitlines()
    committed = (OUT_DIR / "SHA256SUMS").read_text().splitlines()
    differing = sorted(set(fresh) ^ set(committed))
    for line in differing:
        print(f"differs: {line}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
