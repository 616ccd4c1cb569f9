"""NeRV (Chen et al., "NeRV: Neural Representations for Videos", NeurIPS 2021), as a baseline.

A frame index t in [0, 1] goes through a positional encoding
``[sin(1.25^i pi t), cos(1.25^i pi t)]`` (80 frequencies), a two-layer MLP to a
small ``C x h0 x w0`` feature map, then NeRV blocks
``conv3x3(C_i -> 4 C_(i+1)) -> PixelShuffle(2) -> GELU`` that double the
resolution each, and a 1x1 convolution with a sigmoid to RGB. The frame is
rendered at ``h0 2^k x w0 2^k`` and cropped to the video size. Trained with
``0.7 L1 + 0.3 (1 - SSIM)`` and Adam, as in the paper. One network holds the
whole clip; its weights go into the same ``.nrff`` container as nrff's, so
its bytes are measured the same way (fp16, or quantised + entropy-coded).

Our architecture rule, written from the paper's description but scaled down
so that NeRV can be sized to nrff's few kilobytes: ``k`` blocks such that the
first feature map has a shorter side of at most 4, channels halving every
second block, stem MLP width 2C (8 to 64). Everything follows from
(height, width, C), so the bitstream stores only C (as the GOP's width).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

FREQUENCIES = 80
BASE = 1.25


@dataclass(frozen=True)
class NervLayout:
    height: int
    width: int
    channels: int  # C: channels of the first feature map

    @property
    def blocks(self) -> int:
        return max(1, math.ceil(math.log2(max(min(self.height, self.width) / 4, 2))))

    @property
    def stem(self) -> int:
        return min(max(2 * self.channels, 8), 64)

    @property
    def start(self) -> tuple[int, int]:
        scale = 2**self.blocks
        return math.ceil(self.height / scale), math.ceil(self.width / scale)

    def block_channels(self) -> list[int]:
        return [max(self.channels >> (i // 2), 4) for i in range(self.blocks + 1)]

    def shapes(self) -> list[tuple[int, ...]]:
        h0, w0 = self.start
        ch = self.block_channels()
        stem = self.stem
        shapes: list[tuple[int, ...]] = [(stem, 2 * FREQUENCIES), (stem,), (ch[0] * h0 * w0, stem), (ch[0] * h0 * w0,)]
        for i in range(self.blocks):
            shapes += [(4 * ch[i + 1], ch[i], 3, 3), (4 * ch[i + 1],)]
        shapes += [(3, ch[-1], 1, 1), (3,)]
        return shapes

    def param_count(self) -> int:
        return sum(math.prod(s) for s in self.shapes())


def time_encoding(t: torch.Tensor) -> torch.Tensor:
    """``[B]`` times in [0, 1] -> ``[B, 160]`` (NeRV's sin/cos with base 1.25)."""
    freqs = BASE ** torch.arange(FREQUENCIES, device=t.device, dtype=torch.float32) * math.pi
    phase = t.float()[:, None] * freqs
    return torch.stack((torch.sin(phase), torch.cos(phase)), dim=-1).reshape(t.shape[0], -1)


class Nerv(nn.Module):
    def __init__(self, layout: NervLayout, seed: int | None = None):
        super().__init__()
        self.layout = layout
        h0, w0 = layout.start
        ch = layout.block_channels()
        if seed is not None:
            torch.manual_seed(seed)  # default PyTorch init, made repeatable
        self.fc1 = nn.Linear(2 * FREQUENCIES, layout.stem)
        self.fc2 = nn.Linear(layout.stem, ch[0] * h0 * w0)
        self.convs = nn.ModuleList(nn.Conv2d(ch[i], 4 * ch[i + 1], 3, padding=1) for i in range(layout.blocks))
        self.head = nn.Conv2d(ch[-1], 3, 1)

    def tensors(self) -> list[torch.Tensor]:
        out = [self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias]
        for conv in self.convs:
            out += [conv.weight, conv.bias]
        return out + [self.head.weight, self.head.bias]

    @torch.no_grad()
    def load(self, tensors: Sequence[torch.Tensor]) -> None:
        for p, v in zip(self.tensors(), tensors, strict=True):
            p.copy_(v.reshape(p.shape))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Times ``[B]`` in [0, 1] -> frames ``[B, 3, H, W]`` in [0, 1]."""
        h0, w0 = self.layout.start
        x = F.gelu(self.fc1(time_encoding(t)))
        x = F.gelu(self.fc2(x)).reshape(t.shape[0], -1, h0, w0)
        for conv in self.convs:
            x = F.gelu(F.pixel_shuffle(conv(x), 2))
        x = torch.sigmoid(self.head(x))
        return x[:, :, : self.layout.height, : self.layout.width]


def channels_for_bytes(height: int, width: int, budget: float, size_of) -> int:
    """The largest C whose stored weights (``size_of(layout)`` bytes) fit ``budget`` (at least 4)."""
    best = 4
    for c in range(4, 1025):
        if size_of(NervLayout(height, width, c)) > budget:
            break
        best = c
    return best


def frame_time(index: float, frames: int) -> float:
    return 0.0 if frames == 1 else index / (frames - 1)
