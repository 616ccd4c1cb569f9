"""What every method is: the networks it stores, how it is sized, fitted and rendered.

A method is one registered object (see :mod:`nrff.methods`). The encoder asks it
for its GOP length, its training schedule, the network widths that fit a byte
budget and to fit its networks; the decoder asks it to check a header and to
render frames. Nothing outside the method tests which method it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nrff.codec.container import MAX_UNITS
from nrff.errors import BitstreamError, InputError
from nrff.fields.encoding import PositionalEncoding

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from nrff.codec.container import Header
    from nrff.config import TrainConfig
    from nrff.decoder.video import DecodedVideo
    from nrff.encoder.fit.job import FitJob, FitOutcome
    from nrff.encoder.plan import SizingInputs


@dataclass(frozen=True)
class FieldShape:
    """Everything needed to rebuild the networks of a clip (all of it is in the bitstream header)."""

    method: Method
    split: bool
    encoding: PositionalEncoding
    hidden_layers: int
    reuse: int
    frame_height: int = 0  # only NeRV's architecture depends on the frame size
    frame_width: int = 0

    def network_outputs(self) -> tuple[int, ...]:
        return self.method.network_outputs(self.split)

    def shapes(self, units: int) -> list[tuple[int, ...]]:
        """Shapes of one GOP's stored tensors at width ``units``, in bitstream order (none at 0)."""
        return [] if units == 0 else self.method.stored_shapes(self, units)

    def param_count(self, units: int) -> int:
        """Parameters of all networks of one GOP at width ``units``."""
        return int(sum(math.prod(s) for s in self.shapes(units)))

    def units_for_bytes(self, budget_bytes: float, bytes_per_param: float = 2.0, max_units: int = 1024) -> int:
        """The even width whose parameters (at ``bytes_per_param``, 2 for fp16) come closest to
        ``budget_bytes`` (at least 2)."""
        best, best_err = 2, float("inf")
        for w in range(2, max_units + 1, 2):
            size = self.param_count(w) * bytes_per_param
            err = abs(size - budget_bytes)
            if err < best_err:
                best, best_err = w, err
            if size > budget_bytes:
                break
        return best


class Method:
    """A way of representing a clip. Subclasses fill in the class attributes and the hooks."""

    name: str
    id: int  # bitstream id; never renumber
    lr: float  # the paper's learning rate for this method
    uses_keyframes: bool = True
    outputs: tuple[int, ...] = ()  # output channels of the one network (no split)
    split_outputs: tuple[int, ...] | None = None  # per network with split
    default_split: bool = False
    max_units: int = MAX_UNITS
    column_grids: bool = False  # trains on the column grids of weight format 2 (--quant-grid column)

    def __repr__(self) -> str:
        return f"<method {self.name}>"

    # ------------------------------------------------------------------ shape
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

    def stored_shapes(self, shape: FieldShape, units: int) -> list[tuple[int, ...]]:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------- encoder
    def schedule(self, preset: str) -> TrainConfig:  # pragma: no cover - abstract
        """The training schedule of a named preset for this method."""
        raise NotImplementedError

    def gop_length(self, requested: int, frames: int) -> int:
        """The GOP length an encode of ``frames`` frames uses when ``requested`` was asked for."""
        return requested

    def needs_network(self, length: int) -> bool:
        """Whether a GOP of ``length`` frames has anything for a network to reconstruct."""
        return length > 1 if self.uses_keyframes else True

    def plan_units(self, inputs: SizingInputs) -> list[int]:
        """Per-GOP network widths for the byte budget (see :mod:`nrff.encoder.plan`)."""
        from nrff.encoder.plan import default_units

        return default_units(self, inputs)

    def fit(self, job: FitJob) -> FitOutcome:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------- decoder
    def check_header(self, header: Header) -> None:
        """Refuse a header this method cannot have written (BitstreamError)."""
        if header.split and self.split_outputs is None:
            raise BitstreamError(f"method {self.name} cannot be split")
        if header.has_keyframes != self.uses_keyframes:
            if self.uses_keyframes:
                raise BitstreamError(f"method {self.name} needs key frames but the header names no key-frame codec")
            raise BitstreamError(f"method {self.name} has no key frames but the header names a key-frame codec")
        for i, gop in enumerate(header.gops):
            if gop.units > self.max_units:
                raise BitstreamError(f"GOP {i} declares network width {gop.units} (at most {self.max_units} for {self.name})")
            if self.needs_network(gop.length) and gop.units == 0:
                raise BitstreamError(f"GOP {i} has frames to reconstruct but no network")
            if not self.needs_network(gop.length) and gop.units != 0:
                raise BitstreamError(f"GOP {i} has nothing to reconstruct but declares a network")

    def macs_per_pixel(self, shape: FieldShape, units: int) -> float:
        """Multiply-accumulates one GOP's networks spend per output pixel at width ``units`` (the
        decode budget, :mod:`nrff.decoder.budget`): by default every stored weight once."""
        return float(shape.param_count(units))

    def frame_render_bytes(self, shape: FieldShape, units: int, out_width: int, out_height: int) -> float:
        """Bytes rendering one output frame takes at least (0: rendered in bounded row chunks)."""
        return 0.0

    def chain_frames(self, length: int) -> int:
        """Frames of a GOP of ``length`` rendered at the encode-time size before the output
        (single reference: its reference chain)."""
        return 0

    def render(self, video: DecodedVideo) -> Iterator[np.ndarray]:  # pragma: no cover - abstract
        """Every output frame of a decoded stream, in order, as uint8 ``[H, W, 3]``."""
        raise NotImplementedError

    def frame_parts(self, video: DecodedVideo, frame: float) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        """The parts frame ``frame`` is made of, each ``[H, W, k]`` float32."""
        raise NotImplementedError
