"""Crash-safe encoding: periodic checkpoints of the training state.

A checkpoint sits beside the output (``OUT.nrff.ckpt``) and holds the weights
of finished GOPs and the full state of the chunk
being trained (weights, Adam moments, roll-back snapshots, step, random
generator state), so ``--resume`` continues exactly where a killed encode
stopped. It is written to a temporary file and renamed into place, stored
with ``numpy.savez`` and read back with ``allow_pickle=False``, and tied to
the encode's settings by a fingerprint so that it is never resumed with
different ones. It is removed once the output file is written. Key frames
are not stored: coding them again on resume is deterministic and cheap.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from nrff.errors import InputError

FORMAT = 1


def checkpoint_path(output: str | os.PathLike) -> Path:
    return Path(str(output) + ".ckpt")


def _bytes_array(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).copy()


def save_checkpoint(path: Path, fingerprint: dict, weights: dict[int, bytes], chunk: int, trainer_state: dict | None) -> None:
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "fingerprint": fingerprint, "chunk": chunk, "weights": sorted(weights), "trainer": None}
    for g, data in weights.items():
        arrays[f"weights_{g}"] = _bytes_array(data)
    if trainer_state is not None:
        tensors = trainer_state["tensors"]
        meta["trainer"] = {
            "step": trainer_state["step"], "adam_steps": trainer_state["adam_steps"], "tensors": len(tensors),
            "recoveries": trainer_state["recoveries"], "seconds": trainer_state["seconds"],
        }
        for i, t in enumerate(tensors):
            arrays[f"tensor_{i}"] = t.detach().cpu().numpy()
        arrays["lr_scale"] = trainer_state["lr_scale"].cpu().numpy()
        arrays["best_psnr"] = trainer_state["best_psnr"].cpu().numpy()
        arrays["generator"] = trainer_state["generator"].cpu().numpy()
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


def load_checkpoint(path: Path, fingerprint: dict, device: torch.device) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` for the same encode."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(bytes(npz["meta"]).decode())
            if meta.get("format") != FORMAT:
                raise InputError(f"{path}: unsupported checkpoint format")
            if meta["fingerprint"] != fingerprint:
                raise InputError(f"{path} was written by an encode with other settings or input; "
                                 "pass --force to start over")
            state = {
                "chunk": meta["chunk"],
                "weights": {g: bytes(npz[f"weights_{g}"]) for g in meta["weights"]},
                "trainer": None,
            }
            t = meta["trainer"]
            if t is not None:
                state["trainer"] = {
                    "step": t["step"], "adam_steps": t["adam_steps"], "recoveries": t["recoveries"], "seconds": t["seconds"],
                    "tensors": [torch.from_numpy(npz[f"tensor_{i}"]).to(device) for i in range(t["tensors"])],
                    "lr_scale": torch.from_numpy(npz["lr_scale"]).to(device),
                    "best_psnr": torch.from_numpy(npz["best_psnr"]).to(device),
                    "generator": torch.from_numpy(npz["generator"]),
                }
            return state
    except InputError:
        raise
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable checkpoint ({exc}); pass --force to start over") from None
