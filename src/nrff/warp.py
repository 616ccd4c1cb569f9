"""Backward warping: sample reference frames at (pixel + flow) with bicubic filtering.

As in the published code: ``grid_sample(mode='bicubic', padding_mode='reflection',
align_corners=True)``, pixel positions normalised by ``(W - 1, H - 1)``. Flows
are in pixels of the reference frame, x then y. Positions are given in
reference pixels, so the output grid may be denser than the reference
(super-resolution), sparser, or a random subset of pixels (training).

Training samples many (GOP, frame) queries per step, each from one of a few
reference images; :func:`sample_slots` does them all in one ``grid_sample``
call without copying any image, by giving every image a fixed number of
"slots" of query points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

# A sampler maps (reference role, flow [G, B, R, C, 2]) -> colours [G, B, R, C, 3].
Sampler = Callable[[int, torch.Tensor], torch.Tensor]


def to_grid(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel positions ``[..., 2]`` (x, y) -> grid_sample coordinates in [-1, 1]."""
    scale = points.new_tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)])
    return points * scale - 1.0


def sample_bicubic(images: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Sample ``images [M, 3, H, W]`` at ``points [M, P, 2]`` (pixels) -> ``[M, 3, P]``."""
    height, width = images.shape[-2:]
    grid = to_grid(points.float(), height, width).unsqueeze(1)  # [M, 1, P, 2]
    out = F.grid_sample(images.float(), grid, mode="bicubic", padding_mode="reflection", align_corners=True)
    return out.squeeze(2)


def sample_slots(
    images: torch.Tensor,
    image_index: torch.Tensor,
    slot_index: torch.Tensor,
    slots: int,
    points: torch.Tensor,
) -> torch.Tensor:
    """Sample query ``q`` from ``images[image_index[q]]`` at ``points[q]``.

    ``images [M, 3, H, W]``, ``points [Q, P, 2]``; every query owns a distinct
    (image, slot) pair, ``slot < slots``. Unused slots sample harmless zeros.
    Returns ``[Q, 3, P]``; differentiable with respect to ``points``.
    """
    M = images.shape[0]
    Q, P, _ = points.shape
    buffer = points.new_zeros(M, slots, P, 2)
    buffer = buffer.index_put((image_index, slot_index), points)
    sampled = sample_bicubic(images, buffer.reshape(M, slots * P, 2))  # [M, 3, S*P]
    sampled = sampled.reshape(M, 3, slots, P).permute(0, 2, 1, 3)  # [M, S, 3, P]
    return sampled[image_index, slot_index]


def pixel_positions(coords: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised coordinates in [-1, 1] -> pixel positions of a reference of extent ``size``."""
    return (coords + 1.0) * (0.5 * (size - 1))


def resize_bicubic(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize ``[M, 3, H, W]`` to ``height x width`` by sampling the same bicubic kernel as the warps.

    The output grid spans the same [-1, 1] square (corner pixels map to corner
    pixels), like the fields' coordinates, so resized key frames line up with
    rendered frames.
    """
    M, _, h, w = images.shape
    if (h, w) == (height, width):
        return images
    ys = torch.linspace(-1, 1, height, device=images.device) if height > 1 else torch.zeros(1, device=images.device)
    xs = torch.linspace(-1, 1, width, device=images.device) if width > 1 else torch.zeros(1, device=images.device)
    py, px = torch.meshgrid(pixel_positions(ys, h), pixel_positions(xs, w), indexing="ij")
    points = torch.stack((px, py), dim=-1).reshape(1, -1, 2).expand(M, -1, -1)
    return sample_bicubic(images, points).reshape(M, 3, height, width)


# ----------------------------------------------------------------------------- samplers


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
