"""The methods: what a GOP's field outputs and how a frame is rebuilt from it.

* ``siren``: a colour field (t, y, x) -> RGB over the GOP (the paper's baseline);
  no key frames.
* ``nrff-single``: flow (2) + residual (3) per pixel; every frame warps its
  neighbour towards the key frame (recursively), plus the residual.
* ``nrff``: flows to two references (2 + 2), a mixing weight alpha (1, sigmoid)
  and a residual (3, tanh):
  ``clamp(alpha * warp(ref0, f0) + (1 - alpha) * warp(ref1, f1) + residual, 0, 1)``
  where ref0 is the neighbouring GOP's key frame and ref1 the own key frame.

With ``split``, the flows come from one network and the rest from another,
each with half of the byte budget; both read the same encoding.
Methods are registered in :data:`METHODS`, not hard-coded elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from nrff.errors import InputError
from nrff.fields.encoding import PositionalEncoding
from nrff.fields.mlp import BatchedField, SirenField, SwishField, gop_generators

BYTES_PER_PARAM = 2  # fp16 in bitstream v1
SIREN_HIDDEN_LAYERS = 3


@dataclass(frozen=True)
class Method:
    name: str
    id: int  # bitstream id; never renumber
    references: str  # "none", "single" or "multi"
    outputs: tuple[int, ...]  # output channels: one network (no split)
    split_outputs: tuple[int, ...] | None  # per network with split
    default_split: bool
    kind: str  # "swish" or "siren"
    lr: float  # the paper's learning rate for this method

    @property
    def uses_keyframes(self) -> bool:
        return self.references != "none"

    def network_outputs(self, split: bool) -> tuple[int, ...]:
        if split:
            if self.split_outputs is None:
                raise InputError(f"method {self.name!r} has no split variant")
            return self.split_outputs
        return self.outputs

    def resolve_split(self, split: bool | None) -> bool:
        if split is None:
            return self.default_split
        if split and self.split_outputs is None:
            raise InputError(f"method {self.name!r} cannot be split")
        return split


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("siren", 0, "none", (3,), None, False, "siren", 1e-3),
        Method("nrff-single", 1, "single", (5,), (2, 3), False, "swish", 1e-3),
        Method("nrff", 2, "multi", (8,), (4, 4), True, "swish", 1e-2),
        Method("nerv", 3, "none", (3,), None, False, "nerv", 5e-4),
    )
}
METHOD_BY_ID = {m.id: m for m in METHODS.values()}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


@dataclass(frozen=True)
class FieldShape:
    """Everything needed to rebuild the networks of a clip (stored in the bitstream header)."""

    method: str
    split: bool
    encoding: PositionalEncoding
    hidden_layers: int
    reuse: int
    height: int = 0  # frame size: only NeRV's architecture depends on it
    width: int = 0

    @property
    def spec(self) -> Method:
        return METHODS[self.method]

    def network_outputs(self) -> tuple[int, ...]:
        return self.spec.network_outputs(self.split)

    def shapes(self, width: int) -> list[tuple[int, ...]]:
        """Shapes of one GOP's stored tensors at ``width``, in bitstream order."""
        if width == 0:
            return []
        if self.spec.kind == "nerv":
            from nrff.fields.nerv import NervLayout

            return NervLayout(self.height, self.width, width).shapes()
        out: list[tuple[int, ...]] = []
        for outputs in self.network_outputs():
            if self.spec.kind == "siren":
                out += SirenField.stored_shapes(width, outputs, SIREN_HIDDEN_LAYERS)
            else:
                out += SwishField.stored_shapes(width, self.encoding.size, outputs, self.hidden_layers)
        return out

    def param_count(self, width: int) -> int:
        """Parameters of all networks of one GOP at ``width``."""
        return int(sum(math.prod(s) for s in self.shapes(width)))

    def width_for_bytes(self, budget_bytes: float, bytes_per_param: float = BYTES_PER_PARAM, max_width: int = 1024) -> int:
        """The even width whose parameters (at ``bytes_per_param``, 2 for fp16) come closest to
        ``budget_bytes`` (at least 2)."""
        best, best_err = 2, float("inf")
        for w in range(2, max_width + 1, 2):
            size = self.param_count(w) * bytes_per_param
            err = abs(size - budget_bytes)
            if err < best_err:
                best, best_err = w, err
            if size > budget_bytes:
                break
        return best


