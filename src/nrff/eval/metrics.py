"""Quality and rate metrics, one convention everywhere.

* PSNR on RGB with an 8-bit peak, ``10 log10(255^2 / MSE)`` per frame, averaged
  over frames (the convention of the NRFF paper). A frame identical to its
  reference scores :data:`PSNR_CAP` (100 dB) instead of infinity.
* SSIM: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, on each RGB channel,
  averaged (pytorch-msssim); MS-SSIM likewise with its 5 standard scales (it
  needs frames whose shorter side exceeds 160 pixels; smaller frames get None).
* bpp = 8 * bytes / (frames * width * height), bytes being the whole file.
* BD-rate / BD-PSNR from the ``bjontegaard`` package with ``pchip``
  interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from pytorch_msssim import ms_ssim, ssim

from nrff.errors import InputError

PSNR_CAP = 100.0
MS_SSIM_MIN_SIDE = 161  # (win 11 - 1) * 2**4 < side


def psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    """PSNR in dB of one pair of uint8 frames (or stacks: computed over all samples)."""
    ref = np.asarray(reference, dtype=np.float64)
    dist = np.asarray(distorted, dtype=np.float64)
    mse = float(np.mean((ref - dist) ** 2))
    return psnr_from_mse(mse / 255.0**2)


def psnr_from_mse(mse: float) -> float:
    """PSNR for an MSE measured on a [0, 1] scale."""
    if mse <= 10 ** (-PSNR_CAP / 10):
        return PSNR_CAP
    return -10.0 * math.log10(mse)


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    arr = np.array(frames, copy=True)  # a private, writable copy for torch
    if arr.ndim == 3:
        arr = arr[None]
    return torch.from_numpy(arr).permute(0, 3, 1, 2).to(torch.float32) / 255.0


def ssim_per_frame(reference: np.ndarray, distorted: np.ndarray) -> list[float]:
    """SSIM of each frame (HxWx3 or NxHxWx3 uint8 arrays). Frames must be at least 11x11."""
    ref, dist = _to_tensor(reference), _to_tensor(distorted)
    if min(ref.shape[-2:]) < 11:
        raise InputError(f"SSIM needs frames of at least 11x11 pixels (got {ref.shape[-1]}x{ref.shape[-2]})")
    values = ssim(ref, dist, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5)
    return [float(v) for v in values]


def ms_ssim_per_frame(reference: np.ndarray, distorted: np.ndarray) -> list[float] | None:
    """MS-SSIM of each frame, or None when the frames are too small for 5 scales."""
    ref, dist = _to_tensor(reference), _to_tensor(distorted)
    if min(ref.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return None
    values = ms_ssim(ref, dist, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5)
    return [float(v) for v in values]


def bpp(num_bytes: int, frames: int, width: int, height: int) -> float:
    return 8.0 * num_bytes / (frames * width * height)


@dataclass
class QualityAccumulator:
    """Collects per-frame PSNR / SSIM / MS-SSIM while frames stream past."""

    with_ms_ssim: bool = True
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    ms_ssim: list[float] | None = field(default_factory=list)

    def add(self, reference: np.ndarray, distorted: np.ndarray) -> None:
        """Add one frame pair, or a stack of them."""
        ref = np.asarray(reference)
        dist = np.asarray(distorted)
        if ref.shape != dist.shape:
            raise InputError(f"cannot compare frames of shapes {ref.shape} and {dist.shape}")
        if ref.ndim == 3:
            ref, dist = ref[None], dist[None]
        for r, d in zip(ref, dist):
            self.psnr.append(psnr(r, d))
        self.ssim.extend(ssim_per_frame(ref, dist))
        if self.with_ms_ssim and self.ms_ssim is not None:
            values = ms_ssim_per_frame(ref, dist)
            self.ms_ssim = None if values is None else self.ms_ssim + values

    @property
    def frames(self) -> int:
        return len(self.psnr)

    def summary(self) -> dict[str, float | None]:
        if not self.psnr:
            raise InputError("no frames were compared")
        return {
            "psnr": float(np.mean(self.psnr)),
            "ssim": float(np.mean(self.ssim)),
            "ms_ssim": float(np.mean(self.ms_ssim)) if self.ms_ssim else None,
        }


def compare_videos(reference: Iterable[np.ndarray], distorted: Iterable[np.ndarray],
                   progress: Callable[[int], None] | None = None) -> QualityAccumulator:
    """Compare two frame streams frame by frame; they must have equal length and size.
    ``progress(n)`` is told the frames compared so far."""
    acc = QualityAccumulator()
    ref_it, dist_it = iter(reference), iter(distorted)
    index = 0
    while True:
        r = next(ref_it, None)
        d = next(dist_it, None)
        if r is None and d is None:
            break
        if r is None or d is None:
            longer = "distorted" if r is None else "reference"
            raise InputError(f"the videos differ in length: the {longer} video has more than {index} frames")
        if r.shape != d.shape:
            raise InputError(
                f"frame {index}: reference is {r.shape[1]}x{r.shape[0]} but distorted is {d.shape[1]}x{d.shape[0]}"
            )
        acc.add(r, d)
        index += 1
        if progress is not None:
            progress(index)
    return acc


@dataclass(frozen=True)
class RDPoint:
    """One operating point of a rate-distortion curve."""

    bpp: float
    psnr: float
    ssim: float | None = None
    label: str = ""


def _curve(points: Sequence[RDPoint], metric: str) -> tuple[list[float], list[float]]:
    pts = sorted(points, key=lambda p: p.bpp)
    rates = [p.bpp for p in pts]
    values = [getattr(p, metric) for p in pts]
    if len(pts) < 4:
        raise InputError(f"BD metrics need at least 4 points per curve (got {len(pts)})")
    if any(v is None for v in values):
        raise InputError(f"every point needs a {metric} value")
    if len(set(rates)) != len(rates):
        raise InputError("BD metrics need distinct rates")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise InputError(f"BD metrics need {metric} to rise with the rate; this curve does not: "
                         + ", ".join(f"{r:.4g} bpp -> {v:.4g}" for r, v in zip(rates, values)))
    return rates, values


def _check_overlap(da: list[float], dt: list[float], metric: str) -> None:
    if min(da[-1], dt[-1]) <= max(da[0], dt[0]):
        raise InputError(f"the two curves do not overlap in {metric}; BD metrics are undefined")


def bd_rate(anchor: Sequence[RDPoint], test: Sequence[RDPoint], metric: str = "psnr") -> float:
    """Bjontegaard delta rate of ``test`` against ``anchor`` in percent (negative = fewer bits)."""
    import bjontegaard as bd

    ra, da = _curve(anchor, metric)
    rt, dt = _curve(test, metric)
    _check_overlap(da, dt, metric)
    return float(bd.bd_rate(ra, da, rt, dt, method="pchip", require_matching_points=False))


def bd_psnr(anchor: Sequence[RDPoint], test: Sequence[RDPoint], metric: str = "psnr") -> float:
    """Bjontegaard delta quality of ``test`` against ``anchor`` (dB for PSNR)."""
    import bjontegaard as bd

    ra, da = _curve(anchor, metric)
    rt, dt = _curve(test, metric)
    _check_overlap(ra, rt, "rate")
    return float(bd.bd_psnr(ra, da, rt, dt, method="pchip", require_matching_points=False))
