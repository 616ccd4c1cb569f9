"""Network weights <-> bytes: the weight codecs, chosen by the header's weight format.

Format 0 (fp16): every tensor as IEEE fp16, little-endian, in the order and
shapes the field's layout defines; nothing else (shapes follow from the
header). Non-finite values are refused on both sides.

Format 1 (quantised, entropy-coded): every tensor with more than one element
is quantised on its own uniform grid (see :mod:`nrff.quant`) and its integer
symbols are entropy-coded with a quantised Laplace model (zero mean, scale
fitted to the symbols) by constriction's ANS coder; one code stream per GOP.
Layout: for each quantised tensor ``f16 step, f16 laplace_scale``; for each
scalar ``f16 value``; then the ANS words (u32). The side information is 4
bytes per tensor.

Format 2 (quantised on column grids, entropy-coded): as format 1, except that a matrix of
more than one row and at most 8 columns (an output layer) has one grid and one Laplace scale
per column (``f16 step, f16 scale`` for each column, its symbols coded column by column), and a
tensor of at most 8 elements is stored as fp16 values (see :func:`nrff.quant.stored_grid`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from nrff.errors import BitstreamError
from nrff.quant import levels, quantize, quantize_columns, stored_grid

FP16 = 0
QUANTIZED = 1
QUANTIZED_COLUMNS = 2
# The Laplace scale is at least half a quantisation step: a symbol then costs at least
# -log2(1 - e^-1) = 0.66 bits, so a decoder can refuse shapes that need more symbols than
# the coded bytes could possibly hold, before decoding any (see SYMBOLS_PER_BYTE).
MIN_SCALE = 0.5
SYMBOLS_PER_BYTE = 32  # > 8 / 0.66 = 12.1, with margin
# An ANS decoder that has used up its words does not fail: from its empty state (0) it yields
# the lowest symbol, -L, for free, forever, and then reports itself empty, so "no data left
# over" alone lets random bytes through. An encoder does start from that state, so the first
# symbols it codes (the last ones decoded) cost nothing when they are -L: a real file can end
# in a few such symbols, never in many (-L is the largest negative weight of its tensor). A
# decoder that reaches its empty state with more than FREE_SYMBOLS symbols still to decode, or
# ends in a longer run of -L, ran past the end of its data.
FREE_SYMBOLS = 64
DECODE_CHUNK = 1 << 16  # symbols per decoder call (the empty state is checked between calls)


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


def _laplace(bits: int, scale: float):
    import constriction

    L = levels(bits)
    return constriction.stream.model.QuantizedLaplace(-L, L, 0.0, scale)


def _fp16_values(t: torch.Tensor) -> bytes:
    values = t.detach().reshape(-1).float().cpu().numpy().astype("<f2")
    if not np.all(np.isfinite(values)):
        raise ValueError("network weights are not finite in fp16")
    return values.tobytes()


def _laplace_scale(symbols: np.ndarray) -> float:
    return float(np.float16(max(float(np.mean(np.abs(symbols))), MIN_SCALE)))


def pack_quantized(tensors: Sequence[torch.Tensor], bits: int, columns: bool = False) -> bytes:
    """Quantise and entropy-code one GOP's tensors (format 1; format 2 with ``columns``)."""
    import constriction

    side = []
    coded: list[tuple[np.ndarray, float]] = []
    for t in tensors:
        grid = stored_grid(tuple(t.shape), columns)
        if grid == "fp16":
            side.append(_fp16_values(t))
            continue
        if grid == "column":
            q, steps = quantize_columns(t, bits)
            for c, step in enumerate(steps):
                symbols = q[:, c].numpy().astype(np.int32)
                scale = _laplace_scale(symbols)
                side.append(np.array([step, scale], dtype="<f2").tobytes())
                coded.append((symbols, scale))
            continue
        q, step = quantize(t, bits)
        symbols = q.reshape(-1).numpy().astype(np.int32)
        scale = _laplace_scale(symbols)
        side.append(np.array([step, scale], dtype="<f2").tobytes())
        coded.append((symbols, scale))
    encoder = constriction.stream.stack.AnsCoder()
    for symbols, scale in reversed(coded):
        encoder.encode_reverse(symbols, _laplace(bits, scale))
    words = encoder.get_compressed().astype("<u4")
    return b"".join(side) + words.tobytes()


