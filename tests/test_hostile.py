"""Hostile files that pass every CRC: each is refused quickly with one BitstreamError, or decoded
with bounded memory (files built by ``tests/hostile.py`` from the documented format)."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import hostile
from nrff.api import DecodeBudget, decode, info
from nrff.errors import BitstreamError, InputError

GOLDEN = Path(__file__).parent / "data" / "golden"
_TOOL = Path(__file__).resolve().parents[1] / "tools" / "fuzz.py"
if "nrff_tools_fuzz" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("nrff_tools_fuzz", _TOOL)
    sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules[_spec.name])
fuzz = sys.modules["nrff_tools_fuzz"]


class Peak:
    """The rise of the process's RSS high-water mark over a block (MiB)."""

    def __enter__(self):
        fuzz._reset_peak()
        self.before = fuzz.peak_rss_mib()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.rise = fuzz.peak_rss_mib() - self.before
        self.seconds = time.perf_counter() - self.started


def _cli(*args) -> tuple[int, list[str]]:
    from nrff.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()]


# ----------------------------------------------------------------------------- CPU: the decode budget


def test_a_wide_network_reused_16_times_is_refused_in_seconds(tmp_path):
    data = hostile.wide_reused(frames=2000, units=1024, reuse=16)
    assert info(data)["frames"] == 2000  # a valid file: the container accepts it
    with Peak() as p, pytest.raises(BitstreamError) as err:
        decode(data, device="cpu")
    message = str(err.value)
    assert "16 times" in message and "--no-decode-budget" in message and "\n" not in message
    assert p.seconds < 5
    path = tmp_path / "wide.nrff"
    path.write_bytes(data)
    code, lines = _cli("decode", str(path), "-o", str(tmp_path / "out.y4m"), "-q", "--device", "cpu")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "decode budget" in lines[0]
    assert not (tmp_path / "out.y4m").exists()
    # the override: the same file opens (its frames would take hours, so none is rendered here)
    assert decode(data, device="cpu", budget=DecodeBudget.unlimited()).count == 2000


@pytest.mark.parametrize("case,needle", [
    ({"units": 2048, "reuse": 2}, "2048 units wide"),
    ({"units": 64, "reuse": 2, "hidden": 6}, "6 hidden layers"),
    ({"units": 1024, "reuse": 4, "hidden": 4}, "multiply-adds per pixel"),
])
def test_every_network_limit_of_the_budget(case, needle):
    data = hostile.wide_reused(frames=1000, **case)
    with pytest.raises(BitstreamError, match=needle):
        decode(data, device="cpu")
    decode(data, device="cpu", budget=DecodeBudget.unlimited())


def test_the_total_work_limit_and_its_cli_flags(tmp_path):
    # within every per-network limit, but 2000 frames of 1024-wide networks is 2.6e13 multiply-adds
    data = hostile.wide_reused(frames=2000, units=1024, reuse=2)
    assert decode(data, device="cpu").count == 2000
    with pytest.raises(BitstreamError, match="multiply-adds"):
        decode(data, device="cpu", budget=DecodeBudget(max_work=1e12))
    with pytest.raises(BitstreamError, match="multiply-adds"):  # asking for 4x the pixels counts
        decode(data, device="cpu", scale=2, budget=DecodeBudget(max_work=5e13))
    path = tmp_path / "w.nrff"
    path.write_bytes(data)
    code, lines = _cli("decode", str(path), "-o", str(tmp_path / "o.y4m"), "--max-work", "1e12", "-q")
    assert code == 2 and len(lines) == 1 and "--max-work" in lines[0]
    code, lines = _cli("decode", str(path), "-o", str(tmp_path / "o.y4m"), "--max-work", "-3", "-q")
    assert code == 2 and len(lines) == 1 and "--max-work" in lines[0]
    over = hostile.wide_reused(frames=1000, units=1024, reuse=16)
    over_path = tmp_path / "over.nrff"
    over_path.write_bytes(over)
    code, lines = _cli("decode", str(over_path), "-o", str(tmp_path / "o.y4m"), "--max-work", "1e20", "-q")
    assert code == 2 and "16 times" in lines[0]  # --max-work alone does not lift the network limits


def test_a_huge_declared_siren_video_is_refused_by_the_total():
    data = hostile.build("siren", width=16384, height=4096, gops=[(1000, 0, 64), (1000, 0, 64)])  # 1.7e15
    with Peak() as p, pytest.raises(BitstreamError, match="multiply-adds"):
        decode(data, device="cpu")
    assert p.seconds < 5 and p.rise < 64


