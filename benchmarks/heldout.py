"""Write the held-out clips the defaults are checked on (never tuned on): crops of frames that
the tuning runs do not use, from the data beside the repository (``../shared/data``).

    python benchmarks/heldout.py /tmp/heldout      # -> /tmp/heldout/basketball_50_99, /tmp/heldout/sintel_30_49

* ``basketball_50_99``: BasketballPass frames 50-99 (tuning uses 0-49), the 384x224 crop at (16, 8);
* ``sintel_30_49``: Sintel alley_2 frames 30-49 (tuning uses 0-19), the 768x320 crop at (128, 58).

The crops are written as PNG folders; they are not redistributed (BasketballPass is not for
redistribution), only made from the shared data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = {
    "basketball_50_99": ("basketball_pass", range(50, 100), (16, 8, 384, 224)),
    "sintel_30_49": ("sintel_alley_2", range(30, 50), (128, 58, 768, 320)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", type=Path, default=SHARED)
    args = ap.parse_args()
    for name, (source, frames, (x, y, w, h)) in CLIPS.items():
        files = sorted((args.data / source).glob("*.png"))
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(frames):
            with Image.open(files[index]) as im:
                im.convert("RGB").crop((x, y, x + w, y + h)).save(folder / f"frame_{i + 1:04d}.png")
        print(f"{folder}: {len(frames)} frames {w}x{h} from {source} frames {frames.start}-{frames.stop - 1}")


if __name__ == "__main__":
    main()
