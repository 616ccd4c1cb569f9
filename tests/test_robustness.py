"""Determinism of encoding and decoding, and the training guard through the whole encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import write_clip
from nrff.api import decode, encode
from nrff.config import EncodeConfig, FieldConfig, TrainConfig
from nrff.fields.encoding import PositionalEncoding
from nrff.fields.models import FieldModel
from nrff.methods import FieldShape, get_method
from nrff.gop import split_gops
from nrff.encoder.fit.guard import FP16_MAX
from nrff.encoder.fit.trainer import GopData, Trainer


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    return folder, write_clip(folder, frames=7, size=(48, 32))


def _config(method, epochs=3, seed=0, lr=None):
    return EncodeConfig(
        gop=3,
        field=FieldConfig(method=method, target_bpp=2.0 if method == "siren" else None),
        train=TrainConfig(epochs=epochs, pixel_stride=4, batch_frames=4 if method == "nrff-single" else 1, log_every=5,
                          seed=seed, lr=lr),
        device="cpu",
    )


@pytest.mark.parametrize("method", ["nrff", "nrff-single", "siren"])
def test_same_seed_same_bytes_other_seed_other_bytes_and_repeatable_decoding(clip, tmp_path, torch_one_thread, method):
    folder, _ = clip
    paths = [tmp_path / f"{name}.nrff" for name in ("a", "b", "c")]
    for path, seed in zip(paths, (5, 5, 6)):
        encode(folder, path, _config(method, seed=seed), checkpoint_seconds=None)
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b
    assert a != c
    first = list(decode(a, device="cpu").frames())
    second = list(decode(a, device="cpu").frames())
    assert len(first) == 7 and all(np.array_equal(x, y) for x, y in zip(first, second))


def test_decoding_does_not_depend_on_the_thread_count(clip, tmp_path):
    folder, _ = clip
    encode(folder, tmp_path / "t.nrff", _config("nrff"), checkpoint_seconds=None)
    data = (tmp_path / "t.nrff").read_bytes()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = list(decode(data, device="cpu", scale=1.5, fps_factor=2).frames())
        torch.set_num_threads(2)
        two = list(decode(data, device="cpu", scale=1.5, fps_factor=2).frames())
    finally:
        torch.set_num_threads(threads)
    assert all(np.array_equal(x, y) for x, y in zip(one, two))


def test_encoding_does_not_depend_on_the_thread_count(clip, tmp_path):
    folder, _ = clip
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            encode(folder, tmp_path / f"t{n}.nrff", _config("nrff", seed=2), checkpoint_seconds=None)
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "t1.nrff").read_bytes() == (tmp_path / "t2.nrff").read_bytes()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_decoding_agree_within_0_01_db(clip, tmp_path):
    """Default decoding: fp32 on the CPU, fp16 networks on CUDA (``precision="auto"``); kernels
    and the half-precision hidden layers round differently, so frames can differ by a level
    here and there, but not by 0.01 dB."""
    from nrff.eval.metrics import psnr

    folder, frames = clip
    for method in ("nrff", "nrff-single", "siren"):
        encode(folder, tmp_path / f"{method}.nrff", _config(method, epochs=10), checkpoint_seconds=None)
        data = (tmp_path / f"{method}.nrff").read_bytes()
        cpu = list(decode(data, device="cpu").frames())
        gpu = list(decode(data, device="cuda").frames())
        gap = np.mean([psnr(a, b) for a, b in zip(frames, cpu)]) - np.mean([psnr(a, b) for a, b in zip(frames, gpu)])
        assert abs(gap) < 0.01, (method, gap)


def _trainer(frames, lr, epochs=40):
    gops = split_gops(len(frames), 5)
    H, W = frames.shape[1:3]
    shape = FieldShape(get_method("nrff"), True, PositionalEncoding.for_sizes(5, H, W), 1, 2)
    model = FieldModel(shape, [16] * len(gops), [g.index for g in gops], seed=0)
    data = torch.zeros(len(gops), max(g.length for g in gops), H, W, 3, dtype=torch.uint8)
    for i, g in enumerate(gops):
        data[i, : g.length] = torch.from_numpy(frames[g.start : g.stop])
    keys = torch.from_numpy(frames[[g.key_frame for g in gops]]).permute(0, 3, 1, 2).float() / 255
    keys = torch.cat([keys[:1], keys, keys[-1:]])
    cfg = TrainConfig(epochs=epochs, pixel_stride=4, log_every=10)
    return model, Trainer(model, get_method("nrff"), GopData(gops, data, keys, len(gops), max(g.length for g in gops)),
                          cfg, lr, amp=False)


def test_a_gop_that_diverges_in_its_first_window_is_rolled_back(tmp_path, torch_one_thread):
    """lr 100: the first window is already garbage (4 dB). Before the guard knew the untrained
    PSNR it kept that as the GOP's best and never recovered; now it rolls back, halves the
    rate until training works, and ends far above the untrained field."""
    frames = write_clip(tmp_path / "c", frames=10, size=(64, 48))
    _, reference = _trainer(frames, 1e-2, epochs=1)
    with torch.no_grad():
        untrained = -10 * torch.log10(torch.stack([reference._loss() for _ in range(8)]).mean(0))
    model, trainer = _trainer(frames, 100.0)
    psnrs = []
    trainer.run(lambda step, total, psnr: psnrs.append(psnr))
    assert trainer.report.recoveries and {e["gop"] for e in trainer.report.recoveries} == {0, 1}
    assert all(e["lr_scale"] < 1 for e in trainer.report.recoveries)
    assert min(trainer.report.train_psnr) > float(untrained.max()) + 5
    assert all(math.isfinite(p) for p in psnrs)


def test_weights_beyond_fp16_are_rolled_back_not_a_crash(clip, tmp_path, torch_one_thread):
    """lr 1e6 grows weights past 65504 while the clamped loss stays finite; that used to end the
    encode with an internal error in pack_fp16 after all the training."""
    folder, frames = clip
    result = encode(folder, tmp_path / "big-lr.nrff", _config("nrff", epochs=6, lr=1e6), checkpoint_seconds=None)
    assert result.recoveries
    assert math.isfinite(result.psnr)
    decoded = list(decode((tmp_path / "big-lr.nrff").read_bytes(), device="cpu").frames())
    assert len(decoded) == len(frames)
    model, trainer = _trainer(write_clip(tmp_path / "d", frames=10, size=(64, 48)), 1e6, epochs=4)
    trainer.run()
    assert max(float(p.detach().abs().max()) for p in model.parameters()) <= FP16_MAX


def test_the_untrained_psnr_leaves_the_random_stream_alone(tmp_path, torch_one_thread):
    """Measuring the untrained field draws from the generator and restores it: a run that never
    diverges trains on the same draws (so gives the same bytes) as without the measurement."""
    frames = write_clip(tmp_path / "c", frames=10, size=(64, 48))
    model_a, a = _trainer(frames, 1e-2, epochs=3)
    a.run()
    model_b, b = _trainer(frames, 1e-2, epochs=3)
    b.cfg = TrainConfig(**{**b.cfg.__dict__, "guard": False})
    b.run()
    assert not a.report.recoveries
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(pa, pb)
