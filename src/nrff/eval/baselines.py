"""Conventional anchors: x264, x265 and SVT-AV1 on a whole clip, measured like nrff.

The anchors are coded through PyAV with a closed GOP of the same length as
nrff's (x264/x265: ``keyint = min-keyint = GOP``, no scene cut, no open GOP;
SVT-AV1: ``keyint=GOP:irefresh-type=2:scd=0``), B-frames (AV1: a random-access
prediction structure) on unless asked otherwise, single-threaded for
reproducible bytes. The rate is the raw stream (Annex-B without SEI info for
H.26x, low-overhead OBUs for AV1), the quality is measured on RGB after
decoding those very bytes, with the same metrics as nrff.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import av
import numpy as np

from nrff.codec import svtav1
from nrff.codec.h26x import CODECS, H26xSettings
from nrff.errors import InputError
from nrff.fsutil import atomic_write_bytes
from nrff.eval.metrics import QualityAccumulator, RDPoint, bpp
from nrff.video.colour import frame_to_rgb
from nrff.video.reader import VideoReader


@dataclass
class BaselineResult:
    codec: str
    preset: str
    crf: float
    gop: int
    pix_fmt: str
    bframes: bool
    frames: int
    width: int
    height: int
    bytes: int
    bpp: float
    psnr: float
    ssim: float
    ms_ssim: float | None
    encode_seconds: float
    packet_sizes: list[int] = field(default_factory=list)
    psnr_per_frame: list[float] = field(default_factory=list)
    method: str = "baseline"
    device: str = "cpu"

    def report(self) -> dict:
        out = asdict(self)
        out["method"] = self.codec
        return out

    def point(self) -> RDPoint:
        return RDPoint(self.bpp, self.psnr, self.ssim, f"{self.codec} crf {self.crf:g}")


class FrameList:
    """A ``recon_writer`` that keeps the decoded frames in a list."""

    def __init__(self, frames: list):
        self.frames = frames

    def write(self, frame: np.ndarray) -> None:
        self.frames.append(frame)


ANCHOR_CODECS = (*CODECS, "svtav1")
DEFAULT_PRESETS = {"x264": "medium", "x265": "medium", "svtav1": "4"}
AnchorSettings = H26xSettings | svtav1.Av1Settings


def anchor_settings(codec: str, crf: float = 23.0, preset: str | None = None, gop: int = 5, pix_fmt: str = "yuv420p",
                    bframes: bool = True) -> AnchorSettings:
    """The settings of an anchor by codec name (``preset`` None: medium for x264/x265, 4 for SVT-AV1)."""
    if codec not in ANCHOR_CODECS:
        raise InputError(f"unknown codec {codec!r}; choose one of {', '.join(ANCHOR_CODECS)}")
    preset = preset if preset is not None else DEFAULT_PRESETS[codec]
    if codec == "svtav1":
        if pix_fmt != "yuv420p":
            raise InputError(f"SVT-AV1 codes yuv420p only, not {pix_fmt}")
        return svtav1.Av1Settings(crf=crf, preset=svtav1.parse_preset(preset), gop=gop, low_delay=not bframes)
    return H26xSettings(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, gop=gop, bframes=bframes)


def _counted(frames, tick: Callable[[int], None]):
    for i, frame in enumerate(frames, 1):
        yield frame
        tick(i)


def run_baseline(
    video: VideoReader,
    settings: AnchorSettings,
    *,
    recon_writer=None,
    stream_output: str | os.PathLike | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> BaselineResult:
    """Code ``video`` with x264, x265 or SVT-AV1, decode the bytes, and measure them.

    ``recon_writer`` (an open :class:`~nrff.video.writer.VideoWriter` or a
    :class:`FrameList`) receives the decoded frames. ``stream_output``: also
    write the measured stream there (atomically; ``force`` replaces an
    existing file), so that a benchmark keeps the very stream it reports.
    ``progress(n)`` is told the frames done so far, out of ``2 * frames``
    (each frame is encoded, then decoded and measured).
    """
    tick = progress or (lambda n: None)
    info = video.info
    settings.validate(info.width, info.height)
    started = time.perf_counter()
    packets = settings.encode(_counted(video, tick), info.width, info.height, info.fps)
    encode_seconds = time.perf_counter() - started
    stream = b"".join(packets)
    if stream_output is not None:
        atomic_write_bytes(stream_output, stream, force=force)

    acc = QualityAccumulator()
    count = 0
    try:
        decoded = settings.decode(stream, info.width, info.height)
        for reference, frame in zip(video, decoded, strict=False):
            rgb = frame_to_rgb(frame, trust_tags=False)
            acc.add(reference, rgb)
            if recon_writer is not None:
                recon_writer.write(rgb)
            count += 1
            tick(info.frames + count)
    except av.FFmpegError as exc:  # pragma: no cover - our own stream must decode
        raise InputError(f"decoding the {settings.codec} stream failed: {exc}") from None
    if count != info.frames:
        raise InputError(f"{settings.codec} returned {count} frames for {info.frames} input frames")
    quality = acc.summary()
    return BaselineResult(
        codec=settings.codec,
        preset=str(settings.preset),
        crf=settings.crf,
        gop=settings.gop or 0,
        pix_fmt=settings.pix_fmt,
        bframes=settings.bframes,
        frames=info.frames,
        width=info.width,
        height=info.height,
        bytes=len(stream),
        bpp=bpp(len(stream), info.frames, info.width, info.height),
        psnr=quality["psnr"],
        ssim=quality["ssim"],
        ms_ssim=quality["ms_ssim"],
        encode_seconds=encode_seconds,
        packet_sizes=[len(p) for p in packets],
        psnr_per_frame=list(acc.psnr),
    )


def crf_sweep(video: VideoReader, settings: AnchorSettings, crfs: Sequence[float]) -> list[BaselineResult]:
    """The rate-distortion curve of an anchor: one run per CRF, sorted by rate."""
    from dataclasses import replace

    results = [run_baseline(video, replace(settings, crf=float(c))) for c in crfs]
    return sorted(results, key=lambda r: r.bpp)


def match_bpp(video: VideoReader, settings: AnchorSettings, target_bpp: float) -> BaselineResult:
    """The anchor run whose rate is closest to ``target_bpp`` (bisection on CRF)."""
    from dataclasses import replace

    lo, hi = 0.0, 63.0 if settings.codec == "svtav1" else 51.0
    best: BaselineResult | None = None
    for _ in range(7):
        mid = round((lo + hi) / 2)
        result = run_baseline(video, replace(settings, crf=float(mid)))
        if best is None or abs(np.log(result.bpp / target_bpp)) < abs(np.log(best.bpp / target_bpp)):
            best = result
        if result.bpp > target_bpp:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1:
            break
    assert best is not None
    return best
