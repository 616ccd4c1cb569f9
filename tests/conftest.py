"""Shared fixtures: the bundled Sintel clip, and a tiny PNG folder made from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nrff.data import sample_clip

TINY_SIZE = (64, 48)  # width, height
TINY_FRAMES = 7


def _sample_files() -> list[Path]:
    return sorted(sample_clip().glob("*.png"))


@pytest.fixture(scope="session")
def sample_frames() -> np.ndarray:
    """The bundled 16-frame clip as an [N, H, W, 3] uint8 array (read with PIL, not nrff)."""
    frames = [np.asarray(Image.open(f).convert("RGB"), dtype=np.uint8) for f in _sample_files()]
    return np.stack(frames)


@pytest.fixture(scope="session")
def tiny_frames() -> np.ndarray:
    """The first 7 frames of the bundled clip downscaled to 64x48, [7, 48, 64, 3] uint8."""
    frames = []
    for f in _sample_files()[:TINY_FRAMES]:
        with Image.open(f) as im:
            frames.append(np.asarray(im.convert("RGB").resize(TINY_SIZE, Image.Resampling.BOX), dtype=np.uint8))
    return np.stack(frames)


def write_png_folder(folder: Path, frames: np.ndarray) -> Path:
    """Write frames as frame_0001.png, frame_0002.png, ... into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(folder / f"frame_{i:04d}.png")
    return folder


@pytest.fixture
def tiny_clip(tmp_path: Path, tiny_frames: np.ndarray) -> Path:
    """A folder of 7 PNG frames of 64x48 (the bundled clip, downscaled)."""
    return write_png_folder(tmp_path / "tiny", tiny_frames)


@pytest.fixture
def make_png_folder():
    """``make_png_folder(folder, frames)`` writes frames as numbered PNGs and returns the folder."""
    return write_png_folder


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run torch on one thread while a module runs (tiny tensors; avoids thread hand-off on busy CPUs)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
