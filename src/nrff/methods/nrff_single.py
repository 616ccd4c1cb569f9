"""``nrff-single``: the paper's single-reference model, warping recursively outward from the key frame.

Outputs per pixel: a flow (x, y) and a residual (RGB, before a tanh); frame
``key +- d`` warps the reconstruction of frame ``key +- (d - 1)``. Training
re-renders that chain of references every ``refresh_every`` steps (detached);
rendering builds it once per GOP at the encode-time size.
"""

from __future__ import annotations

import torch

from nrff.config import TrainConfig
from nrff.methods.coordinate import CoordinateMethod
from nrff.warp import gather_sampler, slot_sampler


class Fronts:
    """The two fronts of a chain rendered frame by frame, ``images [G, 2, 3, H, W]``: the frame next to
    the key side of the current step before the key, and the one after it (see decoder.video)."""

    def __init__(self, images: torch.Tensor):
        self.images = images


class NrffSingle(CoordinateMethod):
    name, id, lr = "nrff-single", 1, 1e-3
    outputs, split_outputs, default_split = (5,), (2, 3), False
    reference_names = {"flow0": "neighbour frame"}  # for figures

    def decompose(self, raw, sample):
        raw = raw.float()
        flow, residual = raw[..., 0:2], torch.tanh(raw[..., 2:5])
        warped = sample(0, flow)
        return {"flow0": flow, "warped0": warped, "residual": residual, "frame": warped + residual}

    def training_sampler(self, trainer, frames, base_x, base_y):
        before = frames < trainer.key_at[:, None]
        ref = torch.where(before, frames + 1, frames - 1)
        g = torch.arange(trainer.G, device=trainer.device)[:, None]
        image = g * trainer.lmax + ref
        side = torch.where(before, 0, 1)
        chain = trainer.chain.reshape(-1, *trainer.chain.shape[2:])
        return slot_sampler(chain, base_x, base_y, [image], [side], [2])

    def render_sampler(self, renderer, local_times, keys_at, base_x, base_y, chain):
        # a time before the key warps the next frame towards the key (floor(t) + 1), after it the previous (ceil(t) - 1)
        G, B = local_times.shape
        if isinstance(chain, Fronts):  # frame by frame: the caller holds exactly those two neighbours
            before = local_times < keys_at[:, None]
            g = torch.arange(G, device=local_times.device)[:, None]
            index = (g * 2 + torch.where(before, 0, 1)).reshape(G, B)
            return gather_sampler(chain.images.reshape(-1, *chain.images.shape[2:]), base_x, base_y, [index])
        lmax = chain.shape[1]
        before = local_times < keys_at[:, None]
        neighbour = torch.where(before, torch.floor(local_times) + 1, torch.ceil(local_times) - 1).clamp(0, lmax - 1)
        g = torch.arange(G, device=local_times.device)[:, None]
        index = (g * lmax + neighbour.long()).reshape(G, B)
        return gather_sampler(chain.reshape(-1, *chain.shape[2:]), base_x, base_y, [index])

    def prepare_step(self, trainer):
        if trainer.chain is None or trainer.step % trainer.cfg.refresh_every == 0:
            trainer.refresh_chain()

    def reference_chain(self, renderer, own_keys):
        from nrff.decoder.render import render_chain

        return render_chain(renderer, own_keys)

    def chain_frames(self, length):
        return length

    def checkpoint_allowed(self, trainer):
        return trainer.step % trainer.cfg.refresh_every == 0

    def extra_training_bytes(self, gop, height, width):
        return gop.length * 3 * height * width * 4

    def extra_render_bytes(self, gop, height, width):
        return gop.length * height * width * 3 * 4

    def schedule(self, preset):
        """The paper trained single-reference NRFF on the whole GOP per step (batch 1 was unstable)."""
        if preset in ("paper", "default"):  # default: the published schedule
            return TrainConfig(epochs=25000, batch_frames=64)
        return TrainConfig(epochs=600, batch_frames=64, pixel_stride=4, log_every=25, refresh_every=25, zero_output=True)
