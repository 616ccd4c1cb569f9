"""Groups of pictures: how frames are split, which frame is key, who refers to whom.

The split follows the published code: ``n = max(round(N / T), 1)`` GOPs with
boundaries ``round(linspace(0, N, n + 1))``, so GOPs are balanced (a 16-frame
clip at T = 5 becomes 5 + 6 + 5, never 5 + 5 + 5 + 1). The key frame of a GOP
is its middle frame ``(start + stop) // 2``.

References (multi-reference NRFF): every non-key frame warps its own key frame
and the key frame of the neighbouring GOP on its side (the previous GOP for
frames before the key, the next GOP after it); the first and last GOPs fall
back to their own key frame. Single-reference NRFF warps recursively outward
from the key frame, each frame from its (reconstructed) neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nrff.errors import InputError


@dataclass(frozen=True)
class Gop:
    index: int
    start: int  # first frame (global index)
    length: int
    key: int  # key frame, local index within the GOP

    @property
    def stop(self) -> int:
        return self.start + self.length

    @property
    def key_frame(self) -> int:
        """Global index of the key frame."""
        return self.start + self.key



def time_coords(local: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Local frame times ``[G, B]`` of GOPs of ``lengths [G]`` frames -> the fields' time coordinate
    in [-1, 1], first and last frame of the GOP included (0 for a one-frame GOP). Training and
    rendering both use this, so a decoder evaluates the fields where the encoder fitted them."""
    lengths = lengths[:, None]
    t = 2 * local.float() / (lengths - 1).clamp(min=1).float() - 1
    return torch.where(lengths > 1, t, torch.zeros_like(t))


def split_gops(frames: int, gop_length: int) -> list[Gop]:
    """Split ``frames`` frames into balanced GOPs of about ``gop_length`` frames."""
    if gop_length < 1:
        raise InputError(f"GOP length must be at least 1 (got {gop_length})")
    if frames < 1:
        raise InputError("the video has no frames")
    count = max(int(round(frames / gop_length)), 1)
    bounds = np.round(np.linspace(0, frames, count + 1)).astype(int)
    return [Gop(i, int(a), int(b - a), int((a + b) // 2 - a)) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]


def gops_from_lengths(lengths: list[int], keys: list[int]) -> list[Gop]:
    """Rebuild the GOP list from the lengths and key offsets stored in a bitstream."""
    gops, start = [], 0
    for i, (length, key) in enumerate(zip(lengths, keys)):
        gops.append(Gop(i, start, length, key))
        start += length
    return gops


def chunk_gops(gops: Sequence[Gop], per_gop_bytes: Sequence[int], budget: int) -> list[list[Gop]]:
    """Consecutive groups of GOPs whose memory estimate fits ``budget`` (at least one GOP each)."""
    chunks: list[list[Gop]] = []
    current: list[Gop] = []
    used = 0
    for gop, need in zip(gops, per_gop_bytes):
        if current and used + need > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(gop)
        used += need
    if current:
        chunks.append(current)
    return chunks
