"""Spreading the GOPs of a long video over processes, GPUs or machines (``torchrun``).

Once the key frames are coded, the GOPs' networks are independent, so each
rank trains a contiguous shard of them and rank 0 gathers the weights and
writes the one bitstream. Training is independent of which GOPs share a
batch (see :mod:`nrff.encoder.fit.trainer`), so the file is byte-identical to a
single-process encode with the same seed, on the same kind of device.

Run ``torchrun --nproc-per-node N $(which nrff) encode ...``; on several
machines add ``--nnodes M --node-rank R --rdzv-endpoint HOST:PORT``. CPU ranks
use the gloo backend, CUDA ranks NCCL with one GPU per rank.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from nrff.gop import Gop


@dataclass
class Distributed:
    rank: int
    world: int
    local_rank: int

    @classmethod
    def from_env(cls) -> Distributed | None:
        """The torchrun environment, or None for a plain single-process run."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> torch.device:
        if requested in ("auto", "cuda") and torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        if requested.startswith("cuda"):
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def start(self, device: torch.device) -> None:
        if not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        self._device = device

    def stop(self) -> None:
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def shard(self, gops: Sequence[Gop]) -> list[Gop]:
        """This rank's contiguous share of the GOPs (balanced by frame count)."""
        lengths = np.cumsum([0] + [g.length for g in gops])
        bounds = [int(np.searchsorted(lengths, lengths[-1] * r / self.world)) for r in range(self.world + 1)]
        bounds[-1] = len(gops)
        return list(gops[bounds[self.rank] : bounds[self.rank + 1]])

    def gather_weights(self, weights: dict[int, bytes]) -> dict[int, bytes]:
        """All ranks' weights on rank 0 (other ranks get an empty dict); no pickling."""
        device = self._device
        index = torch.tensor([v for g, data in sorted(weights.items()) for v in (g, len(data))], dtype=torch.int64)
        payload = torch.frombuffer(bytearray(b"".join(d for _, d in sorted(weights.items())) or b"\0"), dtype=torch.uint8)
        sizes = torch.tensor([index.numel(), payload.numel()], dtype=torch.int64, device=device)
        all_sizes = [torch.zeros_like(sizes) for _ in range(self.world)]
        dist.all_gather(all_sizes, sizes)
        max_index = int(max(s[0] for s in all_sizes))
        max_payload = int(max(s[1] for s in all_sizes))
        padded_index = torch.zeros(max_index, dtype=torch.int64, device=device)
        padded_index[: index.numel()] = index.to(device)
        padded_payload = torch.zeros(max_payload, dtype=torch.uint8, device=device)
        padded_payload[: payload.numel()] = payload.to(device)
        indices = [torch.zeros_like(padded_index) for _ in range(self.world)]
        payloads = [torch.zeros_like(padded_payload) for _ in range(self.world)]
        dist.all_gather(indices, padded_index)
        dist.all_gather(payloads, padded_payload)
        if not self.is_main:
            return {}
        merged: dict[int, bytes] = {}
        for size, idx, data in zip(all_sizes, indices, payloads):
            pairs = idx[: int(size[0])].cpu().view(-1, 2).tolist()
            raw = data.cpu().numpy().tobytes()
            offset = 0
            for g, n in pairs:
                merged[int(g)] = raw[offset : offset + n]
                offset += n
        return merged
