"""Deterministic SVT-AV1 encoding to raw OBU bytes, and bounded dav1d decoding back.

The AV1 counterpart of :mod:`nrff.codec.h26x`, shared by the AV1 key-frame codec
and the SVT-AV1 anchor so that both count bytes the same way: the
low-overhead OBU stream (temporal delimiter, sequence header, frames; every
OBU with its size field), no container. SVT-AV1 codes 8-bit 4:2:0 only;
``crf`` is 0-63 and ``preset`` 0-13 (lower is slower and better). A closed GOP
of N frames is ``keyint=N:irefresh-type=2:scd=0`` (a key frame every N
frames, no scene-cut detection); the encoder runs on one thread (``lp=1``) and
its bytes were identical for ``lp`` 1, 2 and 4, so they are the same on every
machine.

Decoding untrusted bytes is bounded twice: every sequence header is parsed
here first and a ``max_frame_width``/``max_frame_height`` larger than the
declared frame is refused before dav1d sees the data, and dav1d is given the
declared size as its frame-size limit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from nrff.errors import BitstreamError, InputError
from nrff.video.colour import rgb_to_frame

ENCODER, DECODER = "libsvtav1", "libdav1d"
CRF_RANGE = (0, 63)
PRESET_RANGE = (0, 13)
OBU_SEQUENCE_HEADER = 1
os.environ.setdefault("SVT_LOG", "1")  # errors only: SVT-AV1 prints its configuration at level 3


@dataclass(frozen=True)
class Av1Settings:
    """How to drive SVT-AV1. ``gop``: frames per closed GOP (a key frame every ``gop`` frames);
    ``low_delay``: no frame references a later one (the counterpart of ``--no-bframes``)."""

    crf: float = 35
    preset: int = 4
    gop: int = 5
    low_delay: bool = False

    def validate(self, width: int, height: int) -> None:
        if not CRF_RANGE[0] <= self.crf <= CRF_RANGE[1] or self.crf != int(self.crf):
            raise InputError(f"SVT-AV1 CRF must be a whole number from 0 to 63 (got {self.crf:g})")
        if not PRESET_RANGE[0] <= self.preset <= PRESET_RANGE[1]:
            raise InputError(f"SVT-AV1 preset must be 0 to 13 (got {self.preset})")
        if self.gop < 1:
            raise InputError(f"GOP length must be at least 1 (got {self.gop})")
        if width % 2 or height % 2:
            raise InputError(f"{width}x{height} has an odd side, which SVT-AV1 (4:2:0 only) cannot code; "
                             "crop or pad to even sizes")
        if min(width, height) < 8:
            raise InputError(f"{width}x{height} is too small for SVT-AV1 (at least 8x8)")

    codec = "svtav1"
    pix_fmt = "yuv420p"

    @property
    def bframes(self) -> bool:
        return not self.low_delay

    def encode(self, frames: Iterable[np.ndarray], width: int, height: int, fps: Fraction = Fraction(25)) -> list[bytes]:
        return encode_frames(frames, self, width, height, fps)

    def decode(self, data: bytes, width: int, height: int) -> Iterator[av.VideoFrame]:
        return decode_frames(data, width, height)

    def params(self) -> str:
        items = [f"keyint={self.gop}", "irefresh-type=2", "scd=0", "lp=1"]
        if self.low_delay:
            items.append("pred-struct=1")
        return ":".join(items)


def parse_preset(text: str | int) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise InputError(f"SVT-AV1 presets are numbers from 0 (slowest) to 13 (fastest), not {text!r}") from None


def encode_frames(frames: Iterable[np.ndarray], settings: Av1Settings, width: int, height: int,
                  fps: Fraction = Fraction(25)) -> list[bytes]:
    """Encode RGB frames; return the OBU packets (one temporal unit each) in decoding order."""
    settings.validate(width, height)
    cc = av.CodecContext.create(ENCODER, "w")
    cc.width, cc.height = width, height
    cc.pix_fmt = "yuv420p"
    cc.time_base = Fraction(1) / Fraction(fps)
    cc.framerate = Fraction(fps)
    cc.thread_count = 1
    cc.color_range = 1  # MPEG (limited)
    cc.colorspace = 5  # BT.470BG / BT.601 matrix
    cc.options = {"crf": str(int(settings.crf)), "preset": str(settings.preset), "svtav1-params": settings.params()}
    out: list[bytes] = []
    try:
        for index, rgb in enumerate(frames):
            frame = rgb_to_frame(rgb, "yuv420p")
            frame.pts = index
            out += [bytes(p) for p in cc.encode(frame)]
        out += [bytes(p) for p in cc.encode(None)]
    except av.FFmpegError as exc:  # pragma: no cover - encoder failure is an environment problem
        raise InputError(f"{ENCODER} failed: {exc}") from None
    return [p for p in out if p]


# ----------------------------------------------------------------------------- parsing


class _Bits:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise BitstreamError("AV1 sequence header is truncated")
            value = (value << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
            if zeros >= 32:
                raise BitstreamError("AV1 sequence header holds an invalid variable-length number")
        return (1 << zeros) - 1 + self.read(zeros)


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if pos + i >= len(data):
            raise BitstreamError("AV1 data ends inside an OBU size")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise BitstreamError("AV1 OBU size is longer than 8 bytes")


def obus(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of every OBU of a low-overhead stream; every OBU must carry its size."""
    pos = 0
    while pos < len(data):
        header = data[pos]
        if header & 0x80:
            raise BitstreamError("AV1 OBU header has its forbidden bit set")
        if not header & 0x02:
            raise BitstreamError("AV1 OBU without a size field (not a low-overhead stream)")
        pos += 2 if header & 0x04 else 1
        size, pos = _leb128(data, pos)
        if pos + size > len(data):
            raise BitstreamError("AV1 OBU declares more bytes than the data holds")
        yield (header >> 3) & 0x0F, data[pos : pos + size]
        pos += size


