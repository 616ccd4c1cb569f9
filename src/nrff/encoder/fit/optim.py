"""Adam, gradient clipping and the learning-rate schedule, per GOP.

All GOPs of a clip are one batched model, but they are independent problems:
each gets its own gradient-norm clip, its own learning-rate scale (lowered
when its training diverges) and its own roll-back snapshots. ``torch.optim``
treats a parameter tensor as one unit, so these few elementwise lines are
written here, fully on the device (no host synchronisation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def lr_factor(step: int, total: int, warmup: float, final: float) -> float:
    """Linear warm-up over ``warmup * total`` steps, then cosine decay to ``final``."""
    warm = max(int(round(warmup * total)), 0)
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(total - warm, 1)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


class BatchedAdam:
    """Adam over parameters whose first dimension is the GOP, with a per-GOP lr scale and a
    per-GOP gradient-norm clip.

    The parameters and both moments live in three flat ``[G, N]`` buffers (each parameter
    becomes a view into the first), so one step is a dozen element-wise operations whatever
    the number of tensors: at the default schedule's small batches a step's fixed cost is
    what dominates, and per-tensor loops were a large part of it.
    """

    def __init__(self, params: Sequence[torch.Tensor], betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.betas = betas
        self.eps = eps
        self.step_count = 0
        G = self.params[0].shape[0]
        with torch.no_grad():
            self.flat = torch.cat([p.detach().reshape(G, -1) for p in self.params], dim=1)
        self.sizes = [p[0].numel() for p in self.params]
        for p, view in zip(self.params, self._views(self.flat)):
            p.data = view
        self.flat_avg = torch.zeros_like(self.flat)
        self.flat_avg_sq = torch.zeros_like(self.flat)
        self.exp_avg = self._views(self.flat_avg)
        self.exp_avg_sq = self._views(self.flat_avg_sq)

    def _views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        return [part.view(p.shape) for p, part in zip(self.params, flat.split(self.sizes, dim=1))]

    @torch.no_grad()
    def step(self, lr: float, gop_scale: torch.Tensor, max_norm: float = 0.0, clip_in_place: bool = False) -> torch.Tensor | None:
        """One update; with ``max_norm`` > 0 each GOP's gradient is first scaled to a norm of at most
        ``max_norm`` (and, with ``clip_in_place``, written back to ``.grad``, for gradients that
        accumulate over steps). Returns the per-GOP gradient norms (None without clipping)."""
        G = self.flat.shape[0]
        grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(G, -1)
                          for p in self.params], dim=1)
        norm = None
        if max_norm > 0:
            norm = grad.pow(2).sum(1).sqrt()
            grad.mul_((max_norm / (norm + 1e-6)).clamp(max=1.0)[:, None])
            if clip_in_place:
                for p, g in zip(self.params, self._views(grad)):
                    p.grad.copy_(g)
        self.step_count += 1
        b1, b2 = self.betas
        bc1 = 1 - b1**self.step_count
        bc2 = 1 - b2**self.step_count
        self.flat_avg.mul_(b1).add_(grad, alpha=1 - b1)
        self.flat_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (self.flat_avg_sq / bc2).sqrt_().add_(self.eps)
        self.flat.addcmul_(self.flat_avg / denom, (gop_scale * (-lr / bc1))[:, None])
        return norm

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def state(self) -> list[torch.Tensor]:
        return self.exp_avg + self.exp_avg_sq

    def load_state(self, tensors: Sequence[torch.Tensor], step_count: int) -> None:
        n = len(self.params)
        assert len(tensors) == 2 * n
        for dst, src in zip(self.exp_avg + self.exp_avg_sq, tensors, strict=True):
            dst.copy_(src)
        self.step_count = step_count
