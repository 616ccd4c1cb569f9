"""Quality on the bundled clip (fast preset, CPU): every method earns its bytes."""

import numpy as np
import pytest

from nrff.api import encode, load
from nrff.config import EncodeConfig
from nrff.decoder.keycache import KeyframeCache
from nrff.decoder.stream import read_stream
from nrff.data import sample_clip
from nrff.eval.metrics import psnr
from nrff.video import open_video


@pytest.fixture(scope="module")
def frames():
    return open_video(sample_clip()).read_all()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    folder = tmp_path_factory.mktemp("quality")
    for label, method, split in (("nrff", "nrff", True), ("nrff-nosplit", "nrff", False), ("nrff-single", "nrff-single", False)):
        config = EncodeConfig.from_preset("fast", method=method, split=split, device="cpu")
        path = folder / f"{label}.nrff"
        out[label] = (encode(sample_clip(), path, config, checkpoint_seconds=None), path)
    siren = EncodeConfig.from_preset("fast", method="siren", target_bpp=out["nrff"][0].bpp, device="cpu")
    out["siren"] = (encode(sample_clip(), folder / "siren.nrff", siren, checkpoint_seconds=None), folder / "siren.nrff")
    return out


def repeated_key_frames(path) -> list[np.ndarray]:
    """The trivial reference: each GOP's coded key frame shown for the whole GOP."""
    stream = read_stream(load(path))
    keys = KeyframeCache(stream)
    return [keys(g.index) for g in stream.gops() for _ in range(g.length)]


@pytest.mark.slow
@pytest.mark.parametrize("label", ["nrff", "nrff-nosplit", "nrff-single"])
def test_each_method_beats_repeating_its_key_frames(frames, runs, label):
    result, path = runs[label]
    trivial = np.mean([psnr(a, b) for a, b in zip(frames, repeated_key_frames(path))])
    assert result.psnr > trivial + 1.0, (result.psnr, trivial)  # the networks are worth their bytes


@pytest.mark.slow
def test_nrff_beats_siren_at_equal_size(runs):
    nrff, siren = runs["nrff"][0], runs["siren"][0]
    assert abs(siren.bytes / nrff.bytes - 1) < 0.05  # equal size, within 5 %
    assert nrff.psnr > siren.psnr + 3.0
