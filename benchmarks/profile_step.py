"""Where a training step spends its time: torch.profiler over a few steps of one clip.

    python benchmarks/profile_step.py ../shared/data/sintel_alley_2 --frames 0:20 --crf 22
    python benchmarks/profile_step.py ../shared/data/sintel_alley_2 --frames 0:20 --crf 22 --stride 16 --compile on

Runs the real encoder (key frames, sizing, the first chunk's trainer) and, at the
first logging window, times ``--steps`` further steps and profiles ten more, then
stops the encode. Prints milliseconds per step and the operators sorted by self
time (CPU, or CUDA kernels on a GPU).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from nrff.api import EncodeConfig, encode


class _Done(Exception):
    """Raised from the monitor to end the encode once the steps are measured."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip")
    ap.add_argument("--frames", default=None)
    ap.add_argument("--crf", type=float, default=22)
    ap.add_argument("--method", default="nrff")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--stride", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rows", type=int, default=20, help="operators to list")
    ap.add_argument("--compile", default="off", help="off, on or graphs (timed after the first window compiled it)")
    args = ap.parse_args()
    config = EncodeConfig.from_preset(args.preset, method=args.method, crf=args.crf, pixel_stride=args.stride,
                                      device=args.device, log_every=5, compile=args.compile)

    def measure(trainer) -> None:
        device = trainer.device

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()

        sync()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()
        sync()
        per_step = (time.perf_counter() - t0) / args.steps
        s = trainer.sampler
        points = trainer.G * s.batch * s.rows * s.cols
        print(f"{trainer.G} GOPs of {trainer.data.height}x{trainer.data.width}, widths {sorted(set(trainer.model.units))}, "
              f"{points} points per step, {torch.get_num_threads()} threads on {device}: "
              f"{1000 * per_step:.2f} ms/step, {points / per_step / 1e6:.2f} Mpoint/s, compile {trainer.compiled.mode}"
              + (f" (fell back: {trainer.compiled.fallback_reason})" if trainer.compiled.fallback_reason else ""))
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            for _ in range(10):
                trainer.train_step()
            sync()
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=args.rows))
        raise _Done

    with tempfile.TemporaryDirectory() as tmp:
        try:
            encode(args.clip, Path(tmp) / "x.nrff", config, frames=args.frames, checkpoint_seconds=None, monitor=measure)
        except _Done:
            pass


if __name__ == "__main__":
    main()
