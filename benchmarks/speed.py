"""Encode and decode speed of nrff on one clip (CPU or CUDA).

Prints encode wall time, training time per step, pixels processed per second,
the PSNR trace over training time and the time to reach a target PSNR, decode
frames per second at the native size and at 1920x1080, and peak host / GPU
memory; then one JSON line with everything.

    python benchmarks/speed.py src/nrff/data/sample --preset fast
    python benchmarks/speed.py ../shared/data/sintel_alley_2 --frames 0:20 --crf 22 --preset paper \
        --target-psnr 34.5 --eval-every 20

The PSNR trace renders every frame with the current weights every
``--eval-every`` logging windows (key frames as coded, fp32, before the fp16
rounding of the file); that time is excluded from the training clock.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

import torch

from nrff.api import EncodeConfig, decode, encode, load
from nrff.machine import describe_cpu
from nrff.video.reader import parse_size


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"{describe_cpu()}, torch threads {torch.get_num_threads()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip")
    ap.add_argument("--frames", default=None)
    ap.add_argument("--crf", type=float, default=22)
    ap.add_argument("--gop", type=int, default=5)
    ap.add_argument("--method", default="nrff")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--target-psnr", type=float, default=None)
    ap.add_argument("--eval-every", type=int, default=0, help="windows between full-frame PSNR evaluations (0: none)")
    ap.add_argument("--decode-sizes", default="native,1920x1080")
    ap.add_argument("--json", default=None, help="append the JSON line to this file")
    args = ap.parse_args()

    config = EncodeConfig.from_preset(args.preset, gop=args.gop, method=args.method, epochs=args.epochs, crf=args.crf,
                                      device=args.device)
    trace: list[dict] = []
    excluded = [0.0]  # seconds spent evaluating, not training
    windows = [0]

    def monitor(trainer) -> None:
        windows[0] += 1
        if not args.eval_every or (windows[0] % args.eval_every and trainer.step < trainer.total_steps):
            return
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = trainer.elapsed() - excluded[0]
        t0 = time.perf_counter()
        value = trainer.evaluate()
        excluded[0] += time.perf_counter() - t0
        trace.append({"step": trainer.step, "seconds": seconds, "psnr": value})

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "speed.nrff")
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        result = encode(args.clip, out, config, frames=args.frames, checkpoint_seconds=None, monitor=monitor)
        wall = time.perf_counter() - started
        data = load(out)
        decode_fps = {}
        for name in args.decode_sizes.split(","):
            size = None if name == "native" else parse_size(name)
            video = decode(data, size=size, device=args.device)
            t0 = time.perf_counter()
            count = sum(1 for _ in video.frames())
            decode_fps[name] = count / (time.perf_counter() - t0)
        steps = result.steps
        train_seconds = result.train_seconds - excluded[0]
        H, W = result.height, result.width
        stride = config.train.pixel_stride
        gops = sum(1 for g in result.gops if g["units"] > 0)
        batch = min(config.train.batch_frames, max(g["frames"] for g in result.gops) - 1)
        pixels = steps * gops * batch * -(-H // stride) * -(-W // stride)
        reached = next((p["seconds"] for p in trace if args.target_psnr is not None and p["psnr"] >= args.target_psnr), None)
        row = {
            "clip": args.clip, "frames": result.frames, "size": f"{W}x{H}", "method": args.method, "preset": args.preset,
            "epochs": config.train.epochs, "steps": steps, "crf": args.crf, "device": result.device,
            "machine": machine(result.device), "bytes": result.bytes, "bpp": result.bpp, "psnr": result.psnr,
            "encode_wall_seconds": wall, "encode_seconds": result.encode_seconds, "train_seconds": train_seconds,
            "ms_per_step": 1000 * train_seconds / max(steps, 1), "pixels_per_second": pixels / max(train_seconds, 1e-9),
            "target_psnr": args.target_psnr, "seconds_to_target": reached, "trace": trace, "decode_fps": decode_fps,
            "peak_host_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
            "torch": torch.__version__,
        }
    print(f"{args.clip}: {result.frames} frames {W}x{H}, {args.method}, preset {args.preset} "
          f"({config.train.epochs} epochs, {steps} steps), CRF {args.crf:g}, on {row['machine']} ({result.device})")
    print(f"  encode wall {wall:.1f} s (training {train_seconds:.1f} s = {row['ms_per_step']:.2f} ms/step, "
          f"{row['pixels_per_second'] / 1e6:.2f} Mpixel/s); file {result.bytes} bytes = {result.bpp:.4f} bpp, PSNR {result.psnr:.2f} dB")
    for p in trace:
        print(f"  step {p['step']:6d}  {p['seconds']:8.1f} s  PSNR {p['psnr']:.2f} dB")
    if args.target_psnr is not None:
        print(f"  time to {args.target_psnr:.2f} dB: " + (f"{reached:.1f} s" if reached is not None else "not reached"))
    print("  decode: " + ", ".join(f"{k} {v:.1f} fps" for k, v in decode_fps.items()))
    print(f"  peak host memory {row['peak_host_mb']:.0f} MB" + (f", GPU {row['peak_gpu_mb']:.0f} MB" if row["peak_gpu_mb"] else ""))
    line = json.dumps(row)
    print(line)
    if args.json:
        with open(args.json, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
