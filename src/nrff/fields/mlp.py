"""Batched coordinate networks: the networks of G GOPs as one module.

Every weight is stacked over GOPs (``[G, in, out]``) and applied with one
batched matmul, so all GOPs of a clip train together and a GPU stays busy.
GOPs may have different widths (each is sized from its own key frame): the
tensors hold the widest, and a per-GOP mask zeroes the unused units, which
then receive no gradient and are never stored.

Inputs are grids: ``t [G, B]`` (B frames per GOP), ``y [G, R]`` rows and
``x [G, C]`` columns, all in [-1, 1]; outputs are ``[G, B*R*C, out]``.
Because every first-layer feature depends on one axis only, the first layer
is three small per-axis products summed by broadcasting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from nrff.fields.encoding import PositionalEncoding
from nrff.quant import fake_quantize, fake_quantize_columns, stored_grid


def _uniform(shape: Sequence[int], bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1).mul_(bound).float()


def gop_generators(seed: int, gop_indices: Sequence[int], salt: int) -> list[torch.Generator]:
    """One CPU generator per GOP, seeded from (seed, global GOP index, salt).

    Initialisation therefore does not depend on which other GOPs share the
    batch, so a sharded encode gives the same weights as a single process.
    """
    gens = []
    for g in gop_indices:
        gen = torch.Generator()
        gen.manual_seed((seed * 1_000_003 + g * 7919 + salt * 104_729) % (2**63))
        gens.append(gen)
    return gens


class BatchedField(nn.Module):
    """Common machinery: widths, masks, export/import of one GOP's active weights,
    and fake quantisation of the weight tensors (set ``quant_bits`` to train with it)."""

    units: list[int]
    quant_bits: int | None = None
    quant_grid: str = "tensor"  # "column": the grids of weight format 2 (nrff.quant.stored_grid)

    def _w(self, param: torch.Tensor) -> torch.Tensor:
        if self.quant_bits is None:
            return param
        if self.quant_grid == "tensor":
            return fake_quantize(param, self.quant_bits)
        grids = self._grids().get(id(param), ["tensor"])
        if len(set(grids)) == 1:
            return self._fake_quantize(param, grids[0])
        return torch.stack([self._fake_quantize(param[g : g + 1], grid)[0] for g, grid in enumerate(grids)])

    def _fake_quantize(self, param: torch.Tensor, grid: str) -> torch.Tensor:
        if grid == "fp16":  # stored as fp16, like the Swish scalars: trained unquantised
            return param
        return fake_quantize_columns(param, self.quant_bits) if grid == "column" else fake_quantize(param, self.quant_bits)

    def _grids(self) -> dict[int, list[str]]:
        """Per parameter, the grid each GOP's stored tensor is coded on (format 2)."""
        if getattr(self, "_grid_cache", None) is None:
            grids: dict[int, list[str]] = {}
            for g, w in enumerate(self.units):
                for name, index in self.layout(max(w, 1)):
                    param = self.get_parameter(name)
                    grids.setdefault(id(param), []).append(stored_grid(tuple(param[g][index].shape), True))
            self._grid_cache = grids
        return self._grid_cache

    def _set_units(self, units: Sequence[int]) -> int:
        self.units = [int(w) for w in units]
        wmax = max(max(self.units), 1)
        mask = torch.zeros(len(self.units), 1, wmax)
        for g, w in enumerate(self.units):
            mask[g, 0, :w] = 1
        self.register_buffer("mask", mask, persistent=False)
        self.uniform = all(w == wmax for w in self.units)
        return wmax

    def _masked(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.uniform else h * self.mask.to(h.dtype)

    # Subclasses list their parameters in bitstream order with a slicer per width.
    def layout(self, width: int) -> list[tuple[str, tuple]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def export_gop(self, g: int) -> list[torch.Tensor]:
        return [self.get_parameter(name)[g][index].detach().clone() for name, index in self.layout(self.units[g])]

    @torch.no_grad()
    def import_gop(self, g: int, tensors: Sequence[torch.Tensor]) -> None:
        for (name, index), value in zip(self.layout(self.units[g]), tensors, strict=True):
            param = self.get_parameter(name)
            param[g].zero_()
            param[g][index] = value.to(param.dtype).to(param.device)


class Swish(nn.Module):
    """x * sigmoid(beta * x + b), with learnable beta (init 1) and b (init 0) per GOP."""

    def __init__(self, gops: int):
        super().__init__()
        self.beta = nn.Parameter(torch.ones(gops, 1, 1))
        self.bias = nn.Parameter(torch.zeros(gops, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta.to(x.dtype) * x + self.bias.to(x.dtype))


class SwishField(BatchedField):
    """Positional encoding -> Linear -> Swish -> [Linear -> Swish] x reuse -> Linear.

    The hidden layers are applied ``reuse`` times with the same weights (depth
    without parameters), as in the published NRFF code.
    """

    def __init__(
        self,
        units: Sequence[int],
        encoding: PositionalEncoding,
        out_features: int,
        hidden_layers: int = 1,
        reuse: int = 2,
        generators: Sequence[torch.Generator] | None = None,
        zero_output: bool = False,
    ):
        super().__init__()
        self.zero_output = zero_output
        self.encoding = encoding
        self.out_features = out_features
        self.hidden_layers = hidden_layers
        self.reuse = reuse
        G = len(units)
        wmax = self._set_units(units)
        E = encoding.size
        self.w_in = nn.Parameter(torch.zeros(G, E, wmax))
        self.b_in = nn.Parameter(torch.zeros(G, 1, wmax))
        self.act_in = Swish(G)
        self.w_hidden = nn.ParameterList([nn.Parameter(torch.zeros(G, wmax, wmax)) for _ in range(hidden_layers)])
        self.b_hidden = nn.ParameterList([nn.Parameter(torch.zeros(G, 1, wmax)) for _ in range(hidden_layers)])
        self.act_hidden = nn.ModuleList([Swish(G) for _ in range(hidden_layers)])
        self.w_out = nn.Parameter(torch.zeros(G, wmax, out_features))
        self.b_out = nn.Parameter(torch.zeros(G, 1, out_features))
        self._rows = [torch.tensor(encoding.rows(a)) for a in range(3)]
        if generators is not None:
            self.reset_parameters(generators)

    @staticmethod
    def stored_shapes(width: int, inputs: int, outputs: int, hidden_layers: int) -> list[tuple[int, ...]]:
        """Shapes of the tensors :meth:`layout` selects, without building a network."""
        shapes = [(inputs, width), (1, width), (1, 1), (1, 1)]
        shapes += [(width, width), (1, width), (1, 1), (1, 1)] * hidden_layers
        return shapes + [(width, outputs), (1, outputs)]

    def layout(self, width: int) -> list[tuple[str, tuple]]:
        w = slice(0, width)
        all_ = slice(None)
        items = [("w_in", (all_, w)), ("b_in", (all_, w)), ("act_in.beta", (all_, all_)), ("act_in.bias", (all_, all_))]
        for i in range(self.hidden_layers):
            items += [
                (f"w_hidden.{i}", (w, w)),
                (f"b_hidden.{i}", (all_, w)),
                (f"act_hidden.{i}.beta", (all_, all_)),
                (f"act_hidden.{i}.bias", (all_, all_)),
            ]
        items += [("w_out", (w, all_)), ("b_out", (all_, all_))]
        return items

    @torch.no_grad()
    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        """PyTorch's default Linear init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), per GOP and width.

        With ``zero_output`` the output layer starts at zero, so a fresh network
        predicts zero flow, an even mix of the references and no residual.
        """
        E = self.encoding.size
        for g, (gen, w) in enumerate(zip(generators, self.units)):
            if w == 0:
                continue
            fan = 1 / math.sqrt(E)
            self.w_in[g, :, :w] = _uniform((E, w), fan, gen)
            self.b_in[g, 0, :w] = _uniform((w,), fan, gen)
            fan = 1 / math.sqrt(w)
            for i in range(self.hidden_layers):
                self.w_hidden[i][g, :w, :w] = _uniform((w, w), fan, gen)
                self.b_hidden[i][g, 0, :w] = _uniform((w,), fan, gen)
            self.w_out[g, :w] = _uniform((w, self.out_features), fan, gen)
            self.b_out[g, 0] = _uniform((self.out_features,), fan, gen)
            if self.zero_output:
                self.w_out[g].zero_()
                self.b_out[g].zero_()

    def first_layer(self, t: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Separable first layer on the grid ``t x y x x`` -> ``[G, B, R, C, W]``, always in fp32.

        It is cheap (O(B + R + C) products), and keeping it out of autocast
        keeps the high-frequency features exact.
        """
        parts = []
        with torch.autocast(t.device.type, enabled=False):
            for axis, coords in enumerate((t, y, x)):
                feats = self.encoding.features(axis, coords)  # [G, n, F] fp32
                rows = self._rows[axis].to(self.w_in.device)
                weight = self._w(self.w_in).float().index_select(1, rows)  # [G, F, W]
                parts.append(torch.matmul(feats, weight))
        pt, py, px = parts
        return (
            pt[:, :, None, None, :]
            + py[:, None, :, None, :]
            + px[:, None, None, :, :]
            + self._w(self.b_in)[:, :, None, None, :]
        )

    def forward(self, t: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = self.first_layer(t, y, x)
        G, W = h.shape[0], h.shape[-1]
        h = self._masked(self.act_in(h.reshape(G, -1, W)))
        for i in range(self.hidden_layers):
            for _ in range(self.reuse):
                h = self._masked(self.act_hidden[i](torch.baddbmm(self._w(self.b_hidden[i]), h, self._w(self.w_hidden[i]))))
        return torch.baddbmm(self._w(self.b_out), h, self._w(self.w_out))


class SirenField(BatchedField):
    """SIREN: sin(30 (W x + b)) layers on raw (t, y, x), linear output, SIREN init."""

    omega = 30.0

    def __init__(
        self,
        units: Sequence[int],
        out_features: int = 3,
        hidden_layers: int = 3,
        generators: Sequence[torch.Generator] | None = None,
    ):
        super().__init__()
        G = len(units)
        wmax = self._set_units(units)
        self.out_features = out_features
        self.hidden_layers = hidden_layers
        self.w_in = nn.Parameter(torch.zeros(G, 3, wmax))
        self.b_in = nn.Parameter(torch.zeros(G, 1, wmax))
        self.w_hidden = nn.ParameterList([nn.Parameter(torch.zeros(G, wmax, wmax)) for _ in range(hidden_layers)])
        self.b_hidden = nn.ParameterList([nn.Parameter(torch.zeros(G, 1, wmax)) for _ in range(hidden_layers)])
        self.w_out = nn.Parameter(torch.zeros(G, wmax, out_features))
        self.b_out = nn.Parameter(torch.zeros(G, 1, out_features))
        if generators is not None:
            self.reset_parameters(generators)

    @staticmethod
    def stored_shapes(width: int, outputs: int, hidden_layers: int) -> list[tuple[int, ...]]:
        shapes = [(3, width), (1, width)] + [(width, width), (1, width)] * hidden_layers
        return shapes + [(width, outputs), (1, outputs)]

    def layout(self, width: int) -> list[tuple[str, tuple]]:
        w = slice(0, width)
        all_ = slice(None)
        items = [("w_in", (all_, w)), ("b_in", (all_, w))]
        for i in range(self.hidden_layers):
            items += [(f"w_hidden.{i}", (w, w)), (f"b_hidden.{i}", (all_, w))]
        items += [("w_out", (w, all_)), ("b_out", (all_, all_))]
        return items

    @torch.no_grad()
    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        for g, (gen, w) in enumerate(zip(generators, self.units)):
            if w == 0:
                continue
            self.w_in[g, :, :w] = _uniform((3, w), 1 / 3, gen)
            self.b_in[g, 0, :w] = _uniform((w,), 1 / math.sqrt(3), gen)
            bound = math.sqrt(6 / w) / self.omega
            for i in range(self.hidden_layers):
                self.w_hidden[i][g, :w, :w] = _uniform((w, w), bound, gen)
                self.b_hidden[i][g, 0, :w] = _uniform((w,), 1 / math.sqrt(w), gen)
            self.w_out[g, :w] = _uniform((w, self.out_features), bound, gen)
            self.b_out[g, 0] = _uniform((self.out_features,), 1 / math.sqrt(w), gen)

    def forward(self, t: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(t.device.type, enabled=False):
            w_in = self._w(self.w_in).float()
            pt = t.float().unsqueeze(-1) * w_in[:, 0:1, :]  # [G, B, W]
            py = y.float().unsqueeze(-1) * w_in[:, 1:2, :]
            px = x.float().unsqueeze(-1) * w_in[:, 2:3, :]
            h = pt[:, :, None, None, :] + py[:, None, :, None, :] + px[:, None, None, :, :] + self._w(self.b_in)[:, :, None, None, :]
            G, W = h.shape[0], h.shape[-1]
            h = self._masked(torch.sin(self.omega * h.reshape(G, -1, W)))
        for i in range(self.hidden_layers):
            h = self._masked(torch.sin(self.omega * torch.baddbmm(self._w(self.b_hidden[i]), h, self._w(self.w_hidden[i]))))
        return torch.baddbmm(self._w(self.b_out), h, self._w(self.w_out))
