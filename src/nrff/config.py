"""Typed configuration of an encode, and the named presets.

Defaults follow the paper and the published code; ``fast`` is our own short
schedule (see docs/performance.md for what it costs in quality).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

from nrff.errors import InputError
from nrff.fields.models import get_method


@dataclass(frozen=True)
class KeyframeConfig:
    """Intra coding of the key frames (libx264 yuv444p CRF 20, as published)."""

    codec: str = "x264"
    crf: float = 20.0
    pix_fmt: str = "yuv444p"
    preset: str = "medium"
    mode: str = "intra"  # "intra": each key frame alone; "predicted": P-frame streams between key frames
    random_access: int = 8  # predicted: an IDR (a point decoding can start from) every so many GOPs


@dataclass(frozen=True)
class FieldConfig:
    """The networks: method, size budget and architecture."""

    method: str = "nrff"
    split: bool | None = None  # None: the method's default (on for nrff)
    ratio: float = 0.25  # fp16 network bytes / key-frame bytes, per GOP
    ratio_mode: str = "fixed"  # "probe": shift bytes between GOPs by how much each must explain
    target_bpp: float | None = None  # siren: size the networks for this bpp
    hidden_layers: int = 1
    reuse: int = 2  # the hidden layer is applied this many times (shared weights)
    quant_bits: int | None = None  # None: fp16 weights; k: k-bit grid + entropy coding (bitstream v2)
    size_bits: float | None = None  # bits per parameter assumed when sizing networks (default: 16 or k - 1)

    @property
    def bytes_per_param(self) -> float:
        if self.size_bits is not None:
            return self.size_bits / 8
        return 2.0 if self.quant_bits is None else max(self.quant_bits - 1, 1) / 8


@dataclass(frozen=True)
class TrainConfig:
    """The fitting schedule. An epoch visits each non-key frame twice."""

    epochs: int = 5000
    lr: float | None = None  # None: the method's learning rate from the paper
    warmup: float = 0.2  # fraction of steps with a linear warm-up
    final_lr: float = 0.0  # cosine decay ends at this fraction of lr
    grad_clip: float = 0.1  # per-GOP gradient-norm clip
    batch_frames: int = 1  # frames per GOP per step
    pixel_stride: int = 8  # each step sees a random 1/stride of the rows and of the columns
    amp: bool = True  # bf16 autocast on CUDA (never on CPU)
    log_every: int = 50  # steps between host syncs (progress, divergence checks)
    refresh_every: int = 50  # nrff-single: steps between re-renders of the reference chain
    seed: int = 0
    guard: bool = True  # detect divergence per GOP and roll back with a lower lr
    qat_start: float = 0.8  # with quantised weights: fraction of steps before fake quantisation starts
    zero_output: bool = False  # start the output layers at zero: zero flow, even mix, no residual (not in the paper)
    # The published code zeroes gradients once per epoch, so they accumulate (and are clipped
    # in place) over the epoch's steps. Off by default (each step its own gradient); on, it
    # reproduces that code (a resumed run then restarts the epoch's accumulation).
    accumulate: bool = False


@dataclass(frozen=True)
class EncodeConfig:
    gop: int = 5
    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    keyframes: KeyframeConfig = dataclasses.field(default_factory=KeyframeConfig)
    device: str = "auto"
    preset: str = "paper"

    def validate(self) -> None:
        spec = get_method(self.field.method)
        spec.resolve_split(self.field.split)
        if self.gop < 1:
            raise InputError(f"GOP length must be at least 1 (got {self.gop})")
        if self.gop > 1000:
            raise InputError(f"GOP length {self.gop} is too long (at most 1000)")
        if not 0 < self.field.ratio <= 100:
            raise InputError(f"--ratio must be in (0, 100] (got {self.field.ratio:g})")
        if self.field.target_bpp is not None and not 0 < self.field.target_bpp <= 48:
            raise InputError(f"--target-bpp must be in (0, 48] (got {self.field.target_bpp:g})")
        if not spec.uses_keyframes and self.field.target_bpp is None:
            raise InputError(f"{spec.name} has no key frames to size its networks from: give --target-bpp")
        if self.train.epochs < 1:
            raise InputError(f"--epochs must be at least 1 (got {self.train.epochs})")
        if self.train.pixel_stride < 1 or self.train.batch_frames < 1:
            raise InputError("pixel stride and batch size must be at least 1")
        if self.field.ratio_mode not in ("fixed", "probe"):
            raise InputError(f"unknown ratio mode {self.field.ratio_mode!r}; use fixed or probe")
        if self.keyframes.mode not in ("intra", "predicted"):
            raise InputError(f"unknown key-frame mode {self.keyframes.mode!r}; use intra or predicted")
        if not 1 <= self.keyframes.random_access <= 10000:
            raise InputError("--random-access must be between 1 and 10000 GOPs")
        if self.field.quant_bits is not None and not 2 <= self.field.quant_bits <= 16:
            raise InputError(f"--quant-bits must be between 2 and 16 (got {self.field.quant_bits})")
        if self.field.size_bits is not None and not 0.5 <= self.field.size_bits <= 32:
            raise InputError(f"size bits must be between 0.5 and 32 (got {self.field.size_bits:g})")
        if not 0 <= self.train.qat_start <= 1:
            raise InputError("qat_start must be in [0, 1]")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise InputError(f"unknown device {self.device!r}; use auto, cpu or cuda")

    @property
    def split(self) -> bool:
        return get_method(self.field.method).resolve_split(self.field.split)

    @property
    def lr(self) -> float:
        return self.train.lr if self.train.lr is not None else get_method(self.field.method).lr


PRESETS = ("paper", "fast")


def preset_train_config(name: str, method: str) -> TrainConfig:
    """The training schedule of a preset for a method.

    * ``paper``: the paper's schedule: 5,000 epochs, batch 1, 1/64 of the pixels
      per step, lr 1e-2 (multi-reference) or 1e-3 (SIREN); single-reference
      NRFF trains on the whole GOP per step for 25,000 epochs (the paper found
      batch 1 unstable for it).
    * ``fast``: a short schedule for previews and CPU use (see docs/performance.md).
    """
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    spec = get_method(method)
    if spec.kind == "nerv":  # the NRFF paper ran NeRV for 1,500 epochs
        return TrainConfig(epochs=1500 if name == "paper" else 150, warmup=0.2, log_every=25)
    if name == "paper":
        if spec.references == "single":
            return TrainConfig(epochs=25000, batch_frames=64)
        return TrainConfig(epochs=5000)
    # fast: our own; zero-initialised outputs start every frame as a copy of its references
    if spec.references == "single":
        return TrainConfig(epochs=600, batch_frames=64, pixel_stride=4, log_every=25, refresh_every=25, zero_output=True)
    if spec.references == "none":
        return TrainConfig(epochs=300, pixel_stride=4, log_every=25)
    return TrainConfig(epochs=300, pixel_stride=4, log_every=25, zero_output=True)


def with_overrides(cfg: TrainConfig, **changes) -> TrainConfig:
    """Apply the options a user gave explicitly (``None`` means not given)."""
    return replace(cfg, **{k: v for k, v in changes.items() if v is not None})
