"""``nrff``: the paper's multi-reference model (flows to two key frames, a mixing weight, a residual).

Outputs per pixel: flow to reference 0 (x, y), flow to reference 1 (x, y), a
mixing weight alpha (before a sigmoid) and a residual (RGB, before a tanh)::

    frame = clamp(alpha * warp(ref0, f0) + (1 - alpha) * warp(ref1, f1) + residual, 0, 1)

ref0 is the key frame of the neighbouring GOP on the frame's side (the previous
GOP before the key frame, the next after it; the own key frame at the ends of
the clip), ref1 the own key frame. With ``split`` (the default), the flows come
from one network and alpha + residual from another, each with half the bytes.
"""

from __future__ import annotations

import torch

from nrff.methods.coordinate import CoordinateMethod
from nrff.warp import multi_reference_roles, slot_sampler


class Nrff(CoordinateMethod):
    name, id, lr = "nrff", 2, 1e-2
    outputs, split_outputs, default_split = (8,), (4, 4), True
    reference_names = {"flow0": "neighbouring key frame", "flow1": "own key frame"}  # for figures

    def decompose(self, raw, sample):
        raw = raw.float()
        flow0, flow1 = raw[..., 0:2], raw[..., 2:4]
        warped0, warped1 = sample(0, flow0), sample(1, flow1)
        alpha = torch.sigmoid(raw[..., 4:5])
        residual = torch.tanh(raw[..., 5:8])
        frame = alpha * warped0 + (1 - alpha) * warped1 + residual
        return {"flow0": flow0, "flow1": flow1, "warped0": warped0, "warped1": warped1, "alpha": alpha,
                "residual": residual, "frame": frame}

    @staticmethod
    def _references(keys, times, keys_at, base_x, base_y):
        """Frames at ``times [G, B]`` (before or after their key frame ``keys_at [G]``) sample the
        extended key images ``keys`` (see :func:`~nrff.warp.multi_reference_roles`)."""
        images, slots, counts = multi_reference_roles(times < keys_at[:, None], times.shape[1])
        return slot_sampler(keys, base_x, base_y, images, slots, counts)

    def training_sampler(self, trainer, frames, base_x, base_y):
        return self._references(trainer.data.keys, frames, trainer.key_at, base_x, base_y)

    def render_sampler(self, renderer, local_times, keys_at, base_x, base_y, chain):
        return self._references(renderer.keys, local_times, keys_at, base_x, base_y)
