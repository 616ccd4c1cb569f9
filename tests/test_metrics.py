"""Metrics against independent implementations: numpy PSNR, scikit-image SSIM, scipy pchip BD-rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator
from skimage.metrics import structural_similarity

from nrff import InputError
from nrff.eval.metrics import (
    PSNR_CAP,
    QualityAccumulator,
    RDPoint,
    bd_psnr,
    bd_rate,
    compare_videos,
    ms_ssim_per_frame,
    psnr,
    ssim_per_frame,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def numpy_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10.0 * np.log10(255.0**2 / mse)


def skimage_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=data_range, channel_axis=2
    )


def distort(frame: np.ndarray, seed: int, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = frame.astype(np.float64) + rng.normal(0.0, sigma, frame.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def pair(sample_frames):
    ref = sample_frames[3]
    return ref, distort(ref, 0, 6.0)


@pytest.mark.parametrize("sigma", [1.0, 6.0, 25.0])
def test_psnr_matches_numpy(sample_frames, sigma):
    ref = sample_frames[5]
    dist = distort(ref, 7, sigma)
    assert abs(psnr(ref, dist) - numpy_psnr(ref, dist)) < 1e-3


def test_psnr_of_different_frames_matches_numpy(sample_frames):
    a, b = sample_frames[0], sample_frames[15]
    value = psnr(a, b)
    assert abs(value - numpy_psnr(a, b)) < 1e-3
    assert value < 40.0


def test_psnr_is_averaged_over_frames(sample_frames):
    refs = sample_frames[:4]
    dists = np.stack([distort(f, i, 2.0 + 6 * i) for i, f in enumerate(refs)])
    acc = QualityAccumulator(with_ms_ssim=False)
    acc.add(refs, dists)
    per_frame = [numpy_psnr(r, d) for r, d in zip(refs, dists)]
    np.testing.assert_allclose(acc.psnr, per_frame, atol=1e-3)
    assert abs(acc.summary()["psnr"] - np.mean(per_frame)) < 1e-3
    # the mean of per-frame PSNR, not the PSNR of the mean error
    assert abs(acc.summary()["psnr"] - numpy_psnr(refs, dists)) > 0.1


def test_ssim_matches_skimage_uint8(pair):
    ref, dist = pair
    (value,) = ssim_per_frame(ref, dist)
    expected = skimage_ssim(ref, dist, 255)
    assert 0.5 < expected < 0.99
    assert abs(value - expected) < 1e-3


def test_ssim_matches_skimage_float(sample_frames):
    ref, dist = sample_frames[0], sample_frames[4]  # real motion, not noise
    (value,) = ssim_per_frame(ref, dist)
    expected = skimage_ssim(ref.astype(np.float64) / 255.0, dist.astype(np.float64) / 255.0, 1.0)
    assert expected < 0.98
    assert abs(value - expected) < 1e-3


def test_ssim_per_frame_of_a_stack(sample_frames):
    refs = sample_frames[:3]
    dists = np.stack([distort(f, i, 4.0 * (i + 1)) for i, f in enumerate(refs)])
    values = ssim_per_frame(refs, dists)
    expected = [skimage_ssim(r, d, 255) for r, d in zip(refs, dists)]
    np.testing.assert_allclose(values, expected, atol=1e-3)
    assert values[0] > values[1] > values[2]


def test_identical_frames_hit_the_cap(sample_frames):
    frame = sample_frames[2]
    assert psnr(frame, frame.copy()) == PSNR_CAP == 100.0
    acc = compare_videos(iter(sample_frames[:2]), iter(sample_frames[:2].copy()))
    summary = acc.summary()
    assert summary["psnr"] == PSNR_CAP
    assert abs(summary["ssim"] - 1.0) < 1e-9
    # one grey level off everywhere is 48.13 dB, nowhere near the cap
    off = frame.astype(np.int16) + 1
    off = np.where(off > 255, 254, off).astype(np.uint8)
    assert abs(psnr(frame, off) - numpy_psnr(frame, off)) < 1e-3


def test_ms_ssim_needs_large_frames(sample_frames):
    assert ms_ssim_per_frame(sample_frames[0], sample_frames[1]) is None  # 108 rows < 161
    big = np.tile(sample_frames[0], (2, 1, 1))  # 216x256
    (same,) = ms_ssim_per_frame(big, big)
    (moved,) = ms_ssim_per_frame(big, np.tile(sample_frames[8], (2, 1, 1)))
    assert abs(same - 1.0) < 1e-9
    assert moved < same


def test_compare_videos_refuses_length_and_size_mismatch(sample_frames):
    with pytest.raises(InputError, match="length"):
        compare_videos(iter(sample_frames[:3]), iter(sample_frames[:2]))
    with pytest.raises(InputError):
        compare_videos(iter(sample_frames[:2]), iter(sample_frames[:2, :100]))


# ---- BD-rate -------------------------------------------------------------------------------

ANCHOR = [RDPoint(0.05, 30.1), RDPoint(0.09, 32.6), RDPoint(0.17, 35.0), RDPoint(0.33, 37.2), RDPoint(0.61, 39.0)]
# a test codec that is better at low rates and worse at high rates, with fewer points
TEST = [RDPoint(0.041, 30.6), RDPoint(0.083, 33.4), RDPoint(0.19, 35.7), RDPoint(0.48, 38.4)]


def reference_bd_rate(anchor: list[RDPoint], test: list[RDPoint]) -> float:
    """BD-rate by the textbook: pchip of log-rate over PSNR, integrated over the common PSNR interval."""

    def curve(points):
        pts = sorted(points, key=lambda p: p.psnr)
        q = np.array([p.psnr for p in pts])
        log_r = np.log(np.array([p.bpp for p in pts]))
        return q, PchipInterpolator(q, log_r)

    qa, fa = curve(anchor)
    qt, ft = curve(test)
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    mean_diff = (ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo)
    return (math.exp(mean_diff) - 1.0) * 100.0


def test_bd_rate_scaled_rates_is_minus_ten_percent():
    test = [RDPoint(p.bpp * 0.9, p.psnr) for p in ANCHOR]
    assert bd_rate(ANCHOR, test) == pytest.approx(-10.0, abs=1e-9)
    worse = [RDPoint(p.bpp * 1.25, p.psnr) for p in ANCHOR]
    assert bd_rate(ANCHOR, worse) == pytest.approx(25.0, abs=1e-9)


def test_bd_rate_of_anchor_against_itself_is_zero():
    assert bd_rate(ANCHOR, ANCHOR) == pytest.approx(0.0, abs=1e-12)
    assert bd_psnr(ANCHOR, ANCHOR) == pytest.approx(0.0, abs=1e-12)


def test_bd_rate_matches_independent_pchip():
    expected = reference_bd_rate(ANCHOR, TEST)
    assert abs(expected) > 1.0  # a non-trivial case
    assert bd_rate(ANCHOR, TEST) == pytest.approx(expected, abs=1e-6)
    assert bd_rate(TEST, ANCHOR) == pytest.approx(reference_bd_rate(TEST, ANCHOR), abs=1e-6)


def test_bd_rate_ignores_point_order():
    shuffled = [ANCHOR[i] for i in (3, 0, 4, 1, 2)]
    assert bd_rate(shuffled, TEST) == pytest.approx(bd_rate(ANCHOR, TEST), abs=1e-12)


def test_bd_psnr_of_a_constant_gain():
    better = [RDPoint(p.bpp, p.psnr + 0.5) for p in ANCHOR]
    assert bd_psnr(ANCHOR, better) == pytest.approx(0.5, abs=1e-9)


def test_bd_rate_on_ssim():
    anchor = [RDPoint(p.bpp, p.psnr, ssim=0.80 + 0.03 * i) for i, p in enumerate(ANCHOR)]
    test = [RDPoint(p.bpp * 0.8, p.psnr, p.ssim) for p in anchor]
    assert bd_rate(anchor, test, "ssim") == pytest.approx(-20.0, abs=1e-9)


def test_bd_rate_needs_four_distinct_points():
    with pytest.raises(InputError, match="4 points"):
        bd_rate(ANCHOR[:3], TEST)
    with pytest.raises(InputError, match="distinct"):
        bd_rate(ANCHOR[:4] + [RDPoint(ANCHOR[0].bpp, 40.0)], TEST)
    with pytest.raises(InputError, match="ssim"):
        bd_rate(ANCHOR, TEST, "ssim")


def test_bd_rate_refuses_a_non_monotonic_curve_with_an_input_error():
    bumpy = [RDPoint(0.05, 30.6), RDPoint(0.1, 33.0), RDPoint(0.2, 32.5), RDPoint(0.5, 38.3)]
    with pytest.raises(InputError):
        bd_rate(bumpy, TEST)
