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

from dataclasses import dataclass

import numpy as np

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

    @property
    def non_key(self) -> list[int]:
        """Local indices of the frames the network must reconstruct."""
        return [i for i in range(self.length) if i != self.key]

    def local_time(self, local: float) -> float:
        """Local frame index -> time coordinate in [-1, 1] (endpoints included)."""
        return 0.0 if self.length == 1 else 2.0 * local / (self.length - 1) - 1.0


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


def neighbour_keys(gops: list[Gop], index: int) -> tuple[int, int]:
    """GOP indices whose key frames serve as (previous, next) references of GOP ``index``.

    The first GOP has no previous one and the last no next one: each falls back
    to its own key frame.
    """
    prev_gop = index - 1 if index > 0 else index
    next_gop = index + 1 if index < len(gops) - 1 else index
    return prev_gop, next_gop


def single_reference(gop: Gop, local: int) -> int:
    """Local index of the frame that ``local`` warps in single-reference NRFF."""
    if local == gop.key:
        raise ValueError("the key frame has no reference")
    return local + 1 if local < gop.key else local - 1


def gop_of_time(gops: list[Gop], time: float) -> Gop:
    """The GOP that renders (possibly fractional) global frame time ``time``.

    A time between two frames belongs to the GOP of the earlier frame, whose
    field is sampled slightly past its last frame if needed.
    """
    frame = int(np.floor(time))
    for gop in gops:
        if gop.start <= frame < gop.stop:
            return gop
    raise ValueError(f"time {time} is outside the video")
