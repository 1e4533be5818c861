"""Line-noise reduction (serfast.calls.denoise): exact reconstruction, block independence, how
much steady noise it removes and how little speech-like sound it touches."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from serfast.io.audio import resample
from serfast.calls.denoise import DenoiseOptions, NoiseReducer

SR = 8000


def run(y: np.ndarray, block: int, options: DenoiseOptions = DenoiseOptions(),
        sr: int = SR) -> np.ndarray:
    reducer = NoiseReducer(sr, options)
    parts = [reducer.push(y[i:i + block]) for i in range(0, len(y), block)]
    return np.concatenate(parts + [reducer.finish()])


def noisy_tones(seconds: float = 23.0, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    """White noise with 440 Hz tone bursts at 5-7 s and 15-16 s (amplitude 0.3)."""
    rng = np.random.default_rng(seed)
    y = noise * rng.standard_normal(int(seconds * SR))
    t = np.arange(len(y)) / SR
    for a, b in ((5, 7), (15, 16)):
        m = (t >= a) & (t < b)
        y[m] += 0.3 * np.sin(2 * np.pi * 440 * t[m])
    return y.astype(np.float32)


def test_without_subtraction_the_signal_comes_back():
    y = noisy_tones(3.3)
    for n in (0, 1, 10, 255, 256, 257, len(y)):
        out = run(y[:n], 1000, DenoiseOptions(over_subtraction=0.0))
        assert out.dtype == np.float32 and len(out) == n
        np.testing.assert_allclose(out, y[:n], atol=1e-6)


def test_output_does_not_depend_on_block_sizes():
    y = noisy_tones()
    whole = run(y, len(y))
    assert len(whole) == len(y)
    for block in (37, 1234, 40_000):
        np.testing.assert_array_equal(run(y, block), whole)


def test_steady_noise_goes_down_tones_stay():
    y = noisy_tones()
    out = run(y, 8000)
    db = lambda x: 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))  # noqa: E731
    quiet, tone = slice(9 * SR, 14 * SR), slice(int(5.1 * SR), int(6.9 * SR))
    assert db(y[quiet]) - db(out[quiet]) > 3.0  # white noise: about 4 dB down
    assert abs(db(out[tone]) - db(y[tone])) < 0.2  # 26 dB above the noise: untouched
    assert abs(np.corrcoef(out[tone], y[tone])[0, 1]) > 0.999


def test_digital_silence_and_frame_sizes():
    out = run(np.zeros(5000, np.float32), 700)
    assert np.array_equal(out, np.zeros(5000, np.float32))
    assert NoiseReducer(8000).n == 256 and NoiseReducer(22050).n == 512
    assert NoiseReducer(48000).n == 2048 and NoiseReducer(10).n == 16


def test_stream_denoises_before_resampling(tmp_path):
    """channel_blocks with a NoiseReducer is the reducer on the decoded channel, then
    soxr, in any block size."""
    from functools import partial

    from serfast.io.audio import channel_blocks

    y = np.stack([noisy_tones(9.0), noisy_tones(9.0, seed=1)], axis=1)
    path = str(tmp_path / "call.wav")
    sf.write(path, y, SR, subtype="FLOAT")
    expected = resample(run(y[:, 1], len(y)), SR, 22050)
    for block_seconds in (0.7, 30.0):
        reducer = partial(NoiseReducer, options=DenoiseOptions())
        blocks = list(channel_blocks(path, 1, 22050, block_seconds, reducer))
        np.testing.assert_array_equal(np.concatenate(blocks), expected)


def test_higher_percentile_and_over_subtraction_remove_more():
    y = noisy_tones()
    quiet = slice(9 * SR, 14 * SR)
    left = [np.std(run(y, 8000, DenoiseOptions(percentile=q))[quiet]) for q in (5, 20, 50)]
    assert left[0] > left[1] > left[2]
    left = [np.std(run(y, 8000, DenoiseOptions(over_subtraction=b))[quiet]) for b in (1, 4, 16)]
    assert left[0] > left[1] > left[2]
    # the gain floor bounds the loss: 0.02 of the power, 17 dB
    assert left[2] > np.std(y[quiet]) * np.sqrt(0.02) * 0.9
