"""G.711 μ-law and the integer-ratio resampling a phone line needs, in numpy.

Why here: the standard library's ``audioop`` (``lin2ulaw``/``ulaw2lin``) was removed in Python
3.13, and Twilio Media Streams carry 8 kHz μ-law. :func:`encode` and :func:`decode` are the
ITU-T G.711 μ-law tables (bias 0x84, clip 32635), vectorised; decoding returns the middle of each
quantisation step, so ``decode(encode(x))`` is within ``(|x| + 132) / 32`` of ``x``.

:func:`downsample` and :func:`upsample` change the rate of one streamed frame at a time by a whole
ratio (16 kHz ↔ 8 kHz): a boxcar average down, sample repetition up. Both are memoryless, so each
20 ms frame maps to exactly one 20 ms frame and no sample moves in time — what latency
measurement needs more than fidelity.

>>> import numpy as np
>>> pcm = np.array([0, 1000, -1000, 32767, -32768], dtype=np.int16)
>>> encode(pcm).tobytes().hex()
'ffce4e8000'
>>> decode(encode(pcm)).tolist()
[0, 988, -988, 32124, -32124]
>>> upsample(downsample(np.array([10, 30, -8, -8], np.int16), 2), 2).tolist()
[20, 20, -8, -8]
"""

from __future__ import annotations

import numpy as np

from pytest_voicelatency.errors import VoiceLatencyUsageError

__all__ = ["encode", "decode", "downsample", "upsample", "ratio", "to_wire"]

_BIAS = 0x84
_CLIP = 32635
#: ``x + bias`` at or above each edge is one exponent (segment) higher.
_SEGMENT_EDGES = np.array([256, 512, 1024, 2048, 4096, 8192, 16384], dtype=np.int32)


def encode(pcm: np.ndarray) -> np.ndarray:
    """16-bit linear PCM (any integer array) → μ-law bytes as ``uint8``."""
    x = np.asarray(pcm).astype(np.int32)
    sign = np.where(x < 0, 0x80, 0).astype(np.int32)
    magnitude = np.minimum(np.abs(x), _CLIP) + _BIAS
    exponent = np.searchsorted(_SEGMENT_EDGES, magnitude, side="right").astype(np.int32)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def decode(ulaw: np.ndarray | bytes) -> np.ndarray:
    """μ-law bytes (``bytes`` or a ``uint8`` array) → 16-bit linear PCM as ``int16``."""
    raw = np.frombuffer(ulaw, dtype=np.uint8) if isinstance(ulaw, (bytes, bytearray)) \
        else np.asarray(ulaw, dtype=np.uint8)
    u = ~raw.astype(np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = (((u & 0x0F) << 3) + _BIAS << exponent) - _BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def ratio(from_rate: int, to_rate: int, what: str) -> int:
    """The whole factor between two rates (either direction), or a usage error naming ``what``."""
    high, low = max(from_rate, to_rate), min(from_rate, to_rate)
    if low <= 0 or high % low:
        raise VoiceLatencyUsageError(
            f"{what}: {from_rate} Hz and {to_rate} Hz are not a whole multiple of each other; "
            f"run the caller at a rate that is (e.g. Caller(format=AudioFormat({to_rate})))")
    return high // low


def downsample(pcm: np.ndarray, factor: int) -> np.ndarray:
    """``int16`` PCM at ``factor`` × the rate → ``int16`` at the rate (mean of each group)."""
    if factor == 1:
        return pcm.astype(np.int16)
    usable = pcm.size - pcm.size % factor
    groups = pcm[:usable].astype(np.int32).reshape(-1, factor)
    means: np.ndarray = np.round(groups.mean(axis=1)).astype(np.int16)
    return means


def upsample(pcm: np.ndarray, factor: int) -> np.ndarray:
    """``int16`` PCM → ``int16`` at ``factor`` × the rate (each sample repeated)."""
    return np.repeat(pcm.astype(np.int16), factor)


def to_wire(pcm: bytes, pending: np.ndarray, *, line_rate: int, wire_rate: int, factor: int,
            frame: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The caller's PCM16 at ``line_rate`` as whole wire frames of ``frame`` samples at
    ``wire_rate``, plus what is left over for the next call (``pending`` is last call's)."""
    x = np.frombuffer(pcm, dtype="<i2")
    if wire_rate < line_rate:
        x = downsample(x, factor)
    elif wire_rate > line_rate:
        x = upsample(x, factor)
    joined = np.concatenate([pending, x]) if pending.size else x
    whole = joined.size - joined.size % frame
    return [joined[i:i + frame].astype("<i2") for i in range(0, whole, frame)], joined[whole:]
