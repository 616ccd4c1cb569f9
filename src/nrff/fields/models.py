"""The networks of a set of GOPs as one module, built by the clip's method."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from nrff.fields.mlp import gop_generators

if TYPE_CHECKING:  # pragma: no cover
    from nrff.methods.base import FieldShape


class FieldModel(nn.Module):
    """The networks of a set of GOPs: ``forward(t, y, x) -> [G, B, R, C, K]`` raw outputs."""

    def __init__(
        self,
        shape: FieldShape,
        units: Sequence[int],
        gop_indices: Sequence[int] | None = None,
        seed: int = 0,
        zero_output: bool = False,
    ):
        """``gop_indices`` (global) seed each GOP's initialisation; without them the
        weights stay zero (a decoder imports them)."""
        super().__init__()
        self.shape = shape
        self.units = list(units)
        generators = None
        if gop_indices is not None:
            generators = [gop_generators(seed, gop_indices, salt=n) for n in range(len(shape.network_outputs()))]
        self.nets = nn.ModuleList(shape.method.build_networks(shape, units, generators, zero_output))

    def forward(self, t: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        G, B, R, C = t.shape[0], t.shape[1], y.shape[1], x.shape[1]
        outs = [net(t, y, x) for net in self.nets]
        raw = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        return raw.reshape(G, B, R, C, -1)

    def export_gop(self, g: int) -> list[torch.Tensor]:
        """The stored tensors of GOP ``g`` (active units only), in bitstream order."""
        return [t for net in self.nets for t in net.export_gop(g)]

    def import_gop(self, g: int, tensors: Sequence[torch.Tensor]) -> None:
        i = 0
        for net in self.nets:
            n = len(net.layout(self.units[g]))
            net.import_gop(g, tensors[i : i + n])
            i += n
        if i != len(tensors):
            raise ValueError("wrong number of tensors")