def test_the_encoder_writes_only_what_the_budget_accepts():
    from nrff.config import EncodeConfig
    from nrff.encoder.plan import MAX_WIDTH, fill_units

    for bad in ({"hidden_layers": 5}, {"reuse": 8}, {"reuse": 0}):
        with pytest.raises(InputError, match="hidden_layers and reuse"):
            EncodeConfig.from_preset("fast", **bad).validate()
    EncodeConfig.from_preset("fast", hidden_layers=4, reuse=4).validate()
    assert MAX_WIDTH == DecodeBudget().max_units
    assert fill_units(lambda w: w * w, [1e12], 1e12) == [MAX_WIDTH]


def test_ordinary_files_are_within_the_budget():
    from nrff.decoder.budget import declared_work
    from nrff.decoder.stream import read_stream

    for path in sorted(GOLDEN.glob("*.nrff")):
        stream = read_stream(path.read_bytes())
        peak, total = declared_work(stream, stream.header.width, stream.header.height, 1)
        assert 0 < peak < DecodeBudget().max_macs_per_pixel and total < 1e12, path.name
        decode(path.read_bytes(), device="cpu")  # default budget


# ----------------------------------------------------------------------------- memory


def test_a_long_predicted_key_frame_stream_is_decoded_incrementally():
    from nrff.decoder.keycache import CACHE_BYTES, KeyframeCache
    from nrff.decoder.stream import read_stream

    data = hostile.long_predicted_stream(pictures=1000, width=1280, height=720)
    assert len(data) < 200_000
    stream = read_stream(data)
    cache = KeyframeCache(stream)
    with Peak() as p:
        for g in range(1000):
            assert cache(g).shape == (720, 1280, 3)
    # all 1000 pictures cached were 2.6 GiB; now the cache and the codec's own pictures
    assert p.rise < CACHE_BYTES / 2**20 + 300, p.rise
    assert len(cache.cache) <= CACHE_BYTES // (1280 * 720 * 3) and cache.decoded == 1000
    cache(0)  # gone from the cache: decoded again from the start of its stream
    assert cache.decoded == 1001


def test_a_predicted_stream_decodes_the_same_with_a_tiny_cache(monkeypatch):
    data = (GOLDEN / "nrff-predicted.nrff").read_bytes()
    expected = [f.copy() for f in decode(data, device="cpu").frames()]
    from nrff.decoder import keycache

    monkeypatch.setattr(keycache, "CACHE_BYTES", 1)
    got = list(decode(data, device="cpu").frames())
    assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_a_predicted_stream_with_too_few_or_too_many_pictures_is_refused():
    for pictures in (999, 1001):
        stream = hostile.black_stream(64, 48, pictures)
        data = hostile.build("nrff", gops=[(1, 0, 0)] * 1000, mode=1, random_access=1000,
                             segments={0: (1000, stream)}, gop_length=5)
        with pytest.raises(BitstreamError, match="pictures"):
            for _ in decode(data, device="cpu").frames():
                pass


def test_key_frames_coded_larger_than_the_declared_frame_are_refused():
    data = hostile.cropped_keyframes(coded=(2048, 2048))
    with Peak() as p, pytest.raises(BitstreamError, match="codes 2048x2048 pictures"):
        list(decode(data, device="cpu").frames())
    assert p.seconds < 5 and p.rise < 32


@pytest.mark.parametrize("codec,pix_fmt,size", [("x264", "yuv420p", (64, 48)), ("x264", "yuv444p", (33, 17)),
                                                ("x265", "yuv420p", (64, 48)), ("x265", "yuv444p", (24, 16)), ("x265", "yuv420p", (1000, 562)),
                                                ("x264", "yuv420p", (1920, 1080))])
