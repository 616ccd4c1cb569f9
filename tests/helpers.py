"""Small shared helpers for the codec tests (fixtures live in the test modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from nrff.data import sample_clip
from nrff.video import open_video


def write_clip(folder: Path, frames: int = 7, size: tuple[int, int] = (64, 48), start: int = 0, step: int = 1) -> np.ndarray:
    """Write a downscaled excerpt of the bundled clip as PNGs; return the frames."""
    folder.mkdir(parents=True, exist_ok=True)
    src = open_video(sample_clip()).read_all()
    out = []
    for i in range(frames):
        img = Image.fromarray(src[start + i * step]).resize(size, Image.LANCZOS)
        img.save(folder / f"frame_{i + 1:04d}.png")
        out.append(np.asarray(img))
    return np.stack(out)
