"""The decode budget: how much work a file may ask of a decoder, checked before anything is allocated.

A valid file can declare a network far more expensive than anything the encoder writes: the
container allows widths up to 4096, 8 hidden layers applied up to 16 times, and 10 M frames,
so a few hundred kilobytes can ask for hours of rendering. The budget limits what a decoder
accepts to what nrff's own encoder produces, with room to spare:

* network width (hidden units) at most 1024: the encoder sizes networks up to 1024 wide
  (NeRV: 512 channels, its own limit);
* at most 4 hidden layers, each applied at most 4 times (the encoder's default is 1 layer
  applied twice; deeper networks are an API-only research option);
* at most 2^23 (8.4 M) multiply-accumulates per output pixel for one GOP's networks (the widest
  default network the encoder writes, split nrff at width 1024, needs 4.3 M);
* at most 2 GiB to render one frame (NeRV renders whole frames and its activations grow with
  the frame: 0.14 GiB at 1080p with 64 channels, 0.8 GiB with the maximum 512, 3.5 GiB at
  8192x8192; coordinate fields render in row chunks and need little);
* at most 10^15 multiply-accumulates for the whole decode (output frames x output pixels x
  MACs per pixel, plus the native-size reference chain of single-reference GOPs): about a day
  at 10 G MAC/s, a 2-core CPU's rate; a 1000-frame 1080p file of the default preset needs
  about 2 x 10^14.

A file over the budget raises :class:`~nrff.errors.BitstreamError` naming the limit, before any
weight is decoded or any frame allocated. Research files (deeper or wider networks written
through the API) decode with ``decode(..., budget=DecodeBudget.unlimited())``, or
``nrff decode --no-decode-budget``; a service can tighten the total with
``DecodeBudget(max_work=...)`` / ``nrff decode --max-work``.
"""

from __future__ import annotations

from dataclasses import dataclass

from nrff.errors import BitstreamError

OVERRIDE = "pass --no-decode-budget (API: budget=DecodeBudget.unlimited()) to decode it anyway"


@dataclass(frozen=True)
class DecodeBudget:
    """Limits on the work a file may declare. ``None`` for a limit: not checked."""

    max_units: int | None = 1024
    max_hidden_layers: int | None = 4
    max_reuse: int | None = 4
    max_macs_per_pixel: float | None = float(1 << 23)
    max_work: float | None = 1e15  # multiply-accumulates for the whole decode
    max_frame_bytes: float | None = float(2 * 1024**3)  # memory rendering one frame takes (NeRV)

    @classmethod
    def unlimited(cls) -> DecodeBudget:
        """No limits beyond the container's own (for research files one trusts)."""
        return cls(None, None, None, None, None, None)


DEFAULT_BUDGET = DecodeBudget()


def _refuse(what: str) -> None:
    raise BitstreamError(f"{what}, over the decode budget; {OVERRIDE}")


def declared_work(stream, out_width: int, out_height: int, fps_factor: int) -> tuple[float, float]:
    """(largest MACs per output pixel of a GOP, total MACs) a decode of ``stream`` at that output
    size and frame-rate factor declares."""
    h = stream.header
    method, shape = stream.method, stream.shape
    peak, total = 0.0, 0.0
    native = h.width * h.height
    for gop in h.gops:
        if gop.units == 0:
            continue
        macs = float(method.macs_per_pixel(shape, gop.units))
        peak = max(peak, macs)
        frames = gop.length * fps_factor
        total += frames * out_width * out_height * macs + method.chain_frames(gop.length) * native * macs
    return peak, total


def check_budget(stream, out_width: int, out_height: int, fps_factor: int, budget: DecodeBudget | None) -> None:
    """Refuse a stream whose networks or total work exceed ``budget`` (None: the default budget)."""
    b = DEFAULT_BUDGET if budget is None else budget
    h = stream.header
    if b.max_hidden_layers is not None and h.hidden_layers > b.max_hidden_layers:
        _refuse(f"the file declares {h.hidden_layers} hidden layers (at most {b.max_hidden_layers})")
    if b.max_reuse is not None and h.reuse > b.max_reuse:
        _refuse(f"the file applies each hidden layer {h.reuse} times (at most {b.max_reuse})")
    if b.max_units is not None:
        widest = max((g.units for g in h.gops), default=0)
        if widest > b.max_units:
            _refuse(f"the file declares networks {widest} units wide (at most {b.max_units})")
    peak, total = declared_work(stream, out_width, out_height, fps_factor)
    if b.max_macs_per_pixel is not None and peak > b.max_macs_per_pixel:
        _refuse(f"the file's networks need {peak:.3g} multiply-adds per pixel (at most {b.max_macs_per_pixel:.3g})")
    if b.max_frame_bytes is not None:
        need = max((stream.method.frame_render_bytes(stream.shape, g.units, out_width, out_height) for g in h.gops if g.units),
                   default=0.0)
        if need > b.max_frame_bytes:
            _refuse(f"rendering one {out_width}x{out_height} frame of the file takes {need / 2**30:.1f} GiB "
                    f"(at most {b.max_frame_bytes / 2**30:.1f} GiB)")
    if b.max_work is not None and total > b.max_work:
        _refuse(f"decoding the file takes {total:.3g} multiply-adds (at most {b.max_work:.3g}; --max-work sets the limit)")
