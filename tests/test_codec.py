"""End to end: encode -> file -> decode, for every method, on tiny clips."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import write_clip
from nrff.api import decode, encode, info, load
from nrff.codec.container import read_container as read_bitstream
from nrff.config import EncodeConfig, FieldConfig, KeyframeConfig, TrainConfig
from nrff.eval.metrics import psnr
from nrff.video import open_video

NRFF = str(Path(sys.executable).with_name("nrff"))
METHODS = [("nrff", True), ("nrff", False), ("nrff-single", False), ("siren", None), ("nerv", None)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    frames = write_clip(folder, frames=10, size=(64, 48))
    return folder, frames


def _config(method, split, epochs=20, **field):
    if method == "siren":
        field.setdefault("target_bpp", 1.0)
    if method == "nerv":
        field.setdefault("target_bpp", 6.0)  # the smallest NeRV needs ~8 KB
    return EncodeConfig(
        field=FieldConfig(method=method, split=split, **field),
        train=TrainConfig(epochs=epochs, pixel_stride=4, batch_frames=4 if method == "nrff-single" else 1, log_every=10),
        device="cpu",
    )


@pytest.mark.parametrize("method,split", METHODS)
def test_round_trip_reproduces_the_reported_quality(clip, tmp_path, method, split):
    folder, frames = clip
    out = tmp_path / "clip.nrff"
    result = encode(folder, out, _config(method, split))
    data = out.read_bytes()
    assert result.bytes == len(data)
    assert result.bpp == pytest.approx(8 * len(data) / (10 * 64 * 48))
    _, sections = read_bitstream(data)
    assert 5 + sum(s.size for s in sections) == len(data)
    decoded = list(decode(data, device="cpu").frames())
    assert len(decoded) == 10 and decoded[0].shape == (48, 64, 3) and decoded[0].dtype == np.uint8
    measured = np.mean([psnr(a, b) for a, b in zip(frames, decoded)])
    assert measured == pytest.approx(result.psnr, abs=0.01)
    assert result.psnr_per_frame == pytest.approx([psnr(a, b) for a, b in zip(frames, decoded)], abs=1e-9)
    report = result.report()
    for key in ("bytes", "bpp", "psnr", "ssim", "frames", "width", "height", "encode_seconds", "method", "gop", "device", "gops"):
        assert key in report
    assert sum(g["keyframe_bytes"] + g["network_bytes"] for g in report["gops"]) < len(data)
    desc = info(data)
    assert desc["keyframe_bytes"] + desc["network_bytes"] + desc["overhead_bytes"] == len(data)
    assert desc["method"] == method


def test_same_seed_same_bytes_and_decoding_is_repeatable(clip, tmp_path):
    folder, _ = clip
    a = encode(folder, tmp_path / "a.nrff", _config("nrff", True, epochs=5))
    b = encode(folder, tmp_path / "b.nrff", _config("nrff", True, epochs=5))
    assert (tmp_path / "a.nrff").read_bytes() == (tmp_path / "b.nrff").read_bytes()
    data = load(tmp_path / "a.nrff")
    first = list(decode(data).frames())
    second = list(decode(data).frames())
    assert all(np.array_equal(x, y) for x, y in zip(first, second))
    assert a.psnr == b.psnr


def test_super_resolution_and_frame_rate_shapes(clip, tmp_path):
    folder, _ = clip
    for method, split in (("nrff", True), ("nrff-single", False), ("siren", None), ("nerv", None)):
        encode(folder, tmp_path / f"{method}.nrff", _config(method, split, epochs=2))
        data = load(tmp_path / f"{method}.nrff")
        video = decode(data, scale=2, fps_factor=2)
        frames = list(video.frames())
        assert video.count == len(frames) == (10 - 1) * 2 + 1
        assert all(f.shape == (96, 128, 3) for f in frames)
        assert float(video.fps) == pytest.approx(2 * 24)
        small = list(decode(data, size=(40, 30)).frames())
        assert len(small) == 10 and small[0].shape == (30, 40, 3)


def test_native_frames_are_unchanged_by_the_frame_rate_factor(clip, tmp_path):
    folder, _ = clip
    encode(folder, tmp_path / "c.nrff", _config("nrff", True, epochs=3))
    data = load(tmp_path / "c.nrff")
    plain = list(decode(data).frames())
    doubled = list(decode(data, fps_factor=2).frames())
    assert all(np.array_equal(a, b) for a, b in zip(plain, doubled[::2]))


def _cli(*args, cwd=None):
    return subprocess.run([NRFF, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def _one_line_error(proc, needle):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert needle in lines[0], lines[0]


def test_cli_bad_input(clip, tmp_path):
    folder, _ = clip
    _one_line_error(_cli("encode", folder, "-o", tmp_path / "x.nrff", "--method", "nerf"), "unknown method")
    _one_line_error(_cli("encode", folder, "-o", tmp_path / "x.nrff", "--gop", "0"), "GOP length")
    _one_line_error(_cli("encode", folder, "-o", tmp_path / "x.nrff", "--method", "siren"), "--target-bpp")
    (tmp_path / "not.nrff").write_bytes(b"hello, I am not a bitstream")
    _one_line_error(_cli("decode", tmp_path / "not.nrff", "-o", tmp_path / "out"), "not an nrff bitstream")
    _one_line_error(_cli("info", tmp_path / "missing.nrff"), "no such file")
    (tmp_path / "exists.nrff").write_bytes(b"precious")
    _one_line_error(_cli("encode", folder, "-o", tmp_path / "exists.nrff", "--epochs", "1"), "already exists")
    assert (tmp_path / "exists.nrff").read_bytes() == b"precious"


def test_cli_encode_decode_info(clip, tmp_path):
    folder, frames = clip
    proc = _cli("encode", folder, "-o", tmp_path / "c.nrff", "--preset", "fast", "--epochs", "3", "--device", "cpu",
                "--report", tmp_path / "r.json", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["bytes"] == (tmp_path / "c.nrff").stat().st_size
    proc = _cli("decode", tmp_path / "c.nrff", "-o", tmp_path / "out.y4m", "-q")
    assert proc.returncode == 0, proc.stderr
    assert open_video(tmp_path / "out.y4m").info.frames == 10
    proc = _cli("decode", tmp_path / "c.nrff", "-o", tmp_path / "png", "-q")
    decoded = open_video(tmp_path / "png").read_all()
    assert np.mean([psnr(a, b) for a, b in zip(frames, decoded)]) == pytest.approx(report["psnr"], abs=0.01)
    proc = _cli("decode", tmp_path / "c.nrff", "-o", tmp_path / "png", "-q")
    _one_line_error(proc, "not empty")
    proc = _cli("info", tmp_path / "c.nrff", "--json")
    desc = json.loads(proc.stdout)
    assert desc["bytes"] == report["bytes"] and [s["tag"] for s in desc["sections"]][0] == "HEAD"


def test_one_frame_and_short_clips(tmp_path):
    for n in (1, 2, 3):
        folder = tmp_path / f"c{n}"
        frames = write_clip(folder, frames=n, size=(32, 16))
        result = encode(folder, tmp_path / f"c{n}.nrff", _config("nrff", True, epochs=2))
        decoded = list(decode(load(tmp_path / f"c{n}.nrff")).frames())
        assert len(decoded) == n
        assert result.frames == n
        assert np.mean([psnr(a, b) for a, b in zip(frames, decoded)]) == pytest.approx(result.psnr, abs=0.01)


def test_x265_and_yuv420_key_frames(clip, tmp_path):
    folder, _ = clip
    for codec, pix in (("x265", "yuv444p"), ("x264", "yuv420p")):
        cfg = _config("nrff", True, epochs=2)
        cfg = EncodeConfig(field=cfg.field, train=cfg.train, keyframes=KeyframeConfig(codec=codec, pix_fmt=pix), device="cpu")
        result = encode(folder, tmp_path / f"{codec}.nrff", cfg)
        assert info(load(tmp_path / f"{codec}.nrff"))["keyframe_codec"] == codec
        keys = [g["key"] for g in result.gops]
        assert min(result.psnr_per_frame[k] for k in keys) > 30  # the stored key frames decode exactly


def test_half_precision_decoding_stays_within_0_01_db(clip, tmp_path):
    """fp16 networks (the CUDA default) must not cost quality: within 0.01 dB of fp32."""
    folder, frames = clip
    for method, split in (("nrff", True), ("siren", None)):
        encode(folder, tmp_path / f"{method}.nrff", _config(method, split, epochs=30))
        data = load(tmp_path / f"{method}.nrff")
        full = list(decode(data, device="cpu", precision="fp32").frames())
        half = list(decode(data, device="cpu", precision="fp16").frames())
        gap = np.mean([psnr(a, b) for a, b in zip(frames, full)]) - np.mean([psnr(a, b) for a, b in zip(frames, half)])
        assert abs(gap) < 0.01, (method, gap)
        assert any(not np.array_equal(a, b) for a, b in zip(full, half)), "fp16 was not applied"
    with pytest.raises(Exception, match="precision"):
        decode(data, precision="fp8")
