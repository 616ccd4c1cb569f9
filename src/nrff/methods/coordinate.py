"""Coordinate-field methods: one small network per GOP, f(t, y, x), all GOPs batched.

They share the batched trainer (:mod:`nrff.encoder.fit`) and the renderer
(:mod:`nrff.decoder.render`); a subclass says what its networks output, how a
frame is rebuilt from those outputs (:meth:`decompose`) and which reference
images it warps, in training and in rendering.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from nrff.config import TrainConfig
from nrff.fields.mlp import BatchedField, SwishField
from nrff.methods.base import FieldShape, Method
from nrff.warp import Sampler

if TYPE_CHECKING:  # pragma: no cover
    from nrff.decoder.render import FieldRenderer
    from nrff.encoder.fit.trainer import Trainer
    from nrff.gop import Gop



class CoordinateMethod(Method):
    mixed_precision = True  # bf16 autocast of the hidden layers on CUDA while training
    column_grids = True  # the fields apply format 2's grids in fake quantisation (nrff.fields.mlp)
    reference_names: dict[str, str] = {}  # part name of a flow -> what it points to (for figures)

    # ------------------------------------------------------------- networks
    def stored_shapes(self, shape: FieldShape, units: int) -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        for outputs in shape.network_outputs():
            out += SwishField.stored_shapes(units, shape.encoding.size, outputs, shape.hidden_layers)
        return out

    def macs_per_pixel(self, shape: FieldShape, units: int) -> float:
        """Per network: the encoding into the first layer, the hidden layers ``reuse`` times each,
        the output layer."""
        E = shape.encoding.size
        return float(sum((E + out) * units + shape.hidden_layers * shape.reuse * units * units
                         for out in shape.network_outputs()))

    def build_networks(self, shape: FieldShape, units: Sequence[int], generators=None, zero_output: bool = False) -> list[BatchedField]:
        nets: list[BatchedField] = []
        for n, out in enumerate(shape.network_outputs()):
            gens = generators[n] if generators is not None else None
            nets.append(SwishField(units, shape.encoding, out, shape.hidden_layers, shape.reuse, generators=gens,
                                   zero_output=zero_output))
        return nets

    def decompose(self, raw: torch.Tensor, sample: Sampler | None) -> dict[str, torch.Tensor]:  # pragma: no cover
        """The parts of a reconstruction ``[G, B, R, C, k]`` from raw outputs: ``frame`` (unclamped) and,
        for methods with references, flows, warped references, mixing weight and residual."""
        raise NotImplementedError

    def reconstruct(self, raw: torch.Tensor, sample: Sampler | None) -> torch.Tensor:
        return self.decompose(raw, sample)["frame"]

    # ----------------------------------------------------------- references
    def training_sampler(self, trainer: Trainer, frames: torch.Tensor, base_x: torch.Tensor, base_y: torch.Tensor) -> Sampler | None:
        """How the frames ``[G, B]`` of a training step sample their references (None: no references)."""
        return None

    def render_sampler(self, renderer: FieldRenderer, local_times, keys_at, base_x, base_y, chain) -> Sampler | None:
        """How frames at ``local_times [G, B]`` sample their references while rendering."""
        return None

    def prepare_step(self, trainer: Trainer) -> None:
        """Called before every training step (single reference: refresh the reference chain)."""

    def reference_chain(self, renderer: FieldRenderer, own_keys: torch.Tensor | None) -> torch.Tensor | None:
        """Frames other frames warp from, rendered before the others (single reference), or None."""
        return None

    def checkpoint_allowed(self, trainer: Trainer) -> bool:
        """Whether the training state can be saved now and resumed to the same bytes."""
        return True

    def extra_training_bytes(self, gop: Gop, height: int, width: int) -> int:
        return 0

    def extra_render_bytes(self, gop: Gop, height: int, width: int) -> int:
        return 0

    # ------------------------------------------------------------ pipelines
    def fit(self, job):
        from nrff.encoder.fit.chunks import fit_fields

        return fit_fields(job, self)

    def render(self, video):
        from nrff.decoder.video import render_fields

        return render_fields(video, self)

    def frame_parts(self, video, frame):
        from nrff.decoder.parts import field_parts

        return field_parts(video, self, frame)

    # -------------------------------------------------------------- presets
    def schedule(self, preset: str) -> TrainConfig:
        """``paper``: 5,000 epochs, 1/64 of the pixels per step; ``default``: 800 epochs of 1/256 of
        the pixels (a third of the time of 800 paper epochs for 0.2 dB); ``fast``: our own short
        schedule for small clips, zero-initialised outputs (every frame starts as a copy of its references)."""
        if preset == "paper":
            return TrainConfig(epochs=5000)
        if preset == "default":
            return TrainConfig(epochs=800, pixel_stride=16)
        return TrainConfig(epochs=300, pixel_stride=4, log_every=25, zero_output=True)
