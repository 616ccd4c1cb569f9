"""Positional encoding of (t, y, x), computed in fp32, and separable by axis.

Per axis a with extent ``size_a`` (GOP length, height, width at encode time),
``n_a = floor(log2(size_a))`` frequencies ``2^0 ... 2^(n_a - 1)`` (no pi), as in
the published code. The canonical feature vector is

    [t, y, x, cos(f * t), cos(f * y), cos(f * x), sin(f * t), sin(f * y), sin(f * x)]

of size ``E = 3 + 2 * sum(n_a)``. Every feature depends on one axis only, so
the first linear layer splits into three small per-axis products that are
summed by broadcasting: on a grid of R rows and C columns this costs
O(R + C) instead of O(R * C * E), and the E-wide encoding is never stored
per pixel. Frequencies come from the *encode-time* sizes (stored in the
bitstream), so a field sampled on a denser grid stays the same function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

AXES = ("t", "y", "x")


def frequency_count(size: int) -> int:
    return int(math.floor(math.log2(size))) if size >= 1 else 0


@dataclass(frozen=True)
class PositionalEncoding:
    counts: tuple[int, int, int]  # frequencies for t, y, x

    @classmethod
    def for_sizes(cls, gop_length: int, height: int, width: int) -> PositionalEncoding:
        return cls((frequency_count(gop_length), frequency_count(height), frequency_count(width)))

    @property
    def size(self) -> int:
        return 3 + 2 * sum(self.counts)

    def rows(self, axis: int) -> list[int]:
        """Indices of the canonical features that depend on ``axis``, in :meth:`features` order."""
        total = sum(self.counts)
        offset = sum(self.counts[:axis])
        n = self.counts[axis]
        cos = [3 + offset + k for k in range(n)]
        sin = [3 + total + offset + k for k in range(n)]
        return [axis] + cos + sin

    def features(self, axis: int, coords: torch.Tensor) -> torch.Tensor:
        """Encode coordinates of one axis: ``[..., n] -> [..., n, 1 + 2 n_a]`` (fp32)."""
        c = coords.float().unsqueeze(-1)
        n = self.counts[axis]
        if n == 0:
            return c
        freqs = torch.pow(2.0, torch.arange(n, device=coords.device, dtype=torch.float32))
        phase = c * freqs
        return torch.cat([c, torch.cos(phase), torch.sin(phase)], dim=-1)

    def full(self, t: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The canonical E-dimensional encoding of matching 1-D coordinates (for tests and docs)."""
        feats = [self.features(a, c) for a, c in enumerate((t, y, x))]
        out = torch.empty(*t.shape, self.size, dtype=torch.float32, device=t.device)
        for axis, f in enumerate(feats):
            out[..., self.rows(axis)] = f
        return out
