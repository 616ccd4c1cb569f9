"""Quality per second of training schedules: the evidence behind the ``fast`` preset.

Encodes one clip with several schedules and prints bytes, bpp, PSNR and training
seconds for each (plain text, then one JSON line per run).

    python benchmarks/presets.py ../shared/data/sintel_alley_2 --frames 0:20 --crf 22 \
        --variant paper-800:epochs=800 --variant fast:preset=fast

A variant is ``NAME:key=value,...`` with keys preset, epochs, stride, batch, lr,
warmup, zero_output, method, split, ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from nrff.api import EncodeConfig, encode


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    opts = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        opts[key] = value
    return name, opts


def build(opts: dict, crf: float, device: str, gop: int) -> EncodeConfig:
    conv = {"epochs": ("epochs", int), "stride": ("pixel_stride", int), "batch": ("batch_frames", int),
            "lr": ("lr", float), "warmup": ("warmup", float), "final_lr": ("final_lr", float), "seed": ("seed", int),
            "zero_output": ("zero_output", lambda v: v == "true"), "accumulate": ("accumulate", lambda v: v == "true"),
            "method": ("method", str), "ratio": ("ratio", float), "target_bpp": ("target_bpp", float),
            "split": ("split", lambda v: v == "true")}
    options = {conv[k][0]: conv[k][1](v) for k, v in opts.items() if k in conv}
    return EncodeConfig.from_preset(opts.get("preset", "paper"), gop=gop, crf=crf, device=device, **options)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip")
    ap.add_argument("--frames", default=None)
    ap.add_argument("--crf", type=float, default=22)
    ap.add_argument("--gop", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--json", default=None, help="append JSON lines here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for text in args.variant:
            name, opts = parse_variant(text)
            config = build(opts, args.crf, args.device, args.gop)
            r = encode(args.clip, os.path.join(tmp, "v.nrff"), config, frames=args.frames, force=True, checkpoint_seconds=None)
            row = {"variant": name, "options": opts, "bytes": r.bytes, "bpp": r.bpp, "psnr": r.psnr, "ssim": r.ssim,
                   "train_seconds": r.train_seconds, "steps": r.steps, "device": r.device, "crf": args.crf,
                   "clip": args.clip, "frames": args.frames}
            rows.append(row)
            print(f"{name:24s} bpp {r.bpp:.4f}  PSNR {r.psnr:6.2f}  SSIM {r.ssim:.4f}  train {r.train_seconds:7.1f} s  "
                  f"steps {r.steps}  ({r.device})", flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(row) + "\n")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
