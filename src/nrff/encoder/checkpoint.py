"""Crash-safe encoding: periodic checkpoints of the training state.

A checkpoint sits beside the output (``OUT.nrff.ckpt``) and holds the weights
of finished GOPs and the full state of the chunk being trained
(:class:`~nrff.encoder.fit.state.TrainerState`: weights, Adam moments,
roll-back snapshots, step, random generator state), so ``--resume``
continues exactly where a killed encode stopped. It is written to a
temporary file and renamed into place, stored with ``numpy.savez`` and read
back with ``allow_pickle=False``, and tied to the encode's settings by a
fingerprint so that it is never resumed with different ones. It is removed
once the output file is written. Key frames are not stored: coding them again
on resume is deterministic and cheap.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nrff.errors import InputError

FORMAT = 2


@dataclass
class Checkpoint:
    chunk: int  # the chunk in progress (or the next one)
    weights: dict[int, bytes]  # finished GOPs
    trainer: object | None  # TrainerState of the chunk in progress, or None


def checkpoint_path(output: str | os.PathLike) -> Path:
    return Path(str(output) + ".ckpt")


def _bytes_array(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).copy()


def save_checkpoint(path: Path, fingerprint: dict, weights: dict[int, bytes], chunk: int, trainer_state) -> None:
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "fingerprint": fingerprint, "chunk": chunk, "weights": sorted(weights), "trainer": None}
    for g, data in weights.items():
        arrays[f"weights_{g}"] = _bytes_array(data)
    if trainer_state is not None:
        meta["trainer"], state_arrays = trainer_state.to_saved()
        arrays.update({f"trainer_{k}": v for k, v in state_arrays.items()})
    arrays["meta"] = _bytes_array(json.dumps(meta).encode())
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class _Prefixed:
    def __init__(self, npz, prefix: str):
        self.npz, self.prefix = npz, prefix

    def __getitem__(self, name: str) -> np.ndarray:
        return self.npz[self.prefix + name]


def load_checkpoint(path: Path, fingerprint: dict, device: torch.device) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` for the same encode."""
    from nrff.encoder.fit.state import TrainerState

    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(bytes(npz["meta"]).decode())
            if meta.get("format") != FORMAT:
                raise InputError(f"{path}: a checkpoint of another nrff version; pass --force to start over")
            if meta["fingerprint"] != fingerprint:
                raise InputError(f"{path} was written by an encode with other settings or input; "
                                 "pass --force to start over")
            weights = {g: bytes(npz[f"weights_{g}"]) for g in meta["weights"]}
            trainer = None
            if meta["trainer"] is not None:
                trainer = TrainerState.from_saved(meta["trainer"], _Prefixed(npz, "trainer_"), device)
            return Checkpoint(meta["chunk"], weights, trainer)
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable checkpoint ({exc}); pass --force to start over") from None
