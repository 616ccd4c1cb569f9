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

import torch

from nrff.fields.models import FieldModel, Method, Sampler, decompose
from nrff.gop import Gop
from nrff.warp import pixel_positions, sample_bicubic, sample_slots

MAX_ELEMENTS = 24_000_000  # hidden activations per chunk when rendering whole frames


def grid_coords(count: int, device) -> torch.Tensor:
    """``count`` evenly spaced coordinates in [-1, 1], endpoints included."""
    if count == 1:
        return torch.zeros(1, device=device)
    return torch.linspace(-1.0, 1.0, count, device=device)


def _points(base_x: torch.Tensor, base_y: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Base pixel positions (``[G, C]``, ``[G, R]``) + flow ``[G, B, R, C, 2]`` -> points."""
    px = base_x[:, None, None, :] + flow[..., 0]
    py = base_y[:, None, :, None] + flow[..., 1]
    return torch.stack((px, py), dim=-1)


def slot_sampler(
    images: torch.Tensor,
    base_x: torch.Tensor,
    base_y: torch.Tensor,
    role_image: Sequence[torch.Tensor],
    role_slot: Sequence[torch.Tensor],
    slots: Sequence[int],
) -> Sampler:
    """Sample role ``r`` of query (g, b) from ``images[role_image[r][g, b]]`` (no image copies).

    Every (image, slot) pair of a role must belong to one query only.
    """

    def sample(role: int, flow: torch.Tensor) -> torch.Tensor:
        G, B, R, C, _ = flow.shape
        pts = _points(base_x, base_y, flow.float()).reshape(G * B, R * C, 2)
        out = sample_slots(images, role_image[role].reshape(-1), role_slot[role].reshape(-1), slots[role], pts)
        return out.reshape(G, B, 3, R, C).permute(0, 1, 3, 4, 2)

    return sample


def gather_sampler(
    images: torch.Tensor, base_x: torch.Tensor, base_y: torch.Tensor, role_image: Sequence[torch.Tensor]
) -> Sampler:
    """Sample role ``r`` of query (g, b) from ``images[role_image[r][g, b]]`` (copies the images)."""

    def sample(role: int, flow: torch.Tensor) -> torch.Tensor:
        G, B, R, C, _ = flow.shape
        pts = _points(base_x, base_y, flow.float()).reshape(G * B, R * C, 2)
        refs = images.index_select(0, role_image[role].reshape(-1))
        out = sample_bicubic(refs, pts)
        return out.reshape(G, B, 3, R, C).permute(0, 1, 3, 4, 2)

    return sample


def multi_reference_roles(
    keys_before: torch.Tensor, batch: int
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[int]]:
    """Image and slot indices for multi-reference NRFF over extended key images.

    The extended key images of G GOPs are ``[prev of GOP 0, key 0, ..., key G-1,
    next of GOP G-1]``: GOP g's previous, own and next key frames are images
    g, g+1 and g+2. ``keys_before [G, B]`` is True where the frame lies before
    its key frame (and so refers to the previous GOP).
    """
    G, B = keys_before.shape
    g = torch.arange(G, device=keys_before.device)[:, None].expand(G, B)
    b = torch.arange(B, device=keys_before.device)[None, :].expand(G, B)
    image0 = torch.where(keys_before, g, g + 2)
    slot0 = torch.where(keys_before, 0, 1) * B + b
    image1 = g + 1
    slot1 = b
    return [image0, image1], [slot0, slot1], [2 * B, B]


@dataclass
class FieldRenderer:
    """Renders frames of a set of GOPs from their model and reference images.

    ``keys`` holds the extended key images ``[G + 2, 3, H, W]`` in [0, 1] at the
    encode-time size (see :func:`multi_reference_roles`). ``half`` runs the
    networks' hidden layers under autocast in that dtype (the encoding, the
    first layer and the warps stay fp32).
    """

    model: FieldModel
    method: Method
    gops: Sequence[Gop]
    keys: torch.Tensor | None
    height: int
    width: int
    half: torch.dtype | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _rows_per_chunk(self, frames: int, out_width: int) -> int:
        per_row = max(len(self.gops) * frames * out_width * max(max(self.model.widths), 1), 1)
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
        :func:`~nrff.fields.models.decompose`) as ``[G, B, k, H', W']``, unclamped."""
        device = self.device
        G, B = local_times.shape
        lengths = torch.tensor([g.length for g in self.gops], device=device, dtype=torch.float32)
        keys_at = torch.tensor([g.key for g in self.gops], device=device, dtype=torch.float32)
        t = torch.where(lengths[:, None] > 1, 2 * local_times / (lengths[:, None] - 1).clamp(min=1) - 1, torch.zeros_like(local_times))
        xs = grid_coords(out_width, device)
        ys = grid_coords(out_height, device)
        base_x = pixel_positions(xs, self.width)[None].expand(G, -1)
        out: dict[str, torch.Tensor] = {}
        rows_per = self._rows_per_chunk(B, out_width)
        for r0 in range(0, out_height, rows_per):
            r1 = min(out_height, r0 + rows_per)
            y = ys[r0:r1][None].expand(G, -1)
            base_y = pixel_positions(y, self.height)
            sampler = self._sampler(local_times, keys_at, base_x, base_y, chain)
            with torch.autocast(device.type, dtype=self.half or torch.float32, enabled=self.half is not None):
                raw = self.model(t, y, xs[None].expand(G, -1))
            for name, value in decompose(self.method, raw, sampler).items():
                if names is not None and name not in names:
                    continue
                if name not in out:
                    out[name] = torch.empty(G, B, value.shape[-1], out_height, out_width, device=device)
                out[name][:, :, :, r0:r1, :] = value.permute(0, 1, 4, 2, 3)
        return out

    def _sampler(self, local_times, keys_at, base_x, base_y, chain) -> Sampler | None:
        if self.method.references == "none":
            return None
        G, B = local_times.shape
        if self.method.references == "multi":
            before = local_times < keys_at[:, None]
            images, slots, counts = multi_reference_roles(before, B)
            return slot_sampler(self.keys, base_x, base_y, images, slots, counts)
        # single: a time before the key warps the next frame towards the key
        # (floor(t) + 1), a time after it the previous one (ceil(t) - 1)
        lmax = chain.shape[1]
        before = local_times < keys_at[:, None]
        neighbour = torch.where(before, torch.floor(local_times) + 1, torch.ceil(local_times) - 1).clamp(0, lmax - 1)
        g = torch.arange(G, device=local_times.device)[:, None]
        index = (g * lmax + neighbour.long()).reshape(G, B)
        return gather_sampler(chain.reshape(-1, *chain.shape[2:]), base_x, base_y, [index])


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
    """[0, 1] float ``[..., 3, H, W]`` -> uint8 ``[..., H, W, 3]`` (round half up)."""
    return (frames.clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8).movedim(-3, -1)


def frame_times(frames: int, fps_factor: int) -> Iterator[float]:
    """Global output times for ``fps_factor`` K: every frame and K - 1 in-between times."""
    for i in range((frames - 1) * fps_factor + 1):
        yield i / fps_factor
