"""Every encoder option combination round-trips on the bundled clip; rate control lands on target."""

import itertools

import numpy as np
import pytest

from nrff.api import decode, encode, info, load
from nrff.decoder.stream import read_stream
from nrff.codec.weights import pack_fp16, pack_quantized, unpack_quantized
from nrff.config import EncodeConfig, FieldConfig, KeyframeConfig, TrainConfig
from nrff.data import sample_clip
from nrff.eval.metrics import psnr
from nrff.quant import fake_quantize, levels, quantize
from nrff.video import open_video

import torch


@pytest.fixture(scope="module")
def frames():
    return open_video(sample_clip(), frames="0:8").read_all()


COMBOS = [
    (method, split, bits, mode, codec)
    for method, split in (("nrff", True), ("nrff", False), ("nrff-single", False))
    for bits, mode, codec in itertools.product((None, 6), ("intra", "predicted"), ("x264", "x265", "av1", "x264-psnr"))
] + [(method, None, bits, "intra", "x264") for method in ("siren", "nerv") for bits in (None, 6)]


@pytest.mark.slow
@pytest.mark.parametrize("method,split,bits,mode,codec", COMBOS)
def test_every_option_combination_round_trips(frames, tmp_path, method, split, bits, mode, codec):
    config = EncodeConfig(
        field=FieldConfig(method=method, split=split, quant_bits=bits,
                          target_bpp={"siren": 1.0, "nerv": 2.0}.get(method)),
        train=TrainConfig(epochs=2, pixel_stride=8, batch_frames=4 if method == "nrff-single" else 1, log_every=4, qat_start=0.5),
        keyframes=KeyframeConfig(codec=codec.split("-")[0], mode=mode, random_access=1, crf=None if codec == "av1" else 20,
                                 tune="psnr" if codec.endswith("-psnr") else None),
        device="cpu",
    )
    out = tmp_path / "c.nrff"
    result = encode(sample_clip(), out, config, frames="0:8", checkpoint_seconds=None)
    data = load(out)
    assert data[4] == 2 and result.bytes == len(data)
    desc = info(data)
    assert desc["keyframe_codec"] == (None if method in ("siren", "nerv") else codec.split("-")[0])
    decoded = list(decode(data, device="cpu").frames())
    assert np.mean([psnr(a, b) for a, b in zip(frames, decoded)]) == pytest.approx(result.psnr, abs=0.01)
    tags = [s["tag"] for s in desc["sections"]]
    if method not in ("siren", "nerv"):
        assert ("KSEG" in tags) == (mode == "predicted") and ("KEYF" in tags) == (mode == "intra")


def test_quantised_weights_are_exact_and_smaller():
    torch.manual_seed(0)
    tensors = [torch.randn(43, 22) * 0.3, torch.randn(1, 22) * 0.1, torch.tensor([[1.25]]), torch.randn(22, 22) * 0.2]
    shapes = [tuple(t.shape) for t in tensors]
    data = pack_quantized(tensors, 8)
    back = unpack_quantized(data, shapes, 8)
    for t, b in zip(tensors, back):
        if t.numel() == 1:
            assert b.item() == np.float16(t.item())
            continue
        q, step = quantize(t, 8)
        assert torch.equal(b, q.float() * step)  # exactly the grid values
        assert (b - t).abs().max() <= step / 2 + 1e-7
        assert torch.equal(fake_quantize(t[None], 8)[0], b)  # what training saw
    assert len(data) < 0.55 * len(pack_fp16(tensors))


def test_quantisation_aware_training_uses_straight_through_gradients():
    p = torch.nn.Parameter(torch.linspace(-1, 1, 11)[None])
    y = fake_quantize(p, 3)  # levels -3..3
    assert len(torch.unique(y.detach())) <= 2 * levels(3) + 1
    y.sum().backward()
    assert torch.equal(p.grad, torch.ones_like(p))


def test_corrupt_entropy_coded_weights_raise_bitstream_errors():
    from nrff.errors import BitstreamError

    tensors = [torch.randn(8, 6), torch.tensor([[0.5]])]
    data = pack_quantized(tensors, 6)
    with pytest.raises(BitstreamError):
        unpack_quantized(data[:-4], [(8, 6), (1, 1)], 6)
    with pytest.raises(BitstreamError):
        unpack_quantized(data + b"\0\0\0\0", [(8, 6), (1, 1)], 6)
    with pytest.raises(BitstreamError):
        unpack_quantized(b"\xff\xff" + data[2:], [(8, 6), (1, 1)], 6)  # NaN step


