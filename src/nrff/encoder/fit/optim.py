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


def _per_gop(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def clip_grad_norm_per_gop(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale each GOP's gradient so that its norm over all tensors is at most ``max_norm``."""
    grads = [p.grad for p in params if p.grad is not None]
    G = grads[0].shape[0]
    sq = torch.zeros(G, device=grads[0].device, dtype=torch.float32)
    for g in grads:
        sq += g.float().pow(2).reshape(G, -1).sum(1)
    norm = sq.sqrt()
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(_per_gop(scale, g).to(g.dtype))
    return norm


class BatchedAdam:
    """Adam over parameters whose first dimension is the GOP, with a per-GOP lr scale."""

    def __init__(self, params: Sequence[torch.Tensor], betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.betas = betas
        self.eps = eps
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, lr: float, gop_scale: torch.Tensor) -> None:
        self.step_count += 1
        b1, b2 = self.betas
        bc1 = 1 - b1**self.step_count
        bc2 = 1 - b2**self.step_count
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            g = p.grad
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / bc2).sqrt_().add_(self.eps)
            step = _per_gop(gop_scale, p) * (-lr / bc1)
            p.addcmul_(m / denom, step)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def state(self) -> list[torch.Tensor]:
        return self.exp_avg + self.exp_avg_sq

    def load_state(self, tensors: Sequence[torch.Tensor], step_count: int) -> None:
        n = len(self.params)
        for dst, src in zip(self.exp_avg + self.exp_avg_sq, tensors, strict=True):
            dst.copy_(src)
        assert len(tensors) == 2 * n
        self.step_count = step_count
