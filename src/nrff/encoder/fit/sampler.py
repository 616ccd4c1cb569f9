"""Which frames and pixels a training step sees.

Every step takes ``batch`` trainable frames per GOP and a random 1/``stride`` of
the rows and of the columns. The random numbers are drawn for every GOP of the
*video* and then sliced, so a GOP sees the same pixels whichever other GOPs
share its batch: a chunked or sharded encode gives the bytes of a single run.
"""

from __future__ import annotations

import math

import torch


class PixelSampler:
    def __init__(self, gop_index: torch.Tensor, trainable: torch.Tensor, batch: int, height: int, width: int,
                 stride: int, video_gops: int, video_lmax: int, seed: int):
        """``gop_index [G]`` global GOP indices; ``trainable [G, Lmax]`` which local frames are fitted."""
        device = trainable.device
        self.device = device
        self.gop_index, self.trainable = gop_index, trainable
        self.counts = trainable.sum(1)
        self.batch = batch
        self.height, self.width = height, width
        self.lmax = trainable.shape[1]
        self.set_stride(stride)
        self.video_gops, self.video_lmax = video_gops, video_lmax
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def set_stride(self, stride: int) -> None:
        """Each step sees ``ceil(H / stride)`` random rows and ``ceil(W / stride)`` random columns."""
        self.stride = stride
        self.rows = math.ceil(self.height / stride)
        self.cols = math.ceil(self.width / stride)

    def draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames ``[G, B]``, rows ``[G, R]`` and columns ``[G, C]`` (sorted) for one step."""
        gen, device = self.generator, self.device
        frame_scores = torch.rand(self.video_gops, self.video_lmax, generator=gen, device=device)
        row_scores = torch.rand(self.video_gops, self.height, generator=gen, device=device)
        col_scores = torch.rand(self.video_gops, self.width, generator=gen, device=device)
        scores = frame_scores[self.gop_index, : self.lmax].masked_fill(~self.trainable, 2.0)
        order = scores.argsort(dim=1)
        pick = torch.arange(self.batch, device=device)[None] % self.counts.clamp(min=1)[:, None]
        frames = order.gather(1, pick)
        rows = row_scores[self.gop_index].argsort(dim=1)[:, : self.rows].sort(dim=1).values
        cols = col_scores[self.gop_index].argsort(dim=1)[:, : self.cols].sort(dim=1).values
        return frames, rows, cols

    def spatial_coords(self, rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row and column indices -> the fields' y and x coordinates in [-1, 1] (corners included)."""
        y = 2 * rows.float() / max(self.height - 1, 1) - 1
        x = 2 * cols.float() / max(self.width - 1, 1) - 1
        return y, x
