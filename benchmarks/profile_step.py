"""Where a training step spends its time: torch.profiler over a few steps of one clip.

    python benchmarks/profile_step.py ../shared/data/sintel_alley_2 --frames 0:20 --crf 22

Prints milliseconds per step (mean of ``--steps`` after a warm-up) and the operators
sorted by self time (CPU, or CUDA kernels on a GPU).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from nrff.api import _extended_keys, network_widths, resolve_device
from nrff.codec.keyframes import H26xIntra
from nrff.config import EncodeConfig, KeyframeConfig, preset_train_config, with_overrides
from nrff.fields.encoding import PositionalEncoding
from nrff.fields.models import FieldModel, FieldShape, get_method
from nrff.gop import split_gops
from nrff.train import GopData, Trainer
from nrff.video import open_video


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
    args = ap.parse_args()

    device = resolve_device(args.device)
    video = open_video(args.clip, frames=args.frames)
    frames = video.read_all()
    N, H, W, _ = frames.shape
    train = with_overrides(preset_train_config(args.preset, args.method), pixel_stride=args.stride)
    config = EncodeConfig(train=train, keyframes=KeyframeConfig(crf=args.crf))
    spec = get_method(args.method)
    gops = split_gops(N, config.gop)
    codec = H26xIntra(crf=args.crf)
    coded = {g.index: codec.encode(frames[g.key_frame]) for g in gops}
    keys = {g: codec.decode(b, W, H) for g, b in coded.items()}
    shape = FieldShape(spec.name, spec.default_split, PositionalEncoding.for_sizes(config.gop, H, W), 1, 2)
    widths = network_widths(config, shape, gops, {g: len(b) for g, b in coded.items()}, H * W, N)
    lmax = max(g.length for g in gops)
    clip = torch.zeros(len(gops), lmax, H, W, 3, dtype=torch.uint8)
    for i, g in enumerate(gops):
        clip[i, : g.length] = torch.from_numpy(frames[g.start : g.stop])
    data = GopData(gops, clip.to(device), _extended_keys(keys, 0, len(gops) - 1, len(gops), device), len(gops), lmax)
    model = FieldModel(shape, widths, [g.index for g in gops]).to(device)
    trainer = Trainer(model, spec, data, train, config.lr, amp=train.amp)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(5):
        trainer.train_step()
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()
    sync()
    per_step = (time.perf_counter() - t0) / args.steps
    points = len(gops) * -(-H // train.pixel_stride) * -(-W // train.pixel_stride)
    print(f"{N} frames {W}x{H}, {len(gops)} GOPs, widths {sorted(set(widths))}, {points} points per step, "
          f"{torch.get_num_threads()} threads on {device}: {1000 * per_step:.2f} ms/step, {points / per_step / 1e6:.2f} Mpoint/s")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(10):
            trainer.train_step()
        sync()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows))


if __name__ == "__main__":
    main()
