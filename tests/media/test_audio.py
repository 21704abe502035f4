"""Audio windows and the log spectrogram, checked against scipy itself."""

import numpy as np
import pytest
from scipy import signal

from hearflow.media.audio import audio_input, audio_window, log_spectrogram
from hearflow.media.preprocess import PreprocessConfig

CFG = PreprocessConfig()


def scipy_reference(x, rate, cfg=CFG):
    _, _, s = signal.spectrogram(x, fs=rate, nperseg=cfg.nperseg, noverlap=cfg.noverlap)
    return np.log(s + cfg.log_eps) / cfg.log_divisor


def make_signal(shape, rate, seed):
    """Noise + a tone + a DC offset + a silent stretch (exercises the log epsilon)."""
    rng = np.random.default_rng(seed)
    n = shape[-1]
    t = np.arange(n) / rate
    x = 0.3 * rng.standard_normal(shape) + 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1
    x[..., n // 3 : n // 3 + 2000] = 0.0
    return x



@pytest.mark.parametrize(
    "rate, shape",
    [
        (22050, (66150,)),
        (44100, (3, 44100 * 3)),
        (16000, (2, 2, 30001)),
        (22050, (2, 1000)),
    ],
)
def test_spectrogram_equals_scipy(rate, shape):
    x = make_signal(shape, rate, seed=rate + len(shape))
    out = log_spectrogram(x, rate, CFG)
    ref = scipy_reference(x, rate)
    assert out.dtype == np.float32 and out.shape == ref.shape and out.flags.c_contiguous
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)
    # float32 input (what the readers hand over) gives the same result.
    x32 = x.astype(np.float32)
    ref32 = scipy_reference(x32.astype(np.float64), rate)
    np.testing.assert_allclose(log_spectrogram(x32, rate, CFG), ref32, rtol=0, atol=1e-5)


def test_spectrogram_shape_htf():
    x = make_signal((66150,), 22050, seed=0)
    assert log_spectrogram(x, 22050, CFG).shape == (257, 276)
    assert (CFG.spectrogram_bins, CFG.spectrogram_frames(22050)) == (257, 276)
    inp = audio_input(x, 22050, 1.5, CFG)
    assert inp.shape == (1, 257, 276) and inp.dtype == np.float32
    window = audio_window(x, 22050, 1.5, CFG)
    np.testing.assert_array_equal(inp[0], log_spectrogram(window, 22050, CFG))
    with pytest.raises(ValueError):
        log_spectrogram(np.zeros(100), 22050, CFG)


RATE = 1000  # small rate keeps these arrays tiny; the window is 3 s = 3000 samples
TRACK = np.arange(10 * RATE) / (10 * RATE)  # 10 s whose sample value × 10 is its own time


def start_time(window):
    return float(window[0]) * 10


@pytest.mark.parametrize(
    "placement, t, start",
    [
        ("centered", 5.0, 3.5),
        ("centered", 1.5, 0.0),
        ("centered", 0.5, 0.0),  # would start at -1 s: shifted to [0, 3] s
        ("centered", 9.8, 7.0),  # would end at 11.3 s: shifted to the last 3 s
        ("trailing", 5.0, 2.0),
        ("trailing", 10.0, 7.0),
        ("trailing", 8.5, 5.5),
    ],
)
def test_window_placement(placement, t, start):
    w = audio_window(TRACK, RATE, t, CFG, placement=placement)
    assert w.shape == (3000,) and w.dtype == np.float32
    assert start_time(w) == pytest.approx(start, abs=1e-4)
    # Contiguous samples: the window is one slice of the track.
    np.testing.assert_allclose(np.diff(w) * 10 * RATE, 1.0, atol=1e-2)


def test_trailing_window_never_uses_the_future():
    """A frame at 1 s with a trailing 3 s window gets [0, 1) s tiled, as the live engine does."""
    w = audio_window(TRACK, RATE, 1.0, CFG, placement="trailing")
    expected = np.tile(TRACK[:1000], 3)
    np.testing.assert_array_equal(w, expected.astype(np.float32))
    assert w.max() < 0.1  # nothing from after 1 s (values × 10 = time)


def test_placement_defaults_to_config():
    trailing = PreprocessConfig(audio_window="trailing")
    assert start_time(audio_window(TRACK, RATE, 5.0, trailing)) == pytest.approx(2.0, abs=1e-4)
    centred = audio_window(TRACK, RATE, 5.0, trailing, placement="centered")
    assert start_time(centred) == pytest.approx(3.5, abs=1e-4)


def test_short_audio_tiled_or_zero_padded():
    clip = np.linspace(-0.5, 0.5, 700)
    tiled = audio_window(clip, RATE, 0.2, CFG)
    np.testing.assert_array_equal(tiled, np.tile(clip, 5)[:3000].astype(np.float32))
    zeros = audio_window(clip, RATE, 0.2, PreprocessConfig(audio_pad="zeros"))
    np.testing.assert_array_equal(zeros[:700], clip.astype(np.float32))
    assert not zeros[700:].any() and zeros.shape == (3000,)
    empty = audio_window(np.zeros(0), RATE, 1.0, CFG)
    assert empty.shape == (3000,) and not empty.any()


def test_samples_clipped():
    loud = np.tile([2.0, -3.0, 0.25], 2000)
    w = audio_window(loud, RATE, 3.0, CFG)
    assert w.dtype == np.float32 and w.max() == 1.0 and w.min() == -1.0
    assert set(np.unique(w).tolist()) == {-1.0, 0.25, 1.0}
    assert loud.max() == 2.0  # the caller's track is not modified
