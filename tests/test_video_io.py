"""Video reading and writing: image folders, lossless mp4, y4m and raw yuv agree."""

from __future__ import annotations

import struct
import types
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

import nrff.video.reader as reader_module
from nrff import InputError, NrffWarning
from nrff.eval.metrics import psnr
from nrff.video import FrameRange, open_video
from nrff.video.writer import write_video


def _y4m_payloads(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split a Y4M file into its header line and the raw payload of each frame."""
    header, _, rest = data.partition(b"\n")
    fields = dict((f[:1], f[1:]) for f in header.split(b" ")[1:])
    width, height = int(fields[b"W"]), int(fields[b"H"])
    frame_bytes = width * height * 3 // 2
    payloads = []
    while rest:
        tag, _, rest = rest.partition(b"\n")
        assert tag.startswith(b"FRAME")
        payloads.append(rest[:frame_bytes])
        rest = rest[frame_bytes:]
    return header, payloads


@pytest.fixture
def encoded(tmp_path, tiny_clip, tiny_frames):
    """The tiny clip written by nrff as lossless .mp4, .y4m and .yuv."""
    paths = {"folder": tiny_clip}
    for suffix in ("mp4", "y4m", "yuv"):
        path = tmp_path / f"clip.{suffix}"
        assert write_video(path, iter(tiny_frames)) == len(tiny_frames)
        paths[suffix] = path
    return paths


def test_folder_reads_the_pngs(tiny_clip, tiny_frames):
    video = open_video(tiny_clip)
    assert (video.info.width, video.info.height, video.info.frames, video.info.kind) == (64, 48, 7, "images")
    assert len(video) == 7
    np.testing.assert_array_equal(video.read_all(), tiny_frames)


def test_folder_and_lossless_mp4_agree_exactly(encoded, tiny_frames):
    folder = open_video(encoded["folder"]).read_all()
    mp4 = open_video(encoded["mp4"])
    assert (mp4.info.width, mp4.info.height, mp4.info.frames, mp4.info.kind) == (64, 48, 7, "container")
    np.testing.assert_array_equal(mp4.read_all(), folder)
    np.testing.assert_array_equal(folder, tiny_frames)


def test_y4m_and_yuv_agree_exactly(encoded, tiny_frames):
    y4m = open_video(encoded["y4m"])
    yuv = open_video(encoded["yuv"], size="64x48")
    assert y4m.info.frames == yuv.info.frames == 7
    assert (yuv.info.width, yuv.info.height, yuv.info.kind) == (64, 48, "yuv")
    a, b = y4m.read_all(), yuv.read_all()
    np.testing.assert_array_equal(a, b)
    # 4:2:0 is lossy, but only slightly: a real round trip, not garbage.
    for original, decoded in zip(tiny_frames, a):
        assert 33.0 < psnr(original, decoded) < 100.0


def test_y4m_payload_is_the_raw_yuv(encoded):
    header, payloads = _y4m_payloads(encoded["y4m"].read_bytes())
    assert header.startswith(b"YUV4MPEG2 W64 H48")
    raw = encoded["yuv"].read_bytes()
    assert len(raw) == 7 * 64 * 48 * 3 // 2
    assert b"".join(payloads) == raw


def test_yuv_is_bt601_limited_range(encoded, tiny_frames):
    """The luma plane nrff writes follows BT.601 limited range (checked with the textbook formula)."""
    raw = np.frombuffer(encoded["yuv"].read_bytes(), dtype=np.uint8)
    y_plane = raw[: 64 * 48].reshape(48, 64).astype(np.float64)
    rgb = tiny_frames[0].astype(np.float64)
    expected = 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0
    assert np.max(np.abs(y_plane - expected)) <= 1.0


@pytest.mark.parametrize("kind", ["folder", "mp4", "y4m", "yuv"])
@pytest.mark.parametrize(("text", "expected"), [("2:5", slice(2, 5)), ("3:", slice(3, None)), (":4", slice(0, 4)), (":", slice(None))])
def test_frame_ranges(encoded, kind, text, expected):
    size = "64x48" if kind == "yuv" else None
    full = open_video(encoded[kind], size=size).read_all()
    video = open_video(encoded[kind], frames=text, size=size)
    want = full[expected]
    assert video.info.frames == len(want)
    np.testing.assert_array_equal(video.read_all(), want)


def test_frame_range_object_and_parse():
    assert FrameRange.parse("2:5") == FrameRange(2, 5)
    assert FrameRange.parse(":") == FrameRange(0, None)
    assert FrameRange.parse(None) is None
    for bad in ("3:3", "5:2", "a:b", "-1:3", "3"):
        with pytest.raises(InputError):
            FrameRange.parse(bad)


@pytest.mark.parametrize("text", ["0:8", "7:", "9:12"])
def test_frame_range_beyond_the_end_is_refused(tiny_clip, text):
    with pytest.raises(InputError, match="only 7 frames"):
        open_video(tiny_clip, frames=text)


def test_reading_is_lazy(tiny_clip, monkeypatch):
    opened = []
    real_open = Image.open

    def counting_open(path, *args, **kwargs):
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(reader_module.Image, "open", counting_open)
    video = open_video(tiny_clip)
    assert len(opened) == 1  # the first frame, for its size
    it = iter(video)
    assert isinstance(it, types.GeneratorType)
    frame = next(it)
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    assert len(opened) == 2  # one more image, not the whole folder
    next(it)
    assert len(opened) == 3


@pytest.mark.parametrize("kind", ["mp4", "y4m", "yuv"])
def test_streams_yield_one_frame_at_a_time(encoded, kind):
    video = open_video(encoded[kind], size="64x48" if kind == "yuv" else None)
    it = iter(video)
    assert isinstance(it, types.GeneratorType)
    frames = []
    for frame in it:
        assert isinstance(frame, np.ndarray)
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        frames.append(frame)
    assert len(frames) == 7


def test_raw_yuv_is_read_frame_by_frame(encoded):
    """Truncating the file after the first frame was read makes the second read fail: nothing was preloaded."""
    path = encoded["yuv"]
    video = open_video(path, size="64x48")
    it = iter(video)
    next(it)
    with open(path, "r+b") as f:
        f.truncate(64 * 48 * 3 // 2 + 10)
    with pytest.raises(InputError, match="truncated"):
        next(it)


def test_natural_order(tmp_path):
    folder = tmp_path / "order"
    folder.mkdir()
    for i in range(1, 12):
        Image.fromarray(np.full((12, 12, 3), i * 10, np.uint8)).save(folder / f"f{i}.png")
    frames = open_video(folder).read_all()
    assert [int(f[0, 0, 0]) for f in frames] == [i * 10 for i in range(1, 12)]


def test_raw_yuv_needs_a_matching_size(encoded):
    with pytest.raises(InputError, match="--size"):
        open_video(encoded["yuv"])
    with pytest.raises(InputError, match="whole number"):
        open_video(encoded["yuv"], size="64x40")


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_video(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty"):
        open_video(tmp_path / "empty")


def test_mixed_sizes_are_refused(tmp_path, tiny_frames, make_png_folder):
    folder = make_png_folder(tmp_path / "mixed", tiny_frames[:3])
    Image.fromarray(tiny_frames[0, :40, :60]).save(folder / "frame_0004.png")
    video = open_video(folder)
    with pytest.raises(InputError, match="same size"):
        video.read_all()


def test_corrupt_image_is_refused(tmp_path, tiny_frames, make_png_folder):
    folder = make_png_folder(tmp_path / "corrupt", tiny_frames[:3])
    (folder / "frame_0002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    video = open_video(folder)
    with pytest.raises(InputError, match="frame_0002.png: cannot read image"):
        video.read_all()


def _read_single(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = open_video(path).read_all()
    return frames, [w for w in caught if issubclass(w.category, NrffWarning)]


def test_grayscale_png_becomes_rgb_with_a_warning(tmp_path):
    gray = np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) % 256
    Image.fromarray(gray.astype(np.uint8)).save(tmp_path / "g.png")
    frames, caught = _read_single(tmp_path / "g.png")
    assert caught and "grayscale" in str(caught[0].message)
    assert frames.shape == (1, 48, 64, 3) and frames.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(frames[0, ..., c], gray)


def test_16bit_png_becomes_8bit_rgb_with_a_warning(tmp_path):
    values = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 21) % 65536
    Image.fromarray(values.astype(np.uint16)).save(tmp_path / "deep.png")
    frames, caught = _read_single(tmp_path / "deep.png")
    assert caught and "16-bit" in str(caught[0].message)
    assert frames.shape == (1, 48, 64, 3) and frames.dtype == np.uint8
    expected = np.rint(values / 257.0).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(frames[0, ..., c], expected)


def test_rgba_png_drops_alpha_with_a_warning(tmp_path, tiny_frames):
    rgba = np.concatenate([tiny_frames[0], np.full((48, 64, 1), 77, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    frames, caught = _read_single(tmp_path / "a.png")
    assert caught and "alpha" in str(caught[0].message)
    np.testing.assert_array_equal(frames[0], tiny_frames[0])


def test_rgb_png_reads_without_warning(tiny_clip):
    frames, caught = _read_single(tiny_clip / "frame_0001.png")
    assert frames.shape == (1, 48, 64, 3)
    assert caught == []


def _write_png(path, width: int, height: int, depth: int, colour_type: int, rows: bytes) -> None:
    """A minimal PNG writer (for what PIL cannot write: 16-bit RGB, huge declared sizes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def test_16bit_rgb_png_becomes_8bit_rgb_with_a_warning(tmp_path):
    values = ((np.arange(48 * 64 * 3).reshape(48, 64, 3) * 97) % 65536).astype(np.uint16)
    rows = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(48))
    _write_png(tmp_path / "deep_rgb.png", 64, 48, 16, 2, rows)
    with pytest.warns(NrffWarning, match="16-bit"):
        frames = open_video(tmp_path / "deep_rgb.png").read_all()
    np.testing.assert_array_equal(frames[0], np.rint(values / 257.0).astype(np.uint8))


def test_oversized_image_is_an_input_error(tmp_path):
    _write_png(tmp_path / "huge.png", 20000, 10000, 1, 0, b"")
    with pytest.raises(InputError, match="16384"):
        open_video(tmp_path / "huge.png")