@pytest.mark.parametrize("target,bits,mode", [(0.25, None, "intra"), (0.15, 6, "predicted")])
def test_target_bpp_lands_within_5_percent(tmp_path, target, bits, mode):
    config = EncodeConfig(
        field=FieldConfig(target_bpp=target, quant_bits=bits),
        train=TrainConfig(epochs=1, pixel_stride=8, log_every=4),
        keyframes=KeyframeConfig(mode=mode),
        device="cpu",
    )
    result = encode(sample_clip(), tmp_path / "t.nrff", config, checkpoint_seconds=None)
    assert abs(result.bpp / target - 1) < 0.05, result.bpp
    assert result.keyframes["crf"] != 20.0  # the CRF was chosen, not the default


def test_target_bpp_too_low_is_a_clear_error(tmp_path):
    from nrff.errors import InputError

    config = EncodeConfig(field=FieldConfig(target_bpp=0.001), train=TrainConfig(epochs=1), device="cpu")
    with pytest.raises(InputError, match="too low"):
        encode(sample_clip(), tmp_path / "t.nrff", config, checkpoint_seconds=None)


def test_predicted_key_frames_decode_from_any_random_access_point(tmp_path):
    config = EncodeConfig(train=TrainConfig(epochs=1, pixel_stride=8), keyframes=KeyframeConfig(mode="predicted", random_access=2),
                          gop=3, device="cpu")
    encode(sample_clip(), tmp_path / "p.nrff", config, checkpoint_seconds=None)
    stream = read_stream(load(tmp_path / "p.nrff"))
    assert sorted(stream.container.segments) == [0, 2, 4]  # 5 GOPs, an IDR every 2
    from nrff.decoder.keycache import KeyframeCache

    fresh = KeyframeCache(stream)
    later = fresh(4)  # starts decoding at GOP 4's segment without touching the others
    assert sorted(fresh.cache) == [4]
    whole = KeyframeCache(stream)
    for g in range(5):
        whole(g)
    assert np.array_equal(later, whole.cache[4])
    parts = decode(tmp_path / "p.nrff").parts(13)
    assert parts["frame"].shape == (108, 256, 3)


def test_probe_moves_network_bytes_to_the_gops_with_more_motion(tmp_path):
    """A clip whose first GOP is static and second moves: the probe gives the second more bytes."""
    from nrff.codec.weights import Fp16Weights
    from nrff.encoder.plan import SizingInputs, probe_difficulty, probe_weights
    from nrff.fields.encoding import PositionalEncoding
    from nrff.gop import split_gops
    from nrff.methods import FieldShape, get_method

    src = open_video(sample_clip()).read_all()
    frames = np.concatenate([np.repeat(src[:1], 5, axis=0), src[5:10]])
    folder = tmp_path / "clip"
    folder.mkdir()
    from PIL import Image

    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"f{i:02d}.png")
    gops = split_gops(10, 5)
    difficulty = probe_difficulty(open_video(folder), gops)
    assert difficulty[0] == 0 and difficulty[1] > 0
    weights = probe_weights(difficulty)
    assert weights[1] > weights[0]
    method = get_method("nrff")
    shape = FieldShape(method, True, PositionalEncoding.for_sizes(5, 108, 256), 1, 2)
    fixed = EncodeConfig(field=FieldConfig(ratio=0.5))
    probe = EncodeConfig(field=FieldConfig(ratio=0.5, ratio_mode="probe"))
    keys = {0: 8000, 1: 8000}
    w_fixed = method.plan_units(SizingInputs(fixed, shape, gops, keys, 108 * 256, 10, Fp16Weights()))
    w_probe = method.plan_units(SizingInputs(probe, shape, gops, keys, 108 * 256, 10, Fp16Weights(), difficulty))
    assert w_fixed[0] == w_fixed[1] and w_probe[1] > w_probe[0]
    total = lambda ws: sum(shape.param_count(w) for w in ws)  # noqa: E731
    assert abs(total(w_probe) / total(w_fixed) - 1) < 0.15  # bytes moved, not added


def test_probe_mode_round_trips(tmp_path, frames):
    config = EncodeConfig(field=FieldConfig(ratio_mode="probe"), train=TrainConfig(epochs=1, pixel_stride=8), device="cpu")
    result = encode(sample_clip(), tmp_path / "p.nrff", config, frames="0:8", checkpoint_seconds=None)
    decoded = list(decode(load(tmp_path / "p.nrff")).frames())
    assert np.mean([psnr(a, b) for a, b in zip(frames, decoded)]) == pytest.approx(result.psnr, abs=0.01)
