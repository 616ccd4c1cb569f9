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
