"""PSNR of curves at each other's rates: for every point of a curve, the PSNR of a reference
curve of the same clip at that bpp (piecewise cubic, monotone, in log-rate; inside its range
only), and the difference. A complement to BD-rates where a curve is too short or not monotone.
Needs scipy (the test extra: `pip install -e ".[test]"`).

    python benchmarks/matched_rate.py docs/data/rd-sintel20-cpu.jsonl --reference nrff-default-r0.25
    python benchmarks/matched_rate.py docs/data/rd-sintel20-cpu.jsonl --reference x265
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict

import numpy as np
from scipy.interpolate import PchipInterpolator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="a results file of `nrff bench run`")
    ap.add_argument("--reference", required=True, help="label of the reference curve")
    args = ap.parse_args()
    curves: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    with open(args.results) as f:
        for line in f:
            row = json.loads(line)
            curves[row["clip"], row["method"]].append((row["bpp"], row["psnr"]))
    print("| clip | method | bpp | PSNR | reference at that bpp | difference |")
    print("|---|---|---:|---:|---:|---:|")
    for (clip, method), points in sorted(curves.items()):
        ref = sorted(curves.get((clip, args.reference), []))
        if method == args.reference or len(ref) < 2:
            continue
        x = np.log([r for r, _ in ref])
        curve = PchipInterpolator(x, [q for _, q in ref])
        for bpp, psnr in sorted(points):
            if not x[0] <= math.log(bpp) <= x[-1]:
                continue
            at = float(curve(math.log(bpp)))
            print(f"| {clip} | {method} | {bpp:.4f} | {psnr:.2f} | {at:.2f} | {psnr - at:+.2f} dB |")


if __name__ == "__main__":
    main()
