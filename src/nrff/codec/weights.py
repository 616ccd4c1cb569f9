"""Network weights <-> bytes.

Format 0 (bitstream v1): every tensor as IEEE fp16, little-endian, in the
order and shapes the field's layout defines; nothing else (shapes follow from
the header). Non-finite values are refused on both sides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from nrff.errors import BitstreamError

FP16 = 0
WEIGHT_FORMATS = {FP16: "fp16"}


def pack_fp16(tensors: Sequence[torch.Tensor]) -> bytes:
    if not tensors:
        return b""
    flat = torch.cat([t.detach().reshape(-1).float().cpu() for t in tensors]).numpy()
    half = flat.astype("<f2")
    if not np.all(np.isfinite(half)):
        raise ValueError("network weights are not finite in fp16")
    return half.tobytes()


def fp16_bytes(shapes: Sequence[tuple[int, ...]]) -> int:
    return 2 * sum(math.prod(s) for s in shapes)


def unpack_fp16(data: bytes, shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    expected = fp16_bytes(shapes)
    if len(data) != expected:
        raise BitstreamError(f"network weights hold {len(data)} bytes, the declared shapes need {expected}")
    flat = np.frombuffer(data, dtype="<f2").astype(np.float32)
    if not np.all(np.isfinite(flat)):
        raise BitstreamError("network weights contain non-finite values")
    out, offset = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(torch.from_numpy(flat[offset : offset + n].reshape(shape).copy()))
        offset += n
    return out


def round_to_fp16(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """What the decoder will see: the tensors rounded through fp16."""
    return [t.detach().half().float() for t in tensors]
