"""Planning an encode: how many bytes each GOP's networks get, and how wide they are.

* key-frame methods: stored network bytes ~ ``ratio`` x the GOP's key-frame bytes
  (the paper's rule, even widths); with ``target_bpp``, the bytes left after the
  key frames and the container, shared in proportion to the key-frame bytes;
* methods without key frames: the ``target_bpp`` budget shared in proportion to
  the GOP lengths;
* with a difficulty probe (``ratio_mode = "probe"``), each GOP's share is also
  scaled by :func:`probe_weights`, keeping the total the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from nrff.codec.container import overhead_bytes
from nrff.codec.weights import WeightCodec
from nrff.config import EncodeConfig
from nrff.errors import InputError
from nrff.gop import Gop
from nrff.methods.base import FieldShape, Method
from nrff.video.reader import VideoReader

# The share rule of the default and fast presets (docs/results.md, sections 2 and 3): on clips
# whose non-key frames differ from their nearest key frame by more than this (mean squared error
# as PSNR, uncoded frames), the networks get 0.5x the key-frame bytes instead of 0.25x. Measured:
# the two clips at 22.0 and 23.9 dB lose 0.05-0.3 dB with 0.5; the two at 14.3 and 19.5 dB gain
# 0.26-0.44 dB with it (and no more with 1.0).
HARD_MOTION_DB = 21.0
HARD_MOTION_SHARE = 0.5

MAX_WIDTH = 1024  # the widest network the planner sizes (the decode budget's limit, nrff.decoder.budget)


@dataclass
class SizingInputs:
    """What network sizing depends on."""

    config: EncodeConfig
    shape: FieldShape
    gops: Sequence[Gop]
    key_bytes: dict[int, int]  # GOP index -> its share of the key-frame bytes
    pixels: int  # per frame
    frames: int
    weight_codec: WeightCodec
    difficulty: dict[int, float] | None = None

    def size_of(self, units: int) -> float:
        """Expected stored bytes of one GOP's networks at a width (exact for fp16, an estimate
        for entropy-coded weights: the side information plus ``size_bits`` per parameter)."""
        return self.weight_codec.estimate(self.shape.shapes(units), self.config.field.bytes_per_param)

    @property
    def target_bpp(self) -> float | None:
        return self.config.field.target_bpp

    @property
    def target_bytes(self) -> float:
        """Bytes the target bpp leaves for key frames and networks once the container is paid."""
        return self.target_bpp * self.frames * self.pixels / 8 - container_overhead(self.config, self.shape.method, len(self.gops))


def container_overhead(config: EncodeConfig, method: Method, gops: int) -> int:
    """The container's own bytes for an encode of ``gops`` GOPs with ``config``."""
    keyframes = config.keyframes.mode if method.uses_keyframes else None
    return overhead_bytes(gops, keyframes, config.keyframes.random_access)


def fill_units(size_of, shares: list[float], budget: float, minimum: int = 1, maximum: int = MAX_WIDTH) -> list[int]:
    """Largest widths within each share, then grow one unit at a time while the total
    stays within ``budget``, so the file lands just under its target (never wider than ``maximum``)."""
    units = []
    for share in shares:
        w = minimum
        while w < maximum and size_of(w + 1) <= share:
            w += 1
        units.append(w)
    total = sum(size_of(w) for w in units)
    grew = True
    while grew:
        grew = False
        for i in range(len(units)):
            if units[i] >= maximum:
                continue
            extra = size_of(units[i] + 1) - size_of(units[i])
            if total + extra <= budget:
                units[i] += 1
                total += extra
                grew = True
    return units