def quantized_side_bytes(shapes: Sequence[tuple[int, ...]], columns: bool = False) -> int:
    total = 0
    for shape in shapes:
        grid = stored_grid(tuple(shape), columns)
        total += 2 * math.prod(shape) if grid == "fp16" else 4 * shape[1] if grid == "column" else 4
    return total


def _coded_symbols(shapes: Sequence[tuple[int, ...]], columns: bool) -> int:
    return sum(math.prod(s) for s in shapes if stored_grid(tuple(s), columns) != "fp16")


def unpack_quantized(data: bytes, shapes: Sequence[tuple[int, ...]], bits: int, columns: bool = False) -> list[torch.Tensor]:
    """Decode format 1 (format 2 with ``columns``); any inconsistency raises BitstreamError."""
    import constriction

    side = quantized_side_bytes(shapes, columns)
    if len(data) < side or (len(data) - side) % 4:
        raise BitstreamError(f"quantised weights hold {len(data)} bytes, which does not fit {len(shapes)} tensors")
    words = np.frombuffer(data, dtype="<u4", offset=side).astype(np.uint32)
    symbols_declared = _coded_symbols(shapes, columns)
    if symbols_declared > SYMBOLS_PER_BYTE * 4 * words.size + 256:
        raise BitstreamError(f"the declared network shapes need {symbols_declared} weights, more than "
                             f"{4 * words.size} bytes of entropy-coded data can hold")
    try:
        decoder = constriction.stream.stack.AnsCoder(words) if words.size else None
    except ValueError as exc:
        raise BitstreamError(f"corrupt entropy-coded weights ({exc})") from None
    reader = _SymbolReader(data, decoder, bits, symbols_declared)
    out = []
    for shape in shapes:
        grid = stored_grid(tuple(shape), columns)
        if grid == "fp16":
            out.append(torch.from_numpy(reader.fp16(math.prod(shape)).reshape(shape)))
        elif grid == "column":
            cols = [reader.grid(shape[0]) for _ in range(shape[1])]
            out.append(torch.from_numpy(np.stack(cols, axis=1).reshape(shape)))
        else:
            out.append(torch.from_numpy(reader.grid(math.prod(shape)).reshape(shape)))
    reader.finish()
    return out


class _SymbolReader:
    """Reads side information and entropy-coded symbols in bitstream order, checking each."""

    def __init__(self, data: bytes, decoder, bits: int, remaining: int):
        self.data, self.decoder, self.bits, self.remaining = data, decoder, bits, remaining
        self.pos = 0
        self.tail = _TrailingRun(-levels(bits))

    def fp16(self, n: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype="<f2", count=n, offset=self.pos).astype(np.float32)
        self.pos += 2 * n
        if not np.isfinite(values).all():
            raise BitstreamError("network weights contain non-finite values")
        return values.copy()

    def grid(self, n: int) -> np.ndarray:
        """``n`` values on one grid: its step and Laplace scale, then its symbols."""
        step, scale = np.frombuffer(self.data, dtype="<f2", count=2, offset=self.pos).astype(np.float64)
        self.pos += 4
        if not (np.isfinite(step) and np.isfinite(scale) and step > 0 and scale >= MIN_SCALE):
            raise BitstreamError(f"invalid quantisation parameters (step {step}, scale {scale})")
        if self.decoder is None:
            raise BitstreamError("entropy-coded weights are missing")
        model = _laplace(self.bits, float(scale))
        pieces = []
        try:
            for start in range(0, n, DECODE_CHUNK):
                if self.decoder.is_empty() and self.remaining > FREE_SYMBOLS:
                    raise BitstreamError(_PAST_END)
                k = min(DECODE_CHUNK, n - start)
                pieces.append(self.decoder.decode(model, k))
                self.remaining -= k
        except (ValueError, RuntimeError, AssertionError) as exc:
            raise BitstreamError(f"corrupt entropy-coded weights ({exc})") from None
        symbols = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        self.tail.add(symbols)
        return symbols.astype(np.float32) * np.float32(step)

    def finish(self) -> None:
        if self.decoder is not None and not self.decoder.is_empty():
            raise BitstreamError("entropy-coded weights have data left over")
        if self.tail.length > FREE_SYMBOLS:
            raise BitstreamError(_PAST_END)