def test_the_parameter_set_reader_agrees_with_the_encoders(codec, pix_fmt, size):
    from nrff.codec.paramsets import check_coded_size, coded_sizes

    width, height = size
    if pix_fmt == "yuv420p" and (width % 2 or height % 2):
        pytest.skip("odd sizes are 4:4:4")
    data = hostile.black_stream(width, height, 2, codec, pix_fmt=pix_fmt)
    sizes = coded_sizes(data, codec)
    assert sizes, "no SPS found"
    if codec == "x264":  # whole macroblocks
        assert all((w, h) == (-(-width // 16) * 16, -(-height // 16) * 16) for w, h in sizes), sizes
    else:  # whole minimum coding blocks (x265: 16), within the 64 the check allows
        assert all(width <= w < width + 64 and height <= h < height + 64 and w % 8 == h % 8 == 0 for w, h in sizes), sizes
    check_coded_size(data, codec, width, height, "key frame")


def test_a_single_reference_gop_of_1000_1080p_frames_renders_frame_by_frame():
    data = hostile.huge_single_gop(frames=1000, width=1920, height=1080, key=0)
    assert len(data) < 20_000
    video = decode(data, device="cpu")
    with Peak() as p:
        frames = video.frames()
        first = [next(frames) for _ in range(3)]
        frames.close()
    assert all(f.shape == (1080, 1920, 3) for f in first)
    assert p.rise < 1024, p.rise  # the whole chain was 24.9 GB


@pytest.mark.parametrize("options", [{}, {"scale": 1.5}, {"fps_factor": 3}])
def test_frame_by_frame_rendering_matches_the_chunked_renderer(monkeypatch, options):
    """The golden single-reference file, rendered with a render budget so small that every GOP goes
    frame by frame, gives the frames of the ordinary renderer (exactly at the native size)."""
    from nrff.decoder import video as video_module

    for name in ("nrff-single.nrff", "nrff-q8.nrff", "siren.nrff"):
        data = (GOLDEN / name).read_bytes()
        expected = [f.copy() for f in decode(data, device="cpu", **options).frames()]
        with monkeypatch.context() as m:
            m.setattr(video_module, "RENDER_CHUNK_BYTES", 1)
            got = list(decode(data, device="cpu", **options).frames())
        assert len(got) == len(expected), name
        diff = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(got, expected))
        assert diff == 0 if not options else diff <= 1, (name, options, diff)


def test_a_longer_single_reference_gop_with_a_middle_key_streams_in_order(monkeypatch):
    """Key in the middle of a 23-frame GOP: frames before the key come from checkpoints."""
    from nrff.decoder import video as video_module

    data = hostile.build("nrff-single", width=32, height=16, gops=[(23, 11, 6)], keyframes=None)
    # non-zero weights, so every frame differs from its neighbour
    net = hostile.weights("nrff-single", 6, False, 1, 2, 23, 16, 32, value=0.05)
    data = hostile.build("nrff-single", width=32, height=16, gops=[(23, 11, 6)], networks={0: net})
    for options in ({}, {"fps_factor": 2}):
        expected = [f.copy() for f in decode(data, device="cpu", **options).frames()]
        with monkeypatch.context() as m:
            m.setattr(video_module, "RENDER_CHUNK_BYTES", 1)
            got = list(decode(data, device="cpu", **options).frames())
        assert len(got) == len(expected)
        assert max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(got, expected)) <= (0 if not options else 1)


def test_running_out_of_memory_while_decoding_is_a_bitstream_error(monkeypatch):
    from nrff.decoder import video as video_module

    def broke(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: you tried "
                           "to allocate 24883200000 bytes")

    monkeypatch.setattr(video_module, "reference_stack", broke)
    data = (GOLDEN / "nrff-single.nrff").read_bytes()
    with pytest.raises(BitstreamError, match="more memory than this machine has"):
        list(decode(data, device="cpu").frames())
    monkeypatch.setattr(video_module, "reference_stack", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):  # other errors stay what they are (exit 3)
        list(decode(data, device="cpu").frames())


# ----------------------------------------------------------------------------- entropy-coded weights


def test_random_bytes_are_not_entropy_coded_weights():
    from nrff.codec.weights import unpack_quantized

    rng = np.random.default_rng(1)
    shapes = [(1024, 2048)]
    payload = np.array([1.0, 0.5], "<f2").tobytes() + rng.bytes(128 * 1024)
    started = time.perf_counter()
    with pytest.raises(BitstreamError, match="ran past the end"):
        unpack_quantized(payload, shapes, 8)
    assert time.perf_counter() - started < 20
    data = hostile.random_entropy_coded(units=512, words=8192)
    video = decode(data, device="cpu")
    with pytest.raises(BitstreamError, match="ran past the end"):
        list(video.frames())


def test_real_entropy_coded_weights_still_decode_even_ending_in_free_symbols():
    import torch

    from nrff.codec.weights import pack_quantized, unpack_quantized

    torch.manual_seed(0)
    for bits in (2, 4, 8):
        tensors = [torch.randn(16, 8), torch.tensor([[0.3, -0.1, -0.5, -0.5]])]  # ends in -L, coded for free
        back = unpack_quantized(pack_quantized(tensors, bits), [(16, 8), (1, 4)], bits)
        assert back[1][0, -1] < 0 and back[1][0, -2] == back[1][0, -1]