def default_units(method: Method, p: SizingInputs) -> list[int]:
    """Per-GOP widths by the rules in the module docstring (0 for a GOP without a network)."""
    trained = [g for g in p.gops if method.needs_network(g.length)]
    if not trained:
        return [0] * len(p.gops)
    scale = {g.index: 1.0 for g in trained}
    if p.difficulty is not None and method.uses_keyframes:
        raw = probe_weights({g.index: p.difficulty[g.index] for g in trained})
        norm = sum(p.key_bytes[g.index] for g in trained) / sum(p.key_bytes[g.index] * raw[g.index] for g in trained)
        scale = {g: w * norm for g, w in raw.items()}
    if method.uses_keyframes and p.target_bpp is None:
        units = {g.index: _units_for_ratio(p, p.config.field.ratio * p.key_bytes[g.index] * scale[g.index]) for g in trained}
        return [units.get(g.index, 0) for g in p.gops]
    total = p.target_bytes
    if method.uses_keyframes:
        total -= sum(p.key_bytes.values())
        weight = {g.index: p.key_bytes[g.index] * scale[g.index] for g in trained}
    else:
        weight = {g.index: g.length for g in trained}
    if total < p.size_of(2) * len(trained):
        raise InputError(f"--target-bpp {p.target_bpp:g} leaves no room for networks")
    norm = sum(weight.values())
    fitted = fill_units(p.size_of, [total * weight[g.index] / norm for g in trained], total,
                        minimum=2 if method.uses_keyframes else 1)
    units = dict(zip((g.index for g in trained), fitted))
    return [units.get(g.index, 0) for g in p.gops]


def _units_for_ratio(p: SizingInputs, budget: float) -> int:
    if p.config.field.quant_bits is None:
        return p.shape.units_for_bytes(budget, p.config.field.bytes_per_param)
    return min(range(2, 1025, 2), key=lambda w: abs(p.size_of(w) - budget))


def read_keyframes(video: VideoReader, gops: Sequence[Gop]) -> dict[int, np.ndarray]:
    """The original (uncoded) key frame of every GOP, in one pass over the video."""
    wanted = {g.key_frame: g.index for g in gops}
    found = {}
    for i, frame in enumerate(video):
        if i in wanted:
            found[wanted[i]] = frame
    return found


def measured_share(config: EncodeConfig, method: Method, video: VideoReader,
                   gops: Sequence[Gop]) -> tuple[EncodeConfig, dict[int, float] | None]:
    """The configuration with the share its rule gives for this clip, and the per-GOP
    difficulty for ``ratio_mode = "probe"`` (None otherwise). One pass over the video, only
    when a rule or the probe needs it."""
    rule = config.field.share_rule == "motion" and config.field.ratio < HARD_MOTION_SHARE
    probe = config.field.ratio_mode == "probe"
    if not method.uses_keyframes or not (rule or probe):
        return config, None
    difficulty = probe_difficulty(video, gops)
    mse = [d for d in difficulty.values() if d > 0]
    if rule and mse and 10 * math.log10(255**2 / (sum(mse) / len(mse))) < HARD_MOTION_DB:
        config = replace(config, field=replace(config.field, ratio=HARD_MOTION_SHARE))
    return config, difficulty if probe else None


def probe_difficulty(video: VideoReader, gops: Sequence[Gop]) -> dict[int, float]:
    """How much each GOP's networks must explain, from one pass over the video: the mean
    squared error of its non-key frames against the closer of their two reference key
    frames (uncoded). Motion and occlusion raise it; a static GOP has almost none."""
    keys = read_keyframes(video, gops)
    gop_of = {f: g for g in gops for f in range(g.start, g.stop)}
    total: dict[int, float] = {g.index: 0.0 for g in gops}
    count: dict[int, int] = {g.index: 0 for g in gops}
    last = len(gops) - 1
    for index, frame in enumerate(video):
        g = gop_of[index]
        if index == g.key_frame:
            continue
        neighbour = g.index - 1 if index < g.key_frame else g.index + 1
        neighbour = min(max(neighbour, 0), last)
        errors = [np.mean((frame.astype(np.float32) - keys[k].astype(np.float32)) ** 2) for k in {g.index, neighbour}]
        total[g.index] += float(min(errors))
        count[g.index] += 1
    return {g: total[g] / count[g] if count[g] else 0.0 for g in total}


def probe_weights(difficulty: dict[int, float], exponent: float = 0.5, spread: float = 4.0) -> dict[int, float]:
    """Per-GOP multipliers of the network budget, ``(d / mean d) ^ exponent`` clipped to
    [1/spread, spread]; the caller renormalises so that the total budget is unchanged."""
    values = [d for d in difficulty.values() if d > 0]
    if not values:
        return {g: 1.0 for g in difficulty}
    mean = float(np.mean(values))
    return {g: float(np.clip((max(d, 1e-6) / mean) ** exponent, 1 / spread, spread)) for g, d in difficulty.items()}
