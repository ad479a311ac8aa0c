"""Audio in: labelled clips (bundled or your own), loading and resampling, mixing, and a VAD.

Pure numpy over plain arrays. May import: ``errors``. Nothing above it.

Public names (``docs/api.md``): ``list_clips``, ``AudioError``, ``tone_clip``; mixing
``add_noise``, ``gain``, ``pad``, ``concat``; PCM ``frames``, ``to_pcm16``, ``from_pcm16``,
``resample``; hearing ``EnergyVAD``, ``speech_regions``, ``SpeechRegion``. (``Clip`` and
``load_clip`` are top-level.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_voicelatency._lazy import exports

_EXPORTS = {
    "list_clips": ".clips",
    "AudioError": ".clips",
    "add_noise": ".clips",
    "gain": ".clips",
    "pad": ".clips",
    "concat": ".clips",
    "frames": ".clips",
    "to_pcm16": ".clips",
    "from_pcm16": ".clips",
    "resample": ".clips",
    "tone_clip": ".tone",
    "EnergyVAD": ".vad",
    "speech_regions": ".vad",
    "SpeechRegion": ".vad",
}
__all__ = ["list_clips", "AudioError", "add_noise", "gain", "pad", "concat", "frames", "to_pcm16",
           "from_pcm16", "resample", "tone_clip", "EnergyVAD", "speech_regions", "SpeechRegion"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from pytest_voicelatency.audio.clips import (
        AudioError,
        add_noise,
        concat,
        frames,
        from_pcm16,
        gain,
        list_clips,
        pad,
        resample,
        to_pcm16,
    )
    from pytest_voicelatency.audio.tone import tone_clip
    from pytest_voicelatency.audio.vad import EnergyVAD, SpeechRegion, speech_regions
else:
    __getattr__, __dir__ = exports(__name__, _EXPORTS)