def max_frame_size(sequence_header: bytes) -> tuple[int, int]:
    """``(max_frame_width, max_frame_height)`` of an AV1 sequence header OBU payload (spec 5.5)."""
    b = _Bits(sequence_header)
    b.read(3)  # seq_profile
    b.read(1)  # still_picture
    if b.read(1):  # reduced_still_picture_header
        b.read(5)
    else:
        decoder_model = False
        buffer_delay_bits = 0
        if b.read(1):  # timing_info_present_flag
            b.read(32), b.read(32)
            if b.read(1):
                b.uvlc()
            decoder_model = bool(b.read(1))
            if decoder_model:
                buffer_delay_bits = b.read(5) + 1
                b.read(32), b.read(5), b.read(5)
        initial_display_delay = b.read(1)
        for _ in range(b.read(5) + 1):  # operating points
            b.read(12)
            if b.read(5) > 7:
                b.read(1)
            if decoder_model and b.read(1):
                b.read(buffer_delay_bits), b.read(buffer_delay_bits), b.read(1)
            if initial_display_delay and b.read(1):
                b.read(4)
    width_bits, height_bits = b.read(4) + 1, b.read(4) + 1
    return b.read(width_bits) + 1, b.read(height_bits) + 1


def check_frame_size(data: bytes, width: int, height: int) -> None:
    """Refuse a stream whose sequence headers allow frames larger than ``width`` x ``height``
    (rounded up to 8), before any picture is allocated."""
    seen = False
    for kind, payload in obus(data):
        if kind == OBU_SEQUENCE_HEADER:
            seen = True
            w, h = max_frame_size(payload)
            if w > -(-width // 8) * 8 or h > -(-height // 8) * 8:
                raise BitstreamError(f"AV1 sequence header allows {w}x{h} frames but the header declares {width}x{height}")
    if not seen:
        raise BitstreamError("AV1 data holds no sequence header")


def decode_frames(data: bytes, width: int, height: int) -> Iterator[av.VideoFrame]:
    """Decode a low-overhead OBU stream with dav1d (after :func:`check_frame_size`); yields frames
    in display order. Raises ``av.FFmpegError`` on corrupt data."""
    check_frame_size(data, width, height)
    cc = av.CodecContext.create(DECODER, "r")
    cc.thread_count = 1
    cc.options = {"max_pixels": str((width + 8) * (height + 8))}
    yield from cc.decode(av.Packet(data))
    yield from cc.decode(None)
