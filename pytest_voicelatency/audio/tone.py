"""A synthetic utterance with exact ground truth: a square-wave tone between two silences.

Why: a bundled clip's onset and offset are exact but its speech has soft edges, so an agent that
detects speech by amplitude finds it a few ms inside the label. Every sample of a tone is loud,
so "the user stopped" is the same instant for the caller and for the simplest agent — what a
calibration or a property test wants.

>>> clip = tone_clip(300, lead_ms=100, trail_ms=100)
>>> clip.onset_ms, clip.offset_ms, clip.duration_ms
(100.0, 400.0, 500.0)
"""

from __future__ import annotations

import numpy as np

from pytest_voicelatency.audio.clips import Clip

__all__ = ["tone_clip"]


def tone_clip(ms: float = 600.0, *, lead_ms: float = 200.0, trail_ms: float = 200.0,
              sample_rate: int = 16_000, level: float = 0.3, name: str = "tone") -> Clip:
    """A square-wave "utterance" with exact ground truth: every sample inside it is loud.

    ``ms`` of a 180 Hz square wave at ``level`` (0.3: about -10 dBFS), after ``lead_ms`` and
    before ``trail_ms`` of digital silence; ``onset_ms``/``offset_ms`` bound the tone exactly.
    """
    lead, body = round(lead_ms * sample_rate / 1000), round(ms * sample_rate / 1000)
    trail = round(trail_ms * sample_rate / 1000)
    phase = np.sin(2 * np.pi * 180.0 * np.arange(body) / sample_rate)
    tone = np.where(phase >= 0, level, -level).astype(np.float32)
    samples = np.concatenate([np.zeros(lead, np.float32), tone, np.zeros(trail, np.float32)])
    return Clip(name, samples, sample_rate, kind="utterance", transcript="",
                onset_ms=lead * 1000 / sample_rate, offset_ms=(lead + body) * 1000 / sample_rate)
