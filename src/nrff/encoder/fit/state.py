"""The training state of a chunk, typed and versioned, so that a checkpoint resumes it exactly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

STATE_VERSION = 1


@dataclass
class TrainerState:
    """Everything needed to continue a chunk's training where it stopped (same bytes at the end)."""

    step: int
    adam_steps: int
    params: list[torch.Tensor]
    exp_avg: list[torch.Tensor]
    exp_avg_sq: list[torch.Tensor]
    snapshot: list[torch.Tensor]  # the guard's last good copy of params + moments
    lr_scale: torch.Tensor
    best_psnr: torch.Tensor
    generator: torch.Tensor  # the pixel sampler's random state
    recoveries: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    version: int = STATE_VERSION

    _LISTS = ("params", "exp_avg", "exp_avg_sq", "snapshot")
    _TENSORS = ("lr_scale", "best_psnr", "generator")
    _SCALARS = ("step", "adam_steps", "recoveries", "seconds", "version")

    def to_saved(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON-able metadata and named arrays (no pickle)."""
        meta = {name: getattr(self, name) for name in self._SCALARS}
        arrays: dict[str, np.ndarray] = {}
        for name in self._LISTS:
            tensors = getattr(self, name)
            meta[f"{name}_count"] = len(tensors)
            for i, t in enumerate(tensors):
                arrays[f"{name}_{i}"] = t.detach().cpu().numpy()
        for name in self._TENSORS:
            arrays[name] = getattr(self, name).detach().cpu().numpy()
        return meta, arrays

    @classmethod
    def from_saved(cls, meta: dict, arrays, device: torch.device) -> TrainerState:
        """The inverse of :meth:`to_saved`; ``arrays`` is any mapping of names to arrays (an npz)."""
        if meta.get("version") != STATE_VERSION:
            raise ValueError(f"training state version {meta.get('version')} (this nrff reads {STATE_VERSION})")
        values = {name: meta[name] for name in cls._SCALARS}
        for name in cls._LISTS:
            values[name] = [torch.from_numpy(arrays[f"{name}_{i}"]).to(device) for i in range(int(meta[f"{name}_count"]))]
        for name in cls._TENSORS:
            values[name] = torch.from_numpy(arrays[name])
            if name != "generator":
                values[name] = values[name].to(device)
        return cls(**values)


FIELDS = tuple(f.name for f in dataclasses.fields(TrainerState))
