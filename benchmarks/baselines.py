"""Regenerate the x264 / x265 anchors of docs/baselines.md and print its table.

    .venv/bin/python benchmarks/baselines.py            # run both sweeps, write the JSON, print markdown
    .venv/bin/python benchmarks/baselines.py --table    # only print the table from the existing JSON

Each sweep is exactly the ``nrff baseline`` command quoted in docs/baselines.md
(with ``--force`` so that a rerun replaces the reports). The bytes are
deterministic (single-threaded encoders); the encode seconds depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = Path("/work/shared/data/sintel_alley_2")
CRFS = "18,23,28,33,38"
CODECS = ("x264", "x265")


def report_path(codec: str, clip: Path) -> Path:
    return ROOT / "docs" / "data" / f"baselines_{codec}_{clip.name}.json"


def nrff_executable() -> str:
    local = Path(sys.executable).with_name("nrff")
    return str(local) if local.exists() else (shutil.which("nrff") or "nrff")


def command(codec: str, clip: Path, report: Path) -> list[str]:
    return [
        nrff_executable(), "baseline", str(clip),
        "--codec", codec, "--preset", "medium", "--gop", "5", "--pix-fmt", "yuv420p",
        "--crf", CRFS, "--report", str(report),
    ]


def run(clip: Path) -> None:
    report_path("x264", clip).parent.mkdir(parents=True, exist_ok=True)
    for codec in CODECS:
        cmd = command(codec, clip, report_path(codec, clip).relative_to(ROOT)) + ["--force"]
        print("$", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)


def load(codec: str, clip: Path) -> list[dict]:
    data = json.loads(report_path(codec, clip).read_text())
    return data if isinstance(data, list) else [data]


def markdown(clip: Path) -> str:
    from nrff.eval.metrics import RDPoint, bd_psnr, bd_rate

    rows = [
        "| codec | CRF | bytes | bpp | PSNR (dB) | SSIM | MS-SSIM | encode s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    curves = {}
    for codec in CODECS:
        results = sorted(load(codec, clip), key=lambda r: r["crf"])
        curves[codec] = [RDPoint(r["bpp"], r["psnr"], r["ssim"]) for r in results]
        for r in results:
            ms = "-" if r["ms_ssim"] is None else f"{r['ms_ssim']:.4f}"
            rows.append(
                f"| {codec} | {r['crf']:g} | {r['bytes']} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
                f"{r['ssim']:.4f} | {ms} | {r['encode_seconds']:.1f} |"
            )
    first = load("x264", clip)[0]
    lines = [
        f"{first['frames']} frames, {first['width']}x{first['height']}, preset {first['preset']}, "
        f"GOP {first['gop']}, {first['pix_fmt']}, B-frames {'on' if first['bframes'] else 'off'}",
        "",
        *rows,
        "",
        f"BD-rate of x265 against x264 (PSNR, pchip): {bd_rate(curves['x264'], curves['x265']):+.2f} %",
        f"BD-rate of x265 against x264 (SSIM, pchip): {bd_rate(curves['x264'], curves['x265'], 'ssim'):+.2f} %",
        f"BD-PSNR of x265 against x264: {bd_psnr(curves['x264'], curves['x265']):+.3f} dB",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", type=Path, default=DEFAULT_CLIP, help="folder of frames (default: %(default)s)")
    parser.add_argument("--table", action="store_true", help="only print the table from the existing reports")
    args = parser.parse_args()
    if not args.table:
        run(args.clip)
    print(markdown(args.clip))
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}", file=sys.stderr)


if __name__ == "__main__":
    main()
