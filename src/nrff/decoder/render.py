"""Sampling the fields: frames at any (time, height, width).

The same code path serves training (random pixel subsets), the encoder's own
check of its bitstream, and the decoder, so that what the encoder reports is
exactly what a decoder reproduces.

A field is sampled on a grid of rows and columns in [-1, 1]; reference images
stay at the encode-time resolution and are sampled at the grid's positions
plus the flow, so a denser grid (super-resolution) warps the original key
frames with bicubic filtering, and a fractional time uses the flow the field
gives at that time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from nrff.fields.models import FieldModel
from nrff.gop import Gop, time_coords
from nrff.warp import pixel_positions

if TYPE_CHECKING:  # pragma: no cover
    from nrff.methods.coordinate import CoordinateMethod

MAX_ELEMENTS = 24_000_000  # hidden activations per chunk when rendering whole frames


def grid_coords(count: int, device) -> torch.Tensor:
    """``count`` evenly spaced coordinates in [-1, 1], endpoints included."""
    if count == 1:
        return torch.zeros(1, device=device)
    return torch.linspace(-1.0, 1.0, count, device=device)


@dataclass
class FieldRenderer:
    """Renders frames of a set of GOPs from their model and reference images.

    ``keys`` holds the extended key images ``[G + 2, 3, H, W]`` in [0, 1] at the
    encode-time size (see :func:`multi_reference_roles`). ``half`` runs the
    networks' hidden layers under autocast in that dtype (the encoding, the
    first layer and the warps stay fp32).
    """

    model: FieldModel
    method: CoordinateMethod
    gops: Sequence[Gop]
    keys: torch.Tensor | None
    height: int
    width: int
    half: torch.dtype | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _rows_per_chunk(self, frames: int, out_width: int) -> int:
        per_row = max(len(self.gops) * frames * out_width * max(max(self.model.units), 1), 1)
        return max(1, MAX_ELEMENTS // per_row)

    @torch.no_grad()
    def render(self, local_times: torch.Tensor, out_height: int, out_width: int, chain: torch.Tensor | None = None) -> torch.Tensor:
        """Frames ``[G, B, 3, H', W']`` (clamped to [0, 1]) at local times ``[G, B]``.

        Key-frame times are not special-cased here; callers substitute the key
        frames. For single-reference NRFF, ``chain`` holds the native-size
        reconstructions ``[G, Lmax, 3, H, W]`` the frames warp from.
        """
        parts = self.render_parts(local_times, out_height, out_width, chain, names=("frame",))
        return parts["frame"].clamp_(0, 1)

    @torch.no_grad()
    def render_parts(
        self, local_times: torch.Tensor, out_height: int, out_width: int, chain: torch.Tensor | None = None,
        names: Sequence[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Like :meth:`render`, but every part of the reconstruction (see
        :meth:`~nrff.methods.coordinate.CoordinateMethod.decompose`) as ``[G, B, k, H', W']``, unclamped."""
        device = self.device
        G, B = local_times.shape
        lengths = torch.tensor([g.length for g in self.gops], device=device, dtype=torch.float32)
        keys_at = torch.tensor([g.key for g in self.gops], device=device, dtype=torch.float32)
        t = time_coords(local_times, lengths)
        xs = grid_coords(out_width, device)
        ys = grid_coords(out_height, device)
        base_x = pixel_positions(xs, self.width)[None].expand(G, -1)
        out: dict[str, torch.Tensor] = {}
        rows_per = self._rows_per_chunk(B, out_width)
        for r0 in range(0, out_height, rows_per):
            r1 = min(out_height, r0 + rows_per)
            y = ys[r0:r1][None].expand(G, -1)
            base_y = pixel_positions(y, self.height)
            sampler = self.method.render_sampler(self, local_times, keys_at, base_x, base_y, chain)
            with torch.autocast(device.type, dtype=self.half or torch.float32, enabled=self.half is not None):
                raw = self.model(t, y, xs[None].expand(G, -1))
            for name, value in self.method.decompose(raw, sampler).items():
                if names is not None and name not in names:
                    continue
                if name not in out:
                    out[name] = torch.empty(G, B, value.shape[-1], out_height, out_width, device=device)
                out[name][:, :, :, r0:r1, :] = value.permute(0, 1, 4, 2, 3)
        return out


@torch.no_grad()
def render_chain(renderer: FieldRenderer, key_images: torch.Tensor) -> torch.Tensor:
    """Single-reference NRFF: rebuild every frame of each GOP at native size, outward from its key.

    ``key_images [G, 3, H, W]``; returns ``[G, Lmax, 3, H, W]`` where frame
    ``key +- d`` is computed from frame ``key +- (d - 1)``.
    """
    gops = renderer.gops
    G = len(gops)
    lmax = max(g.length for g in gops)
    H, W = renderer.height, renderer.width
    device = key_images.device
    chain = torch.zeros(G, lmax, 3, H, W, device=device)
    for i, gop in enumerate(gops):
        chain[i, gop.key] = key_images[i]
    reach = max(max(g.key, g.length - 1 - g.key) for g in gops)
    for d in range(1, reach + 1):
        times = torch.tensor([[g.key - d, g.key + d] for g in gops], device=device, dtype=torch.float32)
        valid = [[g.key - d >= 0, g.key + d < g.length] for g in gops]
        # clamp invalid times to a valid frame; their results are discarded
        times = torch.stack([times[:, 0].clamp(min=0), torch.minimum(times[:, 1], torch.tensor([g.length - 1.0 for g in gops], device=device))], 1)
        frames = renderer.render(times, H, W, chain=chain)
        for i in range(G):
            for side in range(2):
                if valid[i][side]:
                    chain[i, int(times[i, side])] = frames[i, side]
    return chain


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """[0, 1] float ``[..., 3, H, W]`` -> uint8 ``[..., H, W, 3]`` (round half up). One float
    temporary, modified in place (the same values as out-of-place ops): large frames need
    two float copies at most, not four."""
    return frames.clamp(0, 1).mul_(255).add_(0.5).floor_().to(torch.uint8).movedim(-3, -1)


def frame_times(frames: int, fps_factor: int) -> Iterator[float]:
    """Global output times for ``fps_factor`` K: every frame and K - 1 in-between times."""
    for i in range((frames - 1) * fps_factor + 1):
        yield i / fps_factor


def reference_stack(key_images: dict[int, np.ndarray], first: int, last: int, total: int, device) -> torch.Tensor:
    """Key images ``[prev of first, first .. last, next of last]`` as float ``[G + 2, 3, H, W]`` in [0, 1]
    (the first and last GOPs of the clip stand in for their missing neighbours)."""
    order = [first - 1 if first > 0 else first] + list(range(first, last + 1)) + [last + 1 if last < total - 1 else last]
    stack = np.stack([key_images[i] for i in order])
    return torch.from_numpy(stack).to(device).permute(0, 3, 1, 2).float().div_(255)
