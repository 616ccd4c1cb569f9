"""Key-frame (intra) coding with x264 / x265: deterministic, faithful, no SEI."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from nrff import BitstreamError
from nrff.codec.keyframes import KeyframeSettings, decode_keyframes, keyframe_codec
from nrff.codec.paramsets import nal_units
from nrff.eval.metrics import psnr


class H26xIntra:
    """One registered key-frame codec at fixed settings (the tests' shorthand)."""

    def __init__(self, codec: str = "x264", crf: float = 20.0, pix_fmt: str = "yuv444p"):
        self.codec, self.settings = keyframe_codec(codec), KeyframeSettings(crf=crf, pix_fmt=pix_fmt)

    def encode(self, rgb):
        return self.codec.encode_intra(rgb, self.settings)

    def decode(self, data, width, height):
        return self.codec.decode(data, 1, width, height)[0]


def decode_intra(data: bytes, codec: str, width: int, height: int):
    return decode_keyframes(data, codec, 1, width, height)[0]


def h264_types(stream: bytes) -> list[int]:
    return [unit[0] & 0x1F for unit in nal_units(stream)]


def hevc_types(stream: bytes) -> list[int]:
    return [(unit[0] >> 1) & 0x3F for unit in nal_units(stream)]


@pytest.fixture(scope="module")
def frame(sample_frames) -> np.ndarray:
    return sample_frames[0]


@pytest.fixture(scope="module")
def x264_crf10(frame) -> bytes:
    return H26xIntra(crf=10).encode(frame)


def test_encoding_is_byte_identical(frame, x264_crf10):
    assert isinstance(x264_crf10, bytes) and len(x264_crf10) > 0
    assert H26xIntra(crf=10).encode(frame.copy()) == x264_crf10


def _plane_psnr(frame: np.ndarray, data: bytes, codec: str) -> list[float]:
    """PSNR of each decoded Y/U/V plane against the planes nrff fed the encoder."""
    from nrff.codec.h26x import decode_annexb
    from nrff.video.colour import rgb_to_frame

    (decoded,) = list(decode_annexb(data, codec))
    source = rgb_to_frame(frame, "yuv444p")
    values = []
    for a, b in zip(source.planes, decoded.planes):
        pa = np.frombuffer(bytes(a), np.uint8).reshape(-1, a.line_size)[:, : a.width]
        pb = np.frombuffer(bytes(b), np.uint8).reshape(-1, b.line_size)[:, : b.width]
        values.append(psnr(pa, pb))
    return values


def test_crf10_decodes_faithfully(frame, x264_crf10):
    height, width = frame.shape[:2]
    decoded = H26xIntra(crf=10).decode(x264_crf10, width, height)
    assert decoded.shape == frame.shape and decoded.dtype == np.uint8
    # Measured (x264 from PyAV 18.1, frame 1 of the bundled clip): 39.8 dB on RGB, 45.0 / 45.6 / 45.6 dB
    # on Y / U / V. A wrong colour matrix or range on either side costs far more than the margin.
    assert psnr(frame, decoded) >= 39.0
    assert min(_plane_psnr(frame, x264_crf10, "x264")) >= 44.5


def test_smaller_crf_gives_more_bytes_and_higher_psnr(frame):
    height, width = frame.shape[:2]
    results = []
    for crf in (12, 24, 36):
        codec = H26xIntra(crf=crf)
        data = codec.encode(frame)
        results.append((len(data), psnr(frame, codec.decode(data, width, height))))
    sizes = [r[0] for r in results]
    qualities = [r[1] for r in results]
    assert sizes[0] > sizes[1] > sizes[2]
    assert qualities[0] > qualities[1] > qualities[2]


def test_x264_stream_has_no_sei(x264_crf10):
    types = h264_types(x264_crf10)
    assert 6 not in types
    assert {5, 7, 8} <= set(types)  # IDR slice, SPS, PPS: the parser sees the real NAL units


def test_parser_finds_the_sei_x264_writes_by_default(frame):
    """The same frame through libx264 without nrff's filter carries an SEI (type 6): the check above is real."""
    height, width = frame.shape[:2]
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt = width, height, "yuv444p"
    cc.time_base = Fraction(1, 25)
    cc.thread_count = 1
    cc.options = {"crf": "10", "preset": "medium"}
    picture = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv444p")
    picture.pts = 0
    raw = b"".join(bytes(p) for p in list(cc.encode(picture)) + list(cc.encode(None)))
    assert 6 in h264_types(raw)


def test_x265_works(frame):
    height, width = frame.shape[:2]
    codec = H26xIntra(codec="x265", crf=10)
    data = codec.encode(frame)
    assert data == codec.encode(frame)
    types = hevc_types(data)
    assert {32, 33, 34} <= set(types)  # VPS, SPS, PPS
    assert set(types) & {19, 20}  # an IDR picture
    assert not set(types) & {39, 40}  # no prefix / suffix SEI
    decoded = decode_intra(data, "x265", width, height)
    assert psnr(frame, decoded) >= 40.0  # measured 41.7 dB
    assert min(_plane_psnr(frame, data, "x265")) >= 44.0
    # x265 bytes are not x264 bytes
    assert data != H26xIntra(crf=10).encode(frame)


def test_yuv420p_key_frames(frame):
    height, width = frame.shape[:2]
    codec = H26xIntra(crf=10, pix_fmt="yuv420p")
    data = codec.encode(frame)
    assert 35.0 < psnr(frame, codec.decode(data, width, height)) < psnr(
        frame, H26xIntra(crf=10).decode(H26xIntra(crf=10).encode(frame), width, height)
    )


@pytest.mark.parametrize("codec", ["x264", "x265"])
def test_garbage_raises_bitstream_error(codec):
    rng = np.random.default_rng(1)
    for data in (rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(), b"\x00\x00\x01" + b"\xff" * 100, b"nonsense"):
        with pytest.raises(BitstreamError):
            decode_intra(data, codec, 256, 108)


def test_empty_and_unknown_codec_raise_bitstream_error(x264_crf10):
    with pytest.raises(BitstreamError):
        decode_intra(b"", "x264", 256, 108)
    with pytest.raises(BitstreamError):
        decode_intra(x264_crf10, "vp9", 256, 108)


def test_size_mismatch_raises_bitstream_error(frame, x264_crf10):
    height, width = frame.shape[:2]
    decode_intra(x264_crf10, "x264", width, height)  # the right size decodes
    with pytest.raises(BitstreamError, match="declares"):
        decode_intra(x264_crf10, "x264", width + 2, height)
    with pytest.raises(BitstreamError, match="declares"):
        decode_intra(x264_crf10, "x264", width, height - 2)


def test_two_pictures_are_not_one_key_frame(x264_crf10):
    with pytest.raises(BitstreamError, match="2 pictures"):
        decode_intra(x264_crf10 + x264_crf10, "x264", 256, 108)


@pytest.mark.parametrize("codec", ["x264", "x265"])
def test_tune_psnr_reaches_the_encoder(frame, codec):
    plain = keyframe_codec(codec).encode_intra(frame, KeyframeSettings(crf=24))
    tuned = keyframe_codec(codec).encode_intra(frame, KeyframeSettings(crf=24, tune="psnr"))
    assert tuned != plain and tuned == keyframe_codec(codec).encode_intra(frame, KeyframeSettings(crf=24, tune="psnr"))
    with pytest.raises(Exception, match="unknown tune"):
        keyframe_codec(codec).validate(KeyframeSettings(crf=24, tune="film-grain"), 256, 108)
