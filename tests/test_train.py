import math

import numpy as np
import pytest
import torch

from helpers import write_clip
from nrff.config import TrainConfig
from nrff.fields.encoding import PositionalEncoding
from nrff.encoder.fit.optim import BatchedAdam, lr_factor
from nrff.encoder.fit.trainer import GopData, Trainer
from nrff.fields.models import FieldModel
from nrff.gop import split_gops
from nrff.methods import FieldShape, get_method


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip"), frames=15, size=(48, 32))


def _data(clip, gops, all_gops, method="nrff"):
    H, W = clip.shape[1:3]
    lmax = max(g.length for g in gops)
    frames = torch.zeros(len(gops), lmax, H, W, 3, dtype=torch.uint8)
    for i, g in enumerate(gops):
        frames[i, : g.length] = torch.from_numpy(clip[g.start : g.stop])
    keys = torch.from_numpy(clip[[g.key_frame for g in all_gops]]).permute(0, 3, 1, 2).float() / 255
    first, last = gops[0].index, gops[-1].index
    order = [max(first - 1, 0)] + list(range(first, last + 1)) + [min(last + 1, len(all_gops) - 1)]
    return GopData(gops, frames, keys[order] if get_method(method).uses_keyframes else None, len(all_gops), max(g.length for g in all_gops))


def _train(clip, gops, all_gops, method="nrff", epochs=6, **cfg):
    shape = FieldShape(get_method(method), get_method(method).default_split, PositionalEncoding.for_sizes(5, *clip.shape[1:3]), 1, 2)
    model = FieldModel(shape, [8] * len(gops), [g.index for g in gops], seed=5)
    config = TrainConfig(epochs=epochs, pixel_stride=4, log_every=4, **cfg)
    trainer = Trainer(model, get_method(method), _data(clip, gops, all_gops, method), config, get_method(method).lr, amp=False,
                      video_max_count=max(g.length - 1 for g in all_gops))
    trainer.run()
    return model, trainer


def test_training_improves_the_fit(clip):
    gops = split_gops(len(clip), 5)
    model, trainer = _train(clip, gops, gops, epochs=1)
    first = list(trainer.report.train_psnr)
    model, trainer = _train(clip, gops, gops, epochs=30)
    assert all(b > a + 1.0 for a, b in zip(first, trainer.report.train_psnr))


def test_same_seed_same_weights_and_sharding_invariance(clip):
    gops = split_gops(len(clip), 5)
    together, _ = _train(clip, gops, gops)
    again, _ = _train(clip, gops, gops)
    part_a, _ = _train(clip, gops[:1], gops)
    part_b, _ = _train(clip, gops[1:], gops)
    for g in range(3):
        ref = together.export_gop(g)
        assert all(torch.equal(a, b) for a, b in zip(ref, again.export_gop(g)))
        shard = part_a.export_gop(g) if g == 0 else part_b.export_gop(g - 1)
        assert all(torch.equal(a, b) for a, b in zip(ref, shard)), f"GOP {g} depends on its batch"


def test_divergence_guard_rolls_back_one_gop(clip):
    gops = split_gops(len(clip), 5)
    shape = FieldShape(get_method("nrff"), True, PositionalEncoding.for_sizes(5, *clip.shape[1:3]), 1, 2)
    model = FieldModel(shape, [8] * 3, [0, 1, 2], seed=5)
    trainer = Trainer(model, get_method("nrff"), _data(clip, gops, gops), TrainConfig(epochs=10, pixel_stride=4, log_every=4),
                      1e-2, amp=False)
    for _ in range(8):
        trainer.train_step()
    trainer.check()
    saved = [t.clone() for t in model.export_gop(1)]
    healthy = [t.clone() for t in model.export_gop(0)]
    with torch.no_grad():
        model.nets[0].w_out[1].fill_(float("nan"))  # GOP 1 blows up
    for _ in range(4):
        trainer.train_step()
    trainer.check()
    assert [e["gop"] for e in trainer.report.recoveries] == [1]
    assert trainer.guard.lr_scale.tolist() == [1.0, 0.5, 1.0]
    assert all(torch.equal(a, b) for a, b in zip(model.export_gop(1), saved))
    assert not all(torch.equal(a, b) for a, b in zip(model.export_gop(0), healthy))  # GOP 0 kept training
    trainer.run()
    assert all(torch.isfinite(t).all() for g in range(3) for t in model.export_gop(g))
    assert all(math.isfinite(p) for p in trainer.report.train_psnr)


