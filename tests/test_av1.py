"""AV1 (SVT-AV1 + dav1d): key frames, anchors, bounded decoding."""

from __future__ import annotations

import numpy as np
import pytest

from nrff.codec import svtav1
from nrff.codec.keyframes import KeyframeSettings, decode_keyframes, keyframe_codec
from nrff.errors import BitstreamError, InputError
from nrff.eval.metrics import psnr

AV1 = keyframe_codec("av1")
SETTINGS = KeyframeSettings(crf=30, pix_fmt="yuv420p", preset="8")


@pytest.fixture(scope="module")
def frame(sample_frames) -> np.ndarray:
    return sample_frames[0]


def test_intra_pictures_are_byte_identical_and_faithful(frame):
    height, width = frame.shape[:2]
    data = AV1.encode_intra(frame, SETTINGS)
    assert data == AV1.encode_intra(frame.copy(), SETTINGS)
    assert data[:2] == b"\x12\x00"  # a temporal delimiter OBU, then the sequence header
    decoded = AV1.decode(data, 1, width, height)[0]
    assert decoded.shape == frame.shape and psnr(frame, decoded) > 30
    assert svtav1.max_frame_size(next(p for t, p in svtav1.obus(data) if t == svtav1.OBU_SEQUENCE_HEADER)) == (width, height)
    smaller = AV1.encode_intra(frame, KeyframeSettings(crf=50, pix_fmt="yuv420p", preset="8"))
    assert len(smaller) < len(data)


def test_predicted_streams_are_byte_identical_and_decode_whole(sample_frames):
    height, width = sample_frames.shape[1:3]
    frames = list(sample_frames[:4])
    packets = AV1.encode_stream(frames, SETTINGS, 4)
    assert len(packets) == 4 and packets == AV1.encode_stream([f.copy() for f in frames], SETTINGS, 4)
    decoded = AV1.decode(b"".join(packets), 4, width, height, "key-frame stream")
    assert all(psnr(a, b) > 30 for a, b in zip(frames, decoded))
    with pytest.raises(BitstreamError, match="more than 3 pictures"):
        AV1.decode(b"".join(packets), 3, width, height, "key-frame stream")
    with pytest.raises(BitstreamError, match="2 pictures instead of 4"):
        AV1.decode(b"".join(packets[:2]), 4, width, height, "key-frame stream")


def test_a_picture_larger_than_declared_is_refused_before_decoding(sample_frames):
    big = np.concatenate([sample_frames[0], sample_frames[1]], axis=0)  # 256x216
    data = AV1.encode_intra(big, SETTINGS)
    with pytest.raises(BitstreamError, match="allows 256x216 frames but the header declares 256x108"):
        AV1.decode(data, 1, 256, 108)
    AV1.decode(data, 1, 256, 216)  # the declared size decodes


@pytest.mark.parametrize("mutate", [
    lambda d: d[: len(d) // 2],  # truncated
    lambda d: d[:20] + bytes(255 - b for b in d[20:60]) + d[60:],  # corrupt payload
    lambda d: b"\x12\x00" + d[2:3] + b"\xff" * 12,  # a size field that runs past the end
    lambda d: b"\x10" + d[1:],  # no size field
    lambda d: np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
    lambda d: b"",
])
def test_corrupt_av1_key_frames_raise_the_documented_error(frame, mutate):
    height, width = frame.shape[:2]
    data = AV1.encode_intra(frame, SETTINGS)
    with pytest.raises(BitstreamError):
        decode_keyframes(mutate(data), "av1", 1, width, height)


def test_av1_settings_are_checked_before_any_work(frame):
    with pytest.raises(InputError, match="4:2:0 only"):
        AV1.validate(KeyframeSettings(crf=30, pix_fmt="yuv444p", preset="4"), 256, 108)
    with pytest.raises(InputError, match="whole number from 0 to 63"):
        AV1.validate(KeyframeSettings(crf=70, pix_fmt="yuv420p", preset="4"), 256, 108)
    with pytest.raises(InputError, match="presets are numbers"):
        AV1.validate(KeyframeSettings(crf=30, pix_fmt="yuv420p", preset="medium"), 256, 108)
    with pytest.raises(InputError, match="odd side"):  # the anchor codes the frame as it is
        svtav1.Av1Settings(crf=30, preset=4, gop=1).validate(255, 108)


def test_odd_sizes_are_coded_padded_and_cropped(frame):
    odd = np.ascontiguousarray(frame[:107, :255])
    AV1.validate(SETTINGS, 255, 107)
    data = AV1.encode_intra(odd, SETTINGS)
    (decoded,) = decode_keyframes(data, "av1", 1, 255, 107)
    assert decoded.shape == odd.shape and psnr(decoded, odd) > 30
    with pytest.raises(BitstreamError, match="declares"):  # a 256x108 picture is not a 253x107 key frame
        decode_keyframes(data, "av1", 1, 253, 107)


def test_svtav1_anchor_bytes_are_the_packets_sum(tmp_path):
    from nrff.data import sample_clip
    from nrff.eval.baselines import anchor_settings, run_baseline
    from nrff.video import open_video

    video = open_video(sample_clip(), frames="0:10")
    settings = anchor_settings("svtav1", 40, "10", gop=5)
    stream = tmp_path / "a.obu"
    result = run_baseline(video, settings, stream_output=stream)
    assert result.bytes == sum(result.packet_sizes) == stream.stat().st_size
    assert result.frames == 10 and 28 < result.psnr < 45
    again = run_baseline(video, settings)
    assert again.bytes == result.bytes and again.psnr == result.psnr  # deterministic
    # a key frame every 5 frames: exactly two sequence-header-bearing key frames in 10 frames
    headers = sum(1 for t, _ in svtav1.obus(stream.read_bytes()) if t == svtav1.OBU_SEQUENCE_HEADER)
    assert headers == 2
    with pytest.raises(InputError, match="yuv420p only"):
        anchor_settings("svtav1", 40, None, 5, "yuv444p")
