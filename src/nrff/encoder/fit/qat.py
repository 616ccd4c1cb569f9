"""Quantisation-aware training: from a fraction of the steps on, the networks run on the
quantisation grid their weights will be stored on (straight-through gradients), so the
weights a decoder rebuilds are the ones the loss was minimised for."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


class QatSchedule:
    def __init__(self, bits: int | None, start: float, total_steps: int, grid: str = "tensor"):
        """``bits`` None: never (fp16 weights); else fake-quantise from ``start * total_steps`` on, on
        ``grid`` (``"tensor"`` or ``"column"``: the grids of weight formats 1 and 2)."""
        self.bits = bits
        self.grid = grid
        self.first_step = int(start * total_steps) if bits else None

    def active(self, step: int) -> bool:
        return self.first_step is not None and step >= self.first_step

    def apply(self, nets: Iterable[nn.Module], step: int) -> bool:
        """Set the networks' grid for ``step``; True at the step quantisation starts."""
        active = self.active(step)
        for net in nets:
            net.quant_bits = self.bits if active else None
            net.quant_grid = self.grid
        return active and step == self.first_step
