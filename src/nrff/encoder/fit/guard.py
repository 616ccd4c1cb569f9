"""The divergence guard: a GOP whose training went wrong is rolled back, with half the learning rate.

Every logging window the guard reads each GOP's mean training loss once. A GOP
whose loss became non-finite, whose PSNR fell ``COLLAPSE_DB`` below its best,
or whose weights no longer fit fp16 is restored from its last good snapshot
(weights and Adam moments) and continues at half its learning rate; the event
is reported. Healthy GOPs refresh their snapshot. Everything stays on the
device: one host read per window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

COLLAPSE_DB = 3.0  # a GOP whose training PSNR falls this far below its best is rolled back
FP16_MAX = 65504.0  # weights are stored as fp16: a GOP with a larger weight is rolled back too


def psnr_of(mse: torch.Tensor) -> torch.Tensor:
    return -10 * torch.log10(mse.clamp(min=1e-10))


class DivergenceGuard:
    def __init__(self, state: Sequence[torch.Tensor], active: torch.Tensor, enabled: bool):
        """``state``: the tensors a roll-back restores (parameters, then optimiser moments), each ``[G, ...]``."""
        G = active.shape[0]
        device = active.device
        self.state = list(state)
        self.active = active.bool()
        self.enabled = enabled
        self.lr_scale = torch.ones(G, device=device)
        self.best_psnr = torch.full((G,), -math.inf, device=device)
        self.snapshot = [t.detach().clone() for t in self.state]
        self.window = torch.zeros(G, device=device)
        self.window_steps = 0
        self.recoveries: list[dict] = []

    def start(self, mse: torch.Tensor) -> None:
        """Start each GOP's best PSNR at that of its untrained field, so that a GOP whose very first
        window already diverged (too high a learning rate) is rolled back too."""
        psnr = psnr_of(mse)
        self.best_psnr = torch.where(torch.isfinite(psnr) & self.active, psnr, self.best_psnr)

    def rebaseline(self) -> None:
        """Forget the best PSNRs (quantisation just started: the quantised model is the new baseline)."""
        self.best_psnr.fill_(-math.inf)

    def add(self, loss: torch.Tensor) -> None:
        self.window += loss.detach()
        self.window_steps += 1

    @torch.no_grad()
    def check(self, params: Sequence[torch.Tensor], gops: Sequence, step: int, on_rollback=None) -> torch.Tensor:
        """Per-GOP training PSNR of the last window; roll back diverged GOPs (``on_rollback()`` is called
        after a roll-back, e.g. to drop an accumulated gradient)."""
        mse = self.window / max(self.window_steps, 1)
        self.window.zero_()
        self.window_steps = 0
        psnr = psnr_of(mse)
        largest = torch.stack([p.detach().abs().flatten(1).amax(1) for p in params]).amax(0)
        bad = ~torch.isfinite(mse) | (psnr < self.best_psnr - COLLAPSE_DB) | ~(largest <= FP16_MAX)
        bad &= self.active
        if self.enabled and bool(bad.any()):
            self._restore(bad)
            self.lr_scale = torch.where(bad, self.lr_scale * 0.5, self.lr_scale)
            if on_rollback is not None:
                on_rollback()
            for g in torch.nonzero(bad).flatten().tolist():
                self.recoveries.append({"gop": gops[g].index, "step": step, "psnr": float(psnr[g]),
                                        "best_psnr": float(self.best_psnr[g]), "lr_scale": float(self.lr_scale[g])})
        good = ~bad
        for current, saved in zip(self.state, self.snapshot):
            mask = good.view(-1, *([1] * (current.dim() - 1)))
            saved.copy_(torch.where(mask, current.detach(), saved))
        self.best_psnr = torch.where(good & torch.isfinite(psnr), torch.maximum(self.best_psnr, psnr), self.best_psnr)
        return torch.where(bad, self.best_psnr, psnr)

    def _restore(self, bad: torch.Tensor) -> None:
        for current, saved in zip(self.state, self.snapshot):
            mask = bad.view(-1, *([1] * (current.dim() - 1)))
            current.copy_(torch.where(mask, saved, current))