def build_networks(
    shape: FieldShape,
    widths: Sequence[int],
    generators: Sequence[Sequence[torch.Generator]] | None = None,
    zero_output: bool = False,
) -> list[BatchedField]:
    nets: list[BatchedField] = []
    for n, out in enumerate(shape.network_outputs()):
        gens = None
        if generators is not None:
            gens = generators[n]
        if shape.spec.kind == "siren":
            nets.append(SirenField(widths, out, hidden_layers=SIREN_HIDDEN_LAYERS, generators=gens))
        else:
            nets.append(SwishField(widths, shape.encoding, out, shape.hidden_layers, shape.reuse, generators=gens,
                                   zero_output=zero_output))
    return nets


class FieldModel(nn.Module):
    """The networks of a set of GOPs: ``forward(t, y, x) -> [G, B, R, C, K]`` raw outputs."""

    def __init__(
        self,
        shape: FieldShape,
        widths: Sequence[int],
        gop_indices: Sequence[int] | None = None,
        seed: int = 0,
        zero_output: bool = False,
    ):
        """``gop_indices`` (global) seed each GOP's initialisation; without them the
        weights stay zero (a decoder imports them)."""
        super().__init__()
        self.shape = shape
        self.widths = list(widths)
        generators = None
        if gop_indices is not None:
            generators = [gop_generators(seed, gop_indices, salt=n) for n in range(len(shape.network_outputs()))]
        self.nets = nn.ModuleList(build_networks(shape, widths, generators, zero_output))

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
            n = len(net.layout(self.widths[g]))
            net.import_gop(g, tensors[i : i + n])
            i += n
        if i != len(tensors):
            raise ValueError("wrong number of tensors")


# A sampler maps (reference role, flow [G, B, R, C, 2]) -> colours [G, B, R, C, 3].
Sampler = Callable[[int, torch.Tensor], torch.Tensor]


def decompose(method: Method, raw: torch.Tensor, sample: Sampler | None) -> dict[str, torch.Tensor]:
    """The parts of a reconstruction ``[G, B, R, C, k]``: flows, warped references,
    mixing weight, residual, and the (unclamped) ``frame``.

    Role 0 is the first reference (the neighbouring key frame for ``nrff``,
    the neighbour frame for ``nrff-single``); role 1 the own key frame.
    """
    raw = raw.float()
    if method.references == "none":
        return {"frame": 0.5 + 0.5 * raw[..., 0:3]}
    if method.references == "single":
        flow, residual = raw[..., 0:2], torch.tanh(raw[..., 2:5])
        warped = sample(0, flow)
        return {"flow0": flow, "warped0": warped, "residual": residual, "frame": warped + residual}
    flow0, flow1 = raw[..., 0:2], raw[..., 2:4]
    warped0, warped1 = sample(0, flow0), sample(1, flow1)
    alpha = torch.sigmoid(raw[..., 4:5])
    residual = torch.tanh(raw[..., 5:8])
    frame = alpha * warped0 + (1 - alpha) * warped1 + residual
    return {"flow0": flow0, "flow1": flow1, "warped0": warped0, "warped1": warped1, "alpha": alpha,
            "residual": residual, "frame": frame}


def reconstruct(method: Method, raw: torch.Tensor, sample: Sampler | None) -> torch.Tensor:
    """Rebuild colours ``[G, B, R, C, 3]`` (unclamped) from raw field outputs."""
    return decompose(method, raw, sample)["frame"]