def test_collapse_is_detected(clip):
    gops = split_gops(len(clip), 5)
    shape = FieldShape(get_method("nrff"), True, PositionalEncoding.for_sizes(5, *clip.shape[1:3]), 1, 2)
    model = FieldModel(shape, [8] * 3, [0, 1, 2], seed=5)
    trainer = Trainer(model, get_method("nrff"), _data(clip, gops, gops), TrainConfig(epochs=20, pixel_stride=4, log_every=8), 1e-2, amp=False)
    for _ in range(40):
        trainer.train_step()
    trainer.check()
    with torch.no_grad():
        model.nets[1].b_out[2, 0, 1:].fill_(5.0)  # residual saturates: GOP 2's PSNR collapses
    for _ in range(8):
        trainer.train_step()
    trainer.check()
    assert 2 in [e["gop"] for e in trainer.report.recoveries]


def test_single_reference_and_siren_train(clip):
    gops = split_gops(len(clip), 5)
    for method in ("nrff-single", "siren"):
        _, trainer = _train(clip, gops, gops, method=method, epochs=4, batch_frames=4)
        assert trainer.sampler.batch == 4
        assert all(np.isfinite(trainer.report.train_psnr))


def test_schedule_and_optimizer():
    assert lr_factor(0, 100, 0.2, 0.0) == pytest.approx(1 / 20)
    assert lr_factor(19, 100, 0.2, 0.0) == pytest.approx(1.0)
    assert lr_factor(99, 100, 0.2, 0.0) < 0.01
    assert lr_factor(60, 100, 0.2, 0.0) == pytest.approx(0.5, abs=0.05)
    # the clip is per GOP over all tensors: GOP 0's norm is 5 (3, 4 in two tensors), GOP 1's 0.05
    p = torch.nn.Parameter(torch.ones(2, 3))
    q = torch.nn.Parameter(torch.ones(2, 1, 1))
    opt = BatchedAdam([p, q])
    assert p.data_ptr() == opt.flat.data_ptr()  # parameters are views of the flat buffer
    p.grad = torch.tensor([[3.0, 0.0, 0.0], [0.03, 0.0, 0.0]])
    q.grad = torch.tensor([[[4.0]], [[0.04]]])
    norms = opt.step(0.0, torch.ones(2), max_norm=1.0, clip_in_place=True)
    assert norms.tolist() == pytest.approx([5.0, 0.05])
    assert (p.grad[0].norm() ** 2 + q.grad[0].norm() ** 2).sqrt().item() == pytest.approx(1.0, rel=1e-4)  # clipped
    assert p.grad[1].tolist() == pytest.approx([0.03, 0.0, 0.0]) and q.grad[1].item() == pytest.approx(0.04)
    opt.step(0.1, torch.tensor([1.0, 0.0]))  # GOP 1's learning rate scaled to zero
    assert torch.all(p[1] == 1.0) and torch.all(q[1] == 1.0)
    assert p[0, 0] < 1.0 and q[0, 0, 0] < 1.0 and p[0, 1] == 1.0  # no gradient, no step
    assert torch.equal(opt.flat[0], torch.cat([p[0].reshape(-1), q[0].reshape(-1)]))


def test_accumulating_gradients_like_the_published_code(clip):
    """``accumulate``: gradients add up over an epoch (zero_grad once per epoch), as in the published code."""
    gops = split_gops(len(clip), 5)
    plain, _ = _train(clip, gops, gops, epochs=3)
    summed, trainer = _train(clip, gops, gops, epochs=3, accumulate=True)
    assert trainer.steps_per_epoch == 8
    assert not torch.equal(plain.export_gop(0)[0], summed.export_gop(0)[0])
    assert all(np.isfinite(trainer.report.train_psnr))
    # the first step of each epoch sees only its own gradient, the later ones the running sum
    shape = FieldShape(get_method("nrff"), True, PositionalEncoding.for_sizes(5, *clip.shape[1:3]), 1, 2)
    model = FieldModel(shape, [8] * 3, [0, 1, 2], seed=5)
    t = Trainer(model, get_method("nrff"), _data(clip, gops, gops), TrainConfig(epochs=1, pixel_stride=4, accumulate=True),
                1e-2, amp=False)
    t.train_step()
    assert all(p.grad is not None for p in t.params)  # kept for the next step of the epoch
    for _ in range(7):
        t.train_step()
    assert all(p.grad is None for p in t.params)  # zeroed at the end of the epoch


def test_coarse_to_fine_switches_the_stride_late(clip):
    gops = split_gops(len(clip), 5)
    model, trainer = _train(clip, gops, gops, epochs=4, fine_stride=2, fine_from=0.5)
    total = trainer.total_steps
    assert [trainer.stride_at(s) for s in (0, total // 2 - 1, total // 2, total - 1)] == [4, 4, 2, 2]
    assert trainer.sampler.stride == 2 and trainer.sampler.rows == math.ceil(clip.shape[1] / 2)
    plain, _ = _train(clip, gops, gops, epochs=4)
    assert any(not torch.equal(a, b) for a, b in zip(model.export_gop(0), plain.export_gop(0)))
