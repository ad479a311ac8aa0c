"""G.711 μ-law in numpy (audioop is gone in 3.13) and the whole-ratio frame resampling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pytest_voicelatency.errors import VoiceLatencyUsageError
from pytest_voicelatency.transports import mulaw

PCM = hnp.arrays(np.int16, st.integers(0, 400))
ULAW = hnp.arrays(np.uint8, st.integers(0, 400))


@given(PCM)
def test_decode_of_encode_is_within_half_a_quantisation_step(x):
    y = mulaw.decode(mulaw.encode(x)).astype(np.int32)
    magnitude = np.minimum(np.abs(x.astype(np.int32)), 32635)  # G.711 clips at 32635
    error = np.abs(y - np.sign(x) * magnitude)
    assert np.all(error <= (magnitude + 132) / 32)
    assert y.shape == x.shape and mulaw.encode(x).dtype == np.uint8


@given(ULAW)
def test_encode_of_decode_gives_back_every_code_but_negative_zero(codes):
    again = mulaw.encode(mulaw.decode(codes))
    expected = np.where(codes == 0x7F, 0xFF, codes)  # 0x7F is -0: it encodes as +0 (0xFF)
    assert np.array_equal(again, expected)


@given(st.integers(1, 32767))
def test_the_codec_is_symmetric_and_monotonic(value):
    up, down = mulaw.decode(mulaw.encode(np.array([value, -value])))
    assert up == -down >= 0
    assert mulaw.decode(mulaw.encode(np.array([value - 1])))[0] <= up


def test_decoding_matches_the_g711_table_and_bytes_work_like_arrays():
    assert mulaw.decode(b"\x00\x80\xff\x7f").tolist() == [-32124, 32124, 0, 0]
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(mulaw.decode(codes.tobytes()), mulaw.decode(codes))
    assert np.all(np.diff(mulaw.decode(codes[:128]).astype(int)) > 0)  # one sign, one order


@given(PCM, st.sampled_from([1, 2, 3, 6]))
def test_resampling_by_a_whole_ratio_keeps_every_sample_in_place(x, factor):
    up = mulaw.upsample(x, factor)
    assert up.size == x.size * factor
    assert np.array_equal(mulaw.downsample(up, factor), x)  # a held sample averages to itself


def test_rates_that_are_not_whole_multiples_are_refused_with_the_fix():
    assert mulaw.ratio(16_000, 8000, "x") == mulaw.ratio(8000, 48_000, "x") // 3 == 2
    with pytest.raises(VoiceLatencyUsageError, match="AudioFormat"):
        mulaw.ratio(16_000, 11_025, "x")
