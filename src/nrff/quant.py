"""Uniform weight quantisation, shared by training (fake quantisation) and the bitstream.

Each stored tensor of each GOP is quantised on its own grid:
``step = fp16(max|w| / L)`` with ``L = 2^(bits-1) - 1`` levels on each side of
zero, ``q = clamp(round(w / step), -L, L)``, ``w_hat = q * step``. The step is
rounded to fp16 because that is how the file stores it, so the weights the
network is fine-tuned with (quantisation-aware training, straight-through
gradients) are exactly the weights a decoder rebuilds. Scalars (the Swish
parameters) are not quantised; they are stored as fp16.
"""

from __future__ import annotations

import torch

MIN_BITS, MAX_BITS = 2, 16


def levels(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def grid_step(max_abs: torch.Tensor, bits: int) -> torch.Tensor:
    """The quantisation step for tensors whose largest magnitude is ``max_abs`` (fp16-representable)."""
    step = (max_abs.float() / levels(bits)).half().float()
    tiny = torch.finfo(torch.float16).tiny
    return torch.where(step > 0, step, torch.full_like(step, 1.0)).clamp(min=tiny)


def quantize(tensor: torch.Tensor, bits: int) -> tuple[torch.Tensor, float]:
    """Integer symbols and the step of one tensor."""
    step = grid_step(tensor.detach().abs().max(), bits)
    q = torch.round(tensor.detach().float() / step).clamp(-levels(bits), levels(bits))
    return q.to(torch.int32), float(step)


def fake_quantize(param: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantise a batched parameter ``[G, ...]`` per GOP, with straight-through gradients."""
    G = param.shape[0]
    max_abs = param.detach().abs().reshape(G, -1).amax(dim=1)
    step = grid_step(max_abs, bits).view(G, *([1] * (param.dim() - 1)))
    q = torch.round(param.detach() / step).clamp(-levels(bits), levels(bits)) * step
    return param + (q - param).detach()


# ----------------------------------------------------------------------------- column grids
# Weight format 2 (``quant_grid = "column"``): an output layer's columns make different
# quantities (flow in pixels, a mixing logit, colour residuals) whose weights differ in scale by
# up to 20x; one grid for the whole tensor leaves the small columns a handful of levels. So a
# matrix of more than one row and at most MAX_GRID_COLUMNS columns gets one grid per column, and a
# tensor of at most FP16_ELEMENTS elements (an output bias) is stored as fp16 like a scalar.
MAX_GRID_COLUMNS = 8
FP16_ELEMENTS = 8


def stored_grid(shape: tuple[int, ...], columns: bool) -> str:
    """How one stored tensor is coded: ``"fp16"``, ``"column"`` (a grid per column) or ``"tensor"``."""
    n = 1
    for s in shape:
        n *= s
    if n == 1 or (columns and n <= FP16_ELEMENTS):
        return "fp16"
    if columns and len(shape) == 2 and shape[0] > 1 and shape[1] <= MAX_GRID_COLUMNS:
        return "column"
    return "tensor"


def quantize_columns(tensor: torch.Tensor, bits: int) -> tuple[torch.Tensor, list[float]]:
    """Integer symbols ``[rows, cols]`` and one step per column of a matrix."""
    t = tensor.detach().float()
    steps = grid_step(t.abs().amax(dim=0), bits)
    q = torch.round(t / steps).clamp(-levels(bits), levels(bits))
    return q.to(torch.int32), [float(s) for s in steps]


def fake_quantize_columns(param: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantise a batched matrix ``[G, rows, cols]`` per GOP and column, straight-through gradients."""
    step = grid_step(param.detach().abs().amax(dim=1, keepdim=True), bits)
    q = torch.round(param.detach() / step).clamp(-levels(bits), levels(bits)) * step
    return param + (q - param).detach()
