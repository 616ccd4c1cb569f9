"""Data shipped with the package: a 16-frame excerpt of Sintel (alley_2).

Frames 1-16 of MPI Sintel ``alley_2`` (clean pass), cropped to 1024x432 and
downscaled to 256x108, lossless PNG. Sintel (c) Blender Foundation, CC-BY 3.0
(durian.blender.org); MPI Sintel flow benchmark, Butler et al., ECCV 2012.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def sample_clip() -> Path:
    """Folder of the bundled sample clip."""
    return Path(str(files("nrff.data") / "sample"))
