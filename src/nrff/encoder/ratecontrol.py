"""Rate control: the key-frame quality that lands an encode at ``--target-bpp``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from nrff.codec.keyframes import keyframe_codec
from nrff.config import EncodeConfig
from nrff.encoder.keyframes import CodedKeyframes, code_keyframes
from nrff.encoder.plan import container_overhead
from nrff.errors import InputError
from nrff.gop import Gop
from nrff.methods.base import Method
from nrff.progress import Reporter
from nrff.video.reader import VideoInfo


def rate_control(config: EncodeConfig, method: Method, info: VideoInfo, originals: dict[int, np.ndarray],
                 gops: Sequence[Gop], reporter: Reporter) -> tuple[EncodeConfig, CodedKeyframes]:
    """Choose the key-frame CRF for ``target_bpp``: the key frames take about
    1 / (1 + ratio) of the bytes (a secant search on log-bytes over CRF, on the codec's
    CRF grid: x264 and x265 take hundredths, SVT-AV1 whole numbers), and the networks are
    then sized to the exact remainder (see :mod:`nrff.encoder.plan`)."""
    codec = keyframe_codec(config.keyframes.codec)
    low, high = codec.crf_range

    def snap(crf: float) -> float:
        return float(round(min(max(crf, low), high), codec.crf_decimals))

    target = config.field.target_bpp * info.frames * info.pixels / 8 - container_overhead(config, method, len(gops))
    if target <= 0:
        raise InputError(f"--target-bpp {config.field.target_bpp:g} is too low: the container alone needs more")
    goal = target / (1 + config.field.ratio)
    quiet = Reporter(False)
    tried: dict[float, CodedKeyframes] = {}

    def cost(crf: float) -> float:
        crf = snap(crf)
        if crf not in tried:
            tried[crf] = code_keyframes(replace(config.keyframes, crf=crf), originals, gops, info.width, info.height, quiet)
        return math.log(tried[crf].total / goal)

    with reporter.task("rate control", 8, unit="trials") as update:
        a, b = config.keyframes.crf, config.keyframes.crf + 6
        fa, fb = cost(a), cost(b)
        for i in range(8):
            update(i + 1)
            if abs(fb) < 0.01 or fa == fb:
                break
            a, b, fa = b, snap(b - fb * (b - a) / (fb - fa)), fb
            fb = cost(b)
        best = min(tried, key=lambda c: (abs(cost(c)), c))
    if tried[best].total >= target:
        raise InputError(f"--target-bpp {config.field.target_bpp:g} is too low: the key frames alone need "
                         f"{8 * tried[best].total / (info.frames * info.pixels):.4f} bpp")
    return replace(config, keyframes=replace(config.keyframes, crf=best)), tried[best]