_PAST_END = "entropy-coded weights end before the declared weights do (the coder ran past the end of its data)"


class _TrailingRun:
    """The length of the run of ``value`` at the end of everything added so far."""

    def __init__(self, value: int):
        self.value, self.length = value, 0

    def add(self, symbols: np.ndarray) -> None:
        other = np.flatnonzero(symbols != self.value)
        self.length = self.length + symbols.size if other.size == 0 else symbols.size - 1 - int(other[-1])


# ----------------------------------------------------------------------------- codecs


class WeightCodec:
    """One weight format: ``pack``/``unpack`` a GOP's tensors, ``check`` a payload's size against
    the declared shapes before decoding it, and ``estimate`` the bytes of a shape for the planner."""

    format_id: int
    name: str
    bits: int = 0  # stored in the header (quant_bits)

    def pack(self, tensors: Sequence[torch.Tensor]) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def unpack(self, data: bytes, shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def check(self, data: bytes, shapes: Sequence[tuple[int, ...]], what: str, units: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def estimate(self, shapes: Sequence[tuple[int, ...]], bytes_per_param: float) -> float:  # pragma: no cover
        raise NotImplementedError


class Fp16Weights(WeightCodec):
    """Every tensor as IEEE fp16: the size follows from the shapes exactly."""

    format_id, name = FP16, "fp16"

    def pack(self, tensors):
        return pack_fp16(tensors)

    def unpack(self, data, shapes):
        return unpack_fp16(data, shapes)

    def check(self, data, shapes, what, units):
        if len(data) != fp16_bytes(shapes):
            raise BitstreamError(f"{what} holds {len(data)} bytes, width {units} needs {fp16_bytes(shapes)}")
        if not np.isfinite(np.frombuffer(data, dtype="<f2")).all():
            raise BitstreamError(f"{what} contains non-finite weights")

    def estimate(self, shapes, bytes_per_param):
        return sum(math.prod(s) for s in shapes) * bytes_per_param


class QuantizedWeights(WeightCodec):
    """Per-tensor uniform grids of ``bits`` bits, Laplace models, one ANS stream per GOP."""

    format_id, name = QUANTIZED, "quantised + entropy-coded"
    columns = False

    def __init__(self, bits: int):
        self.bits = bits

    def pack(self, tensors):
        return pack_quantized(tensors, self.bits, self.columns)

    def unpack(self, data, shapes):
        return unpack_quantized(data, shapes, self.bits, self.columns)

    def check(self, data, shapes, what, units):
        side = quantized_side_bytes(shapes, self.columns)
        if len(data) < side or (len(data) - side) % 4:
            raise BitstreamError(f"{what} holds {len(data)} bytes, which does not fit width {units}")

    def estimate(self, shapes, bytes_per_param):
        if not shapes:
            return 0
        coded = _coded_symbols(shapes, self.columns)
        return quantized_side_bytes(shapes, self.columns) + coded * bytes_per_param


class ColumnQuantizedWeights(QuantizedWeights):
    """Format 1 with a grid per column for output layers and fp16 for tensors of at most 8 elements."""

    format_id, name = QUANTIZED_COLUMNS, "quantised on column grids + entropy-coded"
    columns = True


# format id -> factory taking the header's quant_bits; never renumber: files depend on them
WEIGHT_CODECS = {FP16: lambda bits: Fp16Weights(), QUANTIZED: QuantizedWeights, QUANTIZED_COLUMNS: ColumnQuantizedWeights}
GRIDS = {"tensor": QuantizedWeights, "column": ColumnQuantizedWeights}


def weight_codec(format_id: int, bits: int = 0) -> WeightCodec:
    """The codec of a weight format (as stored in a header)."""
    if format_id not in WEIGHT_CODECS:
        raise BitstreamError(f"unknown weight format {format_id}")
    return WEIGHT_CODECS[format_id](bits)


def weight_codec_for(quant_bits: int | None, grid: str = "tensor") -> WeightCodec:
    """The codec an encode uses: fp16 without ``quant_bits``, else quantised on ``grid``
    (``"tensor"``: format 1, ``"column"``: format 2) + entropy-coded."""
    return Fp16Weights() if quant_bits is None else GRIDS[grid](quant_bits)
