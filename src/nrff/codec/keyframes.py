"""Key-frame (intra) coding: one RGB frame <-> raw codec bytes.

The key-frame codec is a pluggable part: anything with ``encode(rgb) -> bytes``
and ``decode(data, width, height) -> rgb`` and a registered one-byte id can be
used (:data:`KEYFRAME_CODECS`). The default follows the published NRFF code:
libx264, CRF 20, preset medium, RGB input coded as yuv444p (High 4:4:4 Intra);
unlike that code, the size counted is the raw Annex-B stream, not an MP4 file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import av
import numpy as np

from nrff.codec.h26x import CODECS, H26xSettings, decode_annexb, encode_frames
from nrff.errors import BitstreamError, InputError
from nrff.video.colour import frame_to_rgb, needs_even_size


class KeyframeCodec(Protocol):
    """What the NRFF codec needs from an intra codec."""

    name: str

    def encode(self, rgb: np.ndarray) -> bytes: ...

    def decode(self, data: bytes, width: int, height: int) -> np.ndarray: ...


@dataclass(frozen=True)
class H26xIntra:
    """x264 or x265 in intra mode, deterministic, raw Annex-B output."""

    codec: str = "x264"
    crf: float = 20.0
    pix_fmt: str = "yuv444p"
    preset: str = "medium"

    @property
    def name(self) -> str:
        return self.codec

    def settings(self) -> H26xSettings:
        return H26xSettings(codec=self.codec, crf=self.crf, preset=self.preset, pix_fmt=self.pix_fmt, gop=None)

    def validate(self, width: int, height: int) -> None:
        if needs_even_size(self.pix_fmt) and (width % 2 or height % 2):  # name the encode option
            raise InputError(
                f"{width}x{height} has an odd side, which {self.pix_fmt} key frames cannot code; "
                "use --keyframe-pix-fmt yuv444p (the default), or crop or pad to even sizes"
            )
        self.settings().validate(width, height)

    def encode(self, rgb: np.ndarray) -> bytes:
        height, width = rgb.shape[:2]
        return b"".join(encode_frames([rgb], self.settings(), width, height))

    def decode(self, data: bytes, width: int, height: int) -> np.ndarray:
        return decode_intra(data, self.codec, width, height)


def decode_intra(data: bytes, codec: str, width: int, height: int) -> np.ndarray:
    """Decode exactly one frame of ``width`` x ``height``; anything else is a BitstreamError."""
    if codec not in CODECS:
        raise BitstreamError(f"unknown key-frame codec {codec!r}")
    if not data:
        raise BitstreamError("empty key frame")
    (frame,) = _decode_bounded(data, codec, 1, width, height, "key frame", "key frame holds at least 2 pictures instead of 1")
    return frame_to_rgb(frame, trust_tags=False)


def _decode_bounded(data: bytes, codec: str, count: int, width: int, height: int, what: str, too_many: str) -> list[av.VideoFrame]:
    """Exactly ``count`` pictures of ``width`` x ``height`` from untrusted bytes, or a BitstreamError.

    FFmpeg refuses pictures much larger than the declared frame before allocating them
    (coded sizes are padded to 16/64, strides to 64), and decoding stops past ``count`` pictures.
    """
    frames = []
    try:
        for frame in decode_annexb(data, codec, max_pixels=(width + 128) * (height + 128)):
            frames.append(frame)
            if len(frames) > count:
                raise BitstreamError(too_many)
    except (av.FFmpegError, ValueError) as exc:
        raise BitstreamError(f"{what} does not decode as {codec} at the declared {width}x{height}: {exc}") from None
    if len(frames) != count:
        raise BitstreamError(f"{what} holds {len(frames)} pictures instead of {count}")
    for frame in frames:
        if (frame.width, frame.height) != (width, height):
            raise BitstreamError(f"key frame is {frame.width}x{frame.height} but the header declares {width}x{height}")
    return frames


# One-byte ids used in the bitstream header. Never renumber: files depend on them.
KEYFRAME_CODEC_IDS = {"x264": 1, "x265": 2}
PIX_FMT_IDS = {"yuv444p": 1, "yuv420p": 2}


@dataclass(frozen=True)
class KeyframeSegment:
    """Key frames of ``count`` consecutive GOPs coded as one predicted stream (IDR first)."""

    first: int
    count: int
    data: bytes
    frame_bytes: tuple[int, ...]  # bytes of each key frame's access unit (the IDR carries SPS/PPS)


def encode_keyframe_segments(frames: list[np.ndarray], codec: H26xIntra, interval: int) -> list[KeyframeSegment]:
    """Code consecutive key frames as P-frame streams of ``interval`` pictures each.

    Key frames are only a GOP apart, so predicting each from the previous one
    costs far fewer bytes than coding each alone; every stream starts with an
    IDR picture, so decoding can start at any ``interval``-th GOP.
    """
    height, width = frames[0].shape[:2]
    out = []
    for first in range(0, len(frames), interval):
        chunk = frames[first : first + interval]
        settings = H26xSettings(codec=codec.codec, crf=codec.crf, preset=codec.preset, pix_fmt=codec.pix_fmt,
                                gop=max(interval, 2), bframes=False)
        packets = encode_frames(chunk, settings, width, height)
        if len(packets) != len(chunk):  # pragma: no cover - low-delay streams have one packet per picture
            raise RuntimeError("unexpected packetisation of the key-frame stream")
        out.append(KeyframeSegment(first, len(chunk), b"".join(packets), tuple(len(p) for p in packets)))
    return out


def decode_keyframe_segment(data: bytes, codec: str, count: int, width: int, height: int) -> list[np.ndarray]:
    """Decode one predicted key-frame stream; anything but ``count`` pictures of the size is a BitstreamError."""
    if codec not in CODECS:
        raise BitstreamError(f"unknown key-frame codec {codec!r}")
    frames = _decode_bounded(data, codec, count, width, height, "key-frame stream",
                             f"key-frame stream holds more than {count} pictures")
    return [frame_to_rgb(f, trust_tags=False) for f in frames]
