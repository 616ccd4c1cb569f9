"""What a method's ``fit`` is given and what it returns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from nrff.codec.weights import WeightCodec
from nrff.config import EncodeConfig
from nrff.encoder.checkpoint import Checkpoint
from nrff.gop import Gop
from nrff.methods.base import FieldShape
from nrff.progress import Reporter
from nrff.video.reader import VideoReader


@dataclass
class FitJob:
    """One encode's fitting problem: the clip, its GOPs and their network widths, the coded key frames."""

    config: EncodeConfig
    shape: FieldShape
    gops: list[Gop]
    units: list[int]  # per GOP (0: no network)
    video: VideoReader
    key_images: dict[int, np.ndarray]  # GOP index -> decoded key frame (what the fields warp)
    weight_codec: WeightCodec
    device: torch.device
    reporter: Reporter
    resumed: Checkpoint | None = None  # continue from this checkpoint
    save: Callable | None = None  # save(weights, next chunk, TrainerState | None) writes a checkpoint
    checkpoint_seconds: float = 60.0
    shard: Sequence[Gop] | None = None  # train only these GOPs (a torchrun rank's share)
    monitor: Callable | None = None  # monitor(trainer) after every logging window (benchmarks)


@dataclass
class FitOutcome:
    weights: dict[int, bytes]  # GOP index -> packed weights
    seconds: float
    steps: int
    recoveries: list[dict] = field(default_factory=list)
