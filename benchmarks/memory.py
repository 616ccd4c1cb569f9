"""Peak host memory of encoding a long 1080p video (target: under 8 GB for 600 frames).

Synthesises a 1920x1080 .y4m of N frames from an image folder (upscaled, played forwards
and backwards to the length asked), then runs ``nrff encode`` on it in a child process and
reports the child's peak resident memory (``ru_maxrss``). One training epoch and no
verification decode keep it short: memory is set by the frames, key frames and the chunk
of GOPs trained at once, not by the number of epochs.

    python benchmarks/memory.py ../shared/data/sintel_alley_2 --frames 600
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nrff.video import open_video
from nrff.video.writer import VideoWriter


def synthesise(source: str, path: Path, frames: int, width: int, height: int) -> None:
    video = open_video(source)
    n = video.info.frames
    order = [i % (2 * n - 2) for i in range(frames)] if n > 1 else [0] * frames
    order = [i if i < n else 2 * n - 2 - i for i in order]  # ping-pong, so motion stays smooth
    cache = {}
    with VideoWriter(path, width, height, 25) as writer:
        for i in order:
            if i not in cache:
                cache.clear()
                frame = next(iter(open_video(source, frames=f"{i}:{i + 1}")))
                cache[i] = np.asarray(Image.fromarray(frame).resize((width, height), Image.BICUBIC))
            writer.write(cache[i])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="an image folder or video to build the clip from")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--keep", default=None, help="keep the synthesised .y4m here")
    args = ap.parse_args()
    width, height = map(int, args.size.split("x"))
    nrff = str(Path(sys.executable).with_name("nrff"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(args.keep) if args.keep else Path(tmp) / "long.y4m"
        if not clip.exists():
            t0 = time.perf_counter()
            synthesise(args.source, clip, args.frames, width, height)
            print(f"synthesised {clip} ({clip.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.0f} s", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(
            [nrff, "encode", str(clip), "-o", str(Path(tmp) / "long.nrff"), "--preset", "fast", "--epochs", str(args.epochs),
             "--no-verify", "--checkpoint-every", "0", "--device", "cpu", "-q", "--report", str(Path(tmp) / "r.json")],
            capture_output=True, text=True,
        )
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            print(done.stderr)
            raise SystemExit(done.returncode)
        report = json.loads((Path(tmp) / "r.json").read_text())
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
    row = {"frames": args.frames, "size": args.size, "epochs": args.epochs, "peak_host_gib": peak, "wall_seconds": wall,
           "bytes": report["bytes"], "gops": len(report["gops"]), "frames_as_float32_gib": args.frames * width * height * 3 * 4 / 2**30,
           "machine": f"{os.cpu_count()} cores"}
    print(f"{args.frames} frames of {args.size}: peak host memory {peak:.2f} GiB "
          f"(the frames alone as float32: {row['frames_as_float32_gib']:.1f} GiB), {wall:.0f} s, {report['bytes']} bytes")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
