"""Training speed and quality per second of nrff on one clip (CPU or CUDA), schedules side by side.

For each ``--variant`` (default: the preset as given) prints encode wall time, ms per training
step, points per second, the PSNR trace over training time and the time to reach a target
PSNR, decode frames per second, and peak host / GPU memory; then a table of the variants with
each one's time to the target as a ratio of the first's; then one JSON line per variant.

    python benchmarks/speed.py src/nrff/data/sample --preset fast
    python benchmarks/speed.py ../shared/data/sintel_alley_2 --frames 0:20 --crf 22 --target-psnr 34.15 \
        --eval-every 8 --variant paper-800:preset=paper,epochs=800 --variant default:preset=default

A variant is ``NAME:key=value,...``: ``preset`` and any option of ``EncodeConfig.from_preset``
(``epochs``, ``pixel_stride``, ``batch_frames``, ``lr``, ``zero_output``, ...). The PSNR trace
renders every frame with the current weights every ``--eval-every`` logging windows (key frames
as coded, fp32, before the weights are rounded for the file); that time is excluded from the
training clock. Run it on an otherwise idle machine: timings depend on load.
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


def parse_value(text: str):
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_variant(text: str, preset: str) -> tuple[str, str, dict]:
    name, _, rest = text.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        options[key] = parse_value(value)
    return name, str(options.pop("preset", preset)), options


def run_variant(args, name: str, preset: str, options: dict) -> dict:
    config = EncodeConfig.from_preset(preset, gop=args.gop, method=args.method, crf=args.crf, device=args.device,
                                      **{"epochs": args.epochs, **options})
    trace: list[dict] = []
    excluded = [0.0]  # seconds spent evaluating, not training
    windows = [0]
    shape = {}

    def monitor(trainer) -> None:
        windows[0] += 1
        s = trainer.sampler
        shape["points"] = trainer.G * s.batch * s.rows * s.cols
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
        for size_name in filter(None, args.decode_sizes.split(",")):
            size = None if size_name == "native" else parse_size(size_name)
            video = decode(data, size=size, device=args.device)
            t0 = time.perf_counter()
            count = sum(1 for _ in video.frames())
            decode_fps[size_name] = count / (time.perf_counter() - t0)
    steps = result.steps
    train_seconds = result.train_seconds - excluded[0]
    reached = next((p["seconds"] for p in trace if args.target_psnr is not None and p["psnr"] >= args.target_psnr), None)
    return {
        "variant": name, "options": {"preset": preset, **options}, "clip": args.clip, "frames": result.frames,
        "size": f"{result.width}x{result.height}", "method": args.method, "preset": preset,
        "epochs": config.train.epochs, "steps": steps, "crf": args.crf, "device": result.device,
        "machine": machine(result.device), "bytes": result.bytes, "bpp": result.bpp, "psnr": result.psnr,
        "encode_wall_seconds": wall, "encode_seconds": result.encode_seconds, "train_seconds": train_seconds,
        "ms_per_step": 1000 * train_seconds / max(steps, 1), "points_per_step": shape.get("points"),
        "points_per_second": (shape.get("points") or 0) * steps / max(train_seconds, 1e-9),
        "target_psnr": args.target_psnr, "seconds_to_target": reached, "trace": trace, "decode_fps": decode_fps,
        "peak_host_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }


def show(row: dict) -> None:
    print(f"{row['variant']}: {row['clip']} {row['frames']} frames {row['size']}, {row['method']}, preset {row['preset']} "
          f"({row['epochs']} epochs, {row['steps']} steps), CRF {row['crf']:g}, on {row['machine']} ({row['device']})")
    print(f"  encode wall {row['encode_wall_seconds']:.1f} s (training {row['train_seconds']:.1f} s = "
          f"{row['ms_per_step']:.2f} ms/step, {row['points_per_second'] / 1e6:.2f} Mpoint/s); file {row['bytes']} bytes = "
          f"{row['bpp']:.4f} bpp, PSNR {row['psnr']:.2f} dB")
    for p in row["trace"]:
        print(f"  step {p['step']:6d}  {p['seconds']:8.1f} s  PSNR {p['psnr']:.2f} dB")
    if row["target_psnr"] is not None:
        reached = row["seconds_to_target"]
        print(f"  time to {row['target_psnr']:.2f} dB: " + (f"{reached:.1f} s" if reached is not None else "not reached"))
    print("  decode: " + ", ".join(f"{k} {v:.1f} fps" for k, v in row["decode_fps"].items()))
    print(f"  peak host memory {row['peak_host_mb']:.0f} MB" + (f", GPU {row['peak_gpu_mb']:.0f} MB" if row["peak_gpu_mb"] else ""),
          flush=True)


def compare(rows: list[dict]) -> None:
    first = rows[0]
    print(f"\n| variant | steps | ms/step | training s | PSNR | time to {first['target_psnr']} dB | vs {first['variant']} |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        t, t0 = r["seconds_to_target"], first["seconds_to_target"]
        ratio = f"{t0 / t:.2f}x faster" if t and t0 else "–"
        print(f"| {r['variant']} | {r['steps']} | {r['ms_per_step']:.2f} | {r['train_seconds']:.1f} | {r['psnr']:.2f} | "
              f"{'–' if t is None else f'{t:.1f} s'} | {ratio} |")


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
    ap.add_argument("--variant", action="append", default=None, help="NAME:key=value,... (repeatable)")
    ap.add_argument("--target-psnr", type=float, default=None)
    ap.add_argument("--eval-every", type=int, default=0, help="windows between full-frame PSNR evaluations (0: none)")
    ap.add_argument("--decode-sizes", default="native,1920x1080")
    ap.add_argument("--json", default=None, help="append the JSON lines to this file")
    args = ap.parse_args()
    rows = []
    for text in args.variant or [args.preset]:
        row = run_variant(args, *parse_variant(text, args.preset))
        show(row)
        rows.append(row)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")
    if len(rows) > 1:
        compare(rows)
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
