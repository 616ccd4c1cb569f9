"""What the fields cost: network bytes against the PSNR of the frames they make, key frames fixed.

Every variant is encoded at several network budgets (``--ratios``: network bytes / key-frame
bytes) with the same key frames (same codec and CRF, so the same bytes); each run gives the
bytes of the networks and the PSNR of the non-key frames. The table compares the variants by
BD-rate on those two (bjontegaard, pchip) against each of the ``--anchors`` (default: the
first variant). Rows are appended to ``--json`` as they finish; a run already there is not
recomputed (the file is the sweep's state).

    python benchmarks/fields.py ../shared/data/sintel_alley_2 --frames 0:20 --crf 22 \
        --ratios 0.1,0.25,0.5,1 --variant fp16: --variant q8:quant_bits=8 --json docs/data/fields-sintel20-cpu.jsonl

A variant is ``NAME:key=value,...`` with any option of ``EncodeConfig.from_preset`` (and
``preset``); ``--set key=value`` applies to all variants (e.g. ``--set epochs=800``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from nrff.api import EncodeConfig, encode
from nrff.eval.metrics import RDPoint, bd_rate
from nrff.machine import describe_cpu


def parse_value(text: str):
    if text in ("true", "false"):
        return text == "true"
    if text == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_options(text: str) -> dict:
    options = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        options[key] = parse_value(value)
    return options


def field_point(result) -> dict:
    """Network bytes, key-frame bytes and the PSNR of the frames the networks make."""
    keys = {g["key"] for g in result.gops}
    made = [p for i, p in enumerate(result.psnr_per_frame) if i not in keys]
    return {"network_bytes": sum(g["network_bytes"] for g in result.gops),
            "keyframe_bytes": sum(g["keyframe_bytes"] for g in result.gops),
            "nonkey_frames": len(made), "nonkey_psnr": float(np.mean(made)), "psnr": result.psnr, "bytes": result.bytes}


def run(args, name: str, options: dict, ratio: float) -> dict:
    opts = {**parse_options(",".join(args.set or [])), **options}
    preset = str(opts.pop("preset", "paper"))
    config = EncodeConfig.from_preset(preset, crf=args.crf, gop=args.gop, device=args.device, ratio=ratio, **opts)
    with tempfile.TemporaryDirectory() as tmp:
        result = encode(args.clip, Path(tmp) / "f.nrff", config, frames=args.frames, checkpoint_seconds=None)
    row = {"variant": name, "options": {"preset": preset, **opts}, "ratio": ratio, "clip": args.clip, "frames": args.frames,
           "crf": args.crf, "keyframe_codec": config.keyframes.codec, "train_seconds": result.train_seconds,
           "machine": f"{describe_cpu()}", "device": result.device, **field_point(result)}
    print(f"{name:16s} ratio {ratio:5.3f}: networks {row['network_bytes']:7d} B, non-key PSNR {row['nonkey_psnr']:.3f} dB "
          f"(key frames {row['keyframe_bytes']} B), {result.train_seconds:.0f} s", flush=True)
    return row


def bd_table(rows: list[dict], names: list[str], anchors: list[str]) -> str:
    pixels = {}
    curves = {}
    for r in rows:
        w, h = 1, 1
        curves.setdefault(r["variant"], []).append(RDPoint(8 * r["network_bytes"] / r["nonkey_frames"], r["nonkey_psnr"], 0.0))
        pixels[r["variant"]] = (w, h)
    lines = ["| variant | " + " | ".join(f"BD-rate vs {a}" for a in anchors) + " |",
             "|---|" + "---:|" * len(anchors)]
    for name in names:
        cells = []
        for a in anchors:
            try:
                cells.append(f"{bd_rate(sorted(curves[a], key=lambda p: p.bpp), sorted(curves[name], key=lambda p: p.bpp)):+.1f} %")
            except Exception as exc:  # noqa: BLE001 - a BD value can be undefined; say why
                cells.append(f"n/a ({exc})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip")
    ap.add_argument("--frames", default=None)
    ap.add_argument("--crf", type=float, default=22)
    ap.add_argument("--gop", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ratios", default="0.1,0.25,0.5,1")
    ap.add_argument("--variant", action="append", required=True, help="NAME:key=value,... (repeatable)")
    ap.add_argument("--set", action="append", help="key=value for every variant")
    ap.add_argument("--anchors", default=None, help="variant names to compare against (default: the first)")
    ap.add_argument("--json", required=True, help="results (JSON lines); existing runs are reused")
    args = ap.parse_args()
    done = []
    if os.path.exists(args.json):
        done = [json.loads(line) for line in Path(args.json).read_text().splitlines() if line.strip()]
    names = []
    for text in args.variant:
        name, _, rest = text.partition(":")
        names.append(name)
        for ratio in (float(r) for r in args.ratios.split(",")):
            key = (name, ratio, args.clip, args.frames, args.crf)
            if any((r["variant"], r["ratio"], r["clip"], r["frames"], r["crf"]) == key for r in done):
                continue
            row = run(args, name, parse_options(rest), ratio)
            done.append(row)
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")
    mine = [r for r in done if r["variant"] in names and r["clip"] == args.clip and r["frames"] == args.frames and r["crf"] == args.crf]
    print(bd_table(mine, names, (args.anchors or names[0]).split(",")))


if __name__ == "__main__":
    main()
