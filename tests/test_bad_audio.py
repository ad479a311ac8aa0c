"""Bad audio inputs (issue #10): each case is a file or label a user could hand to ``load_clip``,
the error it must get, and a fragment of its message. Every error names the file it is about and
says how to fix it.

``docs/robustness.md`` lists every case in its "Audio cases" table;
:func:`test_the_robustness_doc_lists_every_audio_case` keeps it in step (regenerate the table,
with the messages the cases really get, by ``python tests/test_bad_audio.py``).
"""

from __future__ import annotations

import json
import re
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from pytest_voicelatency.audio import clips
from pytest_voicelatency.audio.clips import AudioError, load_clip

RATE = 16_000


@dataclass(frozen=True)
class Case:
    id: str
    given: str  # the input, as the doc shows it
    build: Callable[[Path], str | Path]  # makes the input in a folder; returns load_clip's argument
    error: type[Exception] | None  # None: a control case that loads
    fragment: str  # part of the message (a regex)
    names: str  # the file the message must name (a path under the folder)
    fix: str  # the fix the message must give (a regex)


def tone(seconds: float = 1.0, channels: int = 1, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    mono = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def wav(folder: Path, name: str = "clip.wav", seconds: float = 1.0, **kw: Any) -> Path:
    path, rate = folder / name, kw.pop("rate", RATE)
    samples = tone(seconds, kw.pop("channels", 1), rate)
    if kw.pop("nonfinite", False):
        samples[[10, 20]] = np.nan, np.inf
    sf.write(path, samples, rate,
             subtype=kw.pop("subtype", "PCM_16"), **kw)
    return path


def file(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def cut(path: Path, keep: float) -> Path:
    """Keep the first ``keep`` fraction of the file's bytes (header intact, data cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[: round(len(data) * keep)])
    return path


def data_size(path: Path, size: int) -> Path:
    """Rewrite the WAV's RIFF and ``data`` chunk sizes (what a streaming writer leaves)."""
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[at + 4 : at + 8] = data[4:8] = struct.pack("<I", size)
    path.write_bytes(bytes(data))
    return path


def labelled(folder: Path, manifest: object = None, seconds: float = 1.0, **entry: Any) -> str:
    """A bundled-clips folder holding one clip ``tone`` and ``labels.json``; returns its name."""
    fixtures = folder / "fixtures"
    fixtures.mkdir()
    wav(fixtures, "tone.wav", seconds)
    if manifest is None:
        label = {"name": "tone", "file": "tone.wav", "kind": "utterance", "transcript": "hi",
                 "onset_ms": 100.0, "offset_ms": 900.0, "duration_ms": seconds * 1000}
        manifest = {"version": 1, "clips": [{**label, **entry}]}
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (fixtures / "labels.json").write_text(text)
    return "tone"


LABELS = "fixtures/labels.json"
LABELS_FIX = r"reinstall pytest-voicelatency"
REEXPORT = r"re-export (the clip|it)"

CASES = [
    Case("audio-truncated-wav", "a 1 s 16-bit WAV cut mid-data (header declares 1 s)",
         lambda d: cut(wav(d), 0.5), AudioError,
         r"is truncated: its header declares 1\.000 s of audio but the file holds only 0\.49\d s",
         "clip.wav", r"re-export the clip from the original recording"),
    Case("audio-truncated-wav-stereo-float", "a 2 s stereo float WAV at 48 kHz cut to 30 %",
         lambda d: cut(wav(d, seconds=2, channels=2, rate=48_000, subtype="FLOAT"), 0.3),
         AudioError, r"is truncated: its header declares 2\.000 s .* holds only 0\.(59\d|600) s",
         "clip.wav", r"re-export the clip"),
    Case("audio-truncated-rf64", "an RF64 WAV (64-bit sizes in `ds64`) cut in half",
         lambda d: cut(wav(d, "r.wav", format="RF64"), 0.5), AudioError,
         r"is truncated: its header declares 1\.000 s .* holds only 0\.49\d s", "r.wav",
         r"re-export the clip"),
    Case("audio-truncated-aiff", "an AIFF file cut in half (its `COMM` chunk declares 1 s)",
         lambda d: cut(wav(d, "a.aiff"), 0.5), AudioError,
         r"is truncated: its header declares 1\.000 s .* holds only 0\.49\d s", "a.aiff",
         r"re-export the clip"),
    Case("audio-truncated-flac", "a FLAC file cut in half", lambda d: cut(wav(d, "c.flac"), 0.5),
         AudioError, r"cannot decode audio file .*: .*corrupt or truncated", "c.flac", REEXPORT),
    Case("audio-wav-data-size-zero", "a WAV whose header says 0 data bytes, with 1 s of data "
         "after it (a writer that never closed the file)", lambda d: data_size(wav(d), 0),
         AudioError, r"header that says its data is 0 bytes long, but 32000 bytes follow",
         "clip.wav", r"re-export the clip"),
    Case("audio-wav-streamed-length", "a WAV whose sizes are 0xFFFFFFFF (the unknown length a "
         "streaming writer leaves): control", lambda d: data_size(wav(d), 0xFFFFFFFF), None,
         "", "clip.wav", ""),
    Case("audio-empty-file", "a 0-byte `.wav`",
         lambda d: file(d, "e.wav", b""), AudioError,
         r"is empty \(0 bytes\)", "e.wav", r"re-record or re-export it"),
    Case("audio-zero-frames", "a valid WAV header with no samples",
         lambda d: wav(d, seconds=0), AudioError, r"has a valid header but no samples",
         "clip.wav", r"re-record or re-export it"),
    Case("audio-text-named-wav", "a text file named `.wav`",
         lambda d: file(d, "t.wav", "<html>404 Not Found</html>\n"),
         AudioError, r"its name says WAV but it holds text \(it starts with '<html>404 Not Found",
         "t.wav", r"point to the real recording, or export it as WAV again"),
    Case("audio-binary-named-wav", "a PNG image named `.wav`",
         lambda d: file(d, "i.wav", b"\x89PNG\r\n\x1a\n" + bytes(256)),
         AudioError, r"it holds bytes of no audio format \(it starts with b'\\x89PNG",
         "i.wav", r"export it as WAV again"),
    Case("audio-corrupt-riff", "a `.wav` with a RIFF header and no `fmt`/`data` chunks",
         lambda d: file(d, "b.wav", b"RIFF\x10\0\0\0WAVEjunkjunkjunk"),
         AudioError, r"Its name says WAV but the content is not valid \(corrupt or truncated\)",
         "b.wav", r"re-export it"),
    Case("audio-nan-samples", "a float WAV holding NaN and inf samples",
         lambda d: wav(d, "n.wav", 0.1, subtype="FLOAT", nonfinite=True),
         AudioError, r"has 2 NaN or infinite samples", "n.wav", r"re-export it"),
    Case("audio-directory", "a directory passed as the clip",
         lambda d: (d / "clips.wav").mkdir() or d / "clips.wav", AudioError,
         r"is a directory, not an audio file", "clips.wav", r"check the path"),
    Case("audio-missing-file", "a path that does not exist", lambda d: d / "gone.wav",
         AudioError, r"does not exist", "gone.wav", r"check the path"),
    Case("audio-unsupported-format", "an `.m4a` file (no soundfile decoder)",
         lambda d: file(d, "s.m4a", b"\0\0\0\x20ftypM4A " + bytes(64)),
         AudioError, r"format M4A is not supported", "s.m4a", r"convert it, e\.g\. `ffmpeg"),
    Case("labels-onset-after-offset", "labels.json: onset_ms 900 after offset_ms 100",
         lambda d: labelled(d, onset_ms=900.0, offset_ms=100.0), AudioError,
         r"clips\[0\] \('tone'\) has onset_ms=900\.0 after offset_ms=100\.0", LABELS, LABELS_FIX),
    Case("labels-offset-beyond-duration", "labels.json: offset_ms 1500 in a clip of 1000 ms",
         lambda d: labelled(d, offset_ms=1500.0), AudioError,
         r"has offset_ms=1500\.0, beyond the clip \(0\.\.1000\.0 ms\)", LABELS, LABELS_FIX),
    Case("labels-offset-beyond-file", "labels.json: duration_ms 3000 and offset_ms 2500, but "
         "the WAV holds 1000 ms", lambda d: labelled(d, offset_ms=2500.0, duration_ms=3000.0),
         AudioError, r"\('tone'\) has offset_ms=2500\.0, beyond the clip \(0\.\.1000\.0 ms\)",
         LABELS, LABELS_FIX),
    Case("labels-negative-onset", "labels.json: onset_ms -5",
         lambda d: labelled(d, onset_ms=-5.0), AudioError,
         r"has onset_ms=-5\.0, beyond the clip", LABELS, LABELS_FIX),
    Case("labels-not-object", "labels.json holding a JSON array",
         lambda d: labelled(d, manifest=[1, 2]), AudioError,
         r"hold a JSON array, not an object", LABELS, LABELS_FIX),
    Case("labels-not-json", "labels.json holding `{not json`",
         lambda d: labelled(d, manifest="{not json"), AudioError,
         r"cannot read the clip labels .*Expecting property name", LABELS, LABELS_FIX),
    Case("labels-clips-not-list", 'labels.json with `"clips": {}`',
         lambda d: labelled(d, manifest={"version": 1, "clips": {}}), AudioError,
         r"have 'clips' = a JSON object, not a list of clip objects", LABELS, LABELS_FIX),
    Case("labels-entry-not-object", 'labels.json with `"clips": ["tone"]`',
         lambda d: labelled(d, manifest={"version": 1, "clips": ["tone"]}), AudioError,
         r"clips\[0\] is a JSON string, not an object", LABELS, LABELS_FIX),
    Case("labels-field-wrong-type", 'labels.json: `"onset_ms": "100"`',
         lambda d: labelled(d, onset_ms="100"), AudioError,
         r"has onset_ms = '100', expected number or null", LABELS, LABELS_FIX),
]


@pytest.fixture(autouse=True)
def fixtures_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Bundled clips are read from ``tmp_path/fixtures`` (the label cases write it)."""
    monkeypatch.setattr(clips, "fixtures_dir", lambda: tmp_path / "fixtures")
    clips._manifest.cache_clear()
    yield
    clips._manifest.cache_clear()


def message(case: Case, folder: Path) -> str | None:
    """The message ``case`` gets with its input made in ``folder`` (None: it loaded)."""
    argument = case.build(folder)
    try:
        load_clip(argument)
    except AudioError as err:
        return str(err)
    return None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_audio(case: Case, tmp_path: Path) -> None:
    argument = case.build(tmp_path)
    if case.error is None:
        clip = load_clip(argument)
        assert len(clip.samples) > 0 and clip.notes == ()
        return
    with pytest.raises(case.error) as info:
        load_clip(argument)
    text = str(info.value)
    assert re.search(case.fragment, text), text
    assert str(tmp_path / case.names) in text, f"does not name {case.names}: {text}"
    assert re.search(case.fix, text), f"gives no fix: {text}"


def test_the_cases_are_distinct_and_cover_the_issue() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    for needed in ("truncated", "empty", "zero-frames", "text-named-wav", "nan", "directory",
                   "onset-after-offset", "beyond", "labels-not-object"):
        assert any(needed in i for i in ids), needed


def doc_table() -> str:
    """The "Audio cases" table of docs/robustness.md, with the messages the cases really get."""
    out = ["| case | input | what it gets |", "|---|---|---|"]
    for case in CASES:
        with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
            patch.setattr(clips, "fixtures_dir", lambda f=folder: Path(f) / "fixtures")
            patch.chdir(folder)
            clips._manifest.cache_clear()
            got = message(case, Path(folder))
            clips._manifest.cache_clear()
        if got is None:
            outcome = "loads (control case)"
        else:
            shown = got.replace(str(Path(folder).resolve()), "…").replace(folder, "…")
            outcome = f"`{case.error.__name__ if case.error else ''}`: {shown}"
        cells = [f"`{case.id}`", case.given, outcome]
        out.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    return "\n".join(out)


def test_the_robustness_doc_lists_every_audio_case() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "robustness.md").read_text()
    section = doc.split("## Audio cases", 1)[-1]
    missing = [c.id for c in CASES if f"`{c.id}`" not in section]
    assert "## Audio cases" in doc and not missing, (
        f"docs/robustness.md (Audio cases) lacks {missing}: run python tests/test_bad_audio.py"
    )


if __name__ == "__main__":  # regenerate the Audio cases table of docs/robustness.md
    path = Path(__file__).parent.parent / "docs" / "robustness.md"
    text = path.read_text()
    start, end = "<!-- audio cases: start -->", "<!-- audio cases: end -->"
    head, rest = text.split(start)
    path.write_text(f"{head}{start}\n{doc_table()}\n{end}{rest.split(end)[1]}")
    sys.exit(0)
