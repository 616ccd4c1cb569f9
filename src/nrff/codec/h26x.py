"""Deterministic x264 / x265 encoding to raw Annex-B bytes, and decoding back.

Shared by the key-frame codec and the conventional anchors so that both count
bytes the same way: the raw elementary stream, no container, x264's "info"
SEI (encoder settings as text, ~600 bytes) removed with the ``filter_units``
bitstream filter, x265's with ``info=0``. Encoders run single-threaded
(``thread_count = 1``; x265 ``pools=none:frame-threads=1``) so that the bytes
are identical on every machine, whatever its core count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.bitstream import BitStreamFilterContext

from nrff.errors import InputError
from nrff.video.colour import needs_even_size, rgb_to_frame

# name -> (FFmpeg encoder, FFmpeg decoder)
CODECS = {"x264": ("libx264", "h264"), "x265": ("libx265", "hevc")}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
PIX_FMTS = ("yuv420p", "yuv444p")
TUNES = ("psnr", "ssim")


@dataclass(frozen=True)
class H26xSettings:
    """How to drive x264 or x265.

    ``gop`` is the closed-GOP length (``keyint = min-keyint = gop``, no scene
    cut, IDR at every GOP start). ``gop=None`` keeps the encoder's defaults,
    which is how a lone key frame is coded: x264 treats ``keyint=1`` as an
    all-intra stream and spends about twice the bytes at the same CRF, while
    the published NRFF code coded each key frame as a one-frame video.
    """

    codec: str = "x264"
    crf: float = 23.0
    preset: str = "medium"
    pix_fmt: str = "yuv420p"
    gop: int | None = 5
    bframes: bool = True
    tune: str | None = None  # e.g. "psnr": the encoder's psychovisual tweaks off, for PSNR scoring

    def validate(self, width: int, height: int) -> None:
        if self.codec not in CODECS:
            raise InputError(f"unknown codec {self.codec!r}; choose one of {', '.join(CODECS)}")
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.pix_fmt not in PIX_FMTS:
            raise InputError(f"unsupported pixel format {self.pix_fmt!r}; choose one of {', '.join(PIX_FMTS)}")
        if not 0 <= self.crf <= 51:
            raise InputError(f"CRF must be between 0 and 51 (got {self.crf:g})")
        if self.tune is not None and self.tune not in TUNES:
            raise InputError(f"unknown tune {self.tune!r}; choose one of {', '.join(TUNES)}")
        if self.gop is not None and self.gop < 1:
            raise InputError(f"GOP length must be at least 1 (got {self.gop})")
        if needs_even_size(self.pix_fmt) and (width % 2 or height % 2):
            raise InputError(
                f"{width}x{height} has an odd side, which {self.pix_fmt} cannot code; "
                "crop or pad to even sizes, or use --pix-fmt yuv444p"
            )

    def encode(self, frames: Iterable[np.ndarray], width: int, height: int, fps: Fraction = Fraction(25)) -> list[bytes]:
        return encode_frames(frames, self, width, height, fps)

    def decode(self, data: bytes, width: int, height: int) -> Iterator[av.VideoFrame]:
        return decode_annexb(data, self.codec)

    def options(self) -> dict[str, str]:
        params = []
        if self.gop is not None:
            params += [f"keyint={self.gop}", f"min-keyint={self.gop}", "scenecut=0", "open-gop=0"]
        if not self.bframes or self.gop == 1:
            params.append("bframes=0")
        if self.codec == "x265":
            params += ["info=0", "log-level=error", "pools=none", "frame-threads=1"]
        opts = {"crf": f"{self.crf:g}", "preset": self.preset}
        if self.tune is not None:
            opts["tune"] = self.tune
        if params:
            opts[f"{self.codec}-params"] = ":".join(params)
        return opts


def encode_frames(
    frames: Iterable[np.ndarray],
    settings: H26xSettings,
    width: int,
    height: int,
    fps: Fraction = Fraction(25),
) -> list[bytes]:
    """Encode RGB frames; return the raw Annex-B packets in decoding order.

    The byte count of a stream is ``sum(len(p) for p in packets)``, exactly the
    bytes a decoder needs; nothing is added or estimated.
    """
    settings.validate(width, height)
    encoder_name, _ = CODECS[settings.codec]
    cc = av.CodecContext.create(encoder_name, "w")
    cc.width = width
    cc.height = height
    cc.pix_fmt = settings.pix_fmt
    cc.time_base = Fraction(1) / Fraction(fps)
    cc.framerate = Fraction(fps)
    if settings.gop is not None:
        cc.gop_size = settings.gop
    cc.thread_count = 1
    cc.color_range = 1  # MPEG (limited), signalled in the VUI
    cc.colorspace = 5  # BT.470BG / BT.601 matrix
    cc.options = settings.options()
    bsf = BitStreamFilterContext("filter_units=remove_types=6", "h264") if settings.codec == "x264" else None

    out: list[bytes] = []

    def emit(packets):
        for packet in packets:
            if bsf is None:
                out.append(bytes(packet))
            else:
                out.extend(bytes(p) for p in bsf.filter(packet))

    try:
        for index, rgb in enumerate(frames):
            frame = rgb_to_frame(rgb, settings.pix_fmt)
            frame.pts = index
            emit(cc.encode(frame))
        emit(cc.encode(None))
        if bsf is not None:
            out.extend(bytes(p) for p in bsf.filter(None))
    except av.FFmpegError as exc:  # pragma: no cover - encoder failure is an environment problem
        raise InputError(f"{encoder_name} failed: {exc}") from None
    return [p for p in out if p]


def decode_annexb(data: bytes, codec: str, max_pixels: int | None = None) -> Iterator[av.VideoFrame]:
    """Decode a raw Annex-B stream; yield frames in display order.

    Raises ``av.FFmpegError`` on corrupt data; callers turn it into their own
    error type (:class:`~nrff.errors.BitstreamError` for .nrff files).
    ``max_pixels`` makes FFmpeg refuse a picture larger than that before it
    allocates it (untrusted streams can declare up to 16384x16384).
    """
    _, decoder_name = CODECS[codec]
    cc = av.CodecContext.create(decoder_name, "r")
    cc.thread_count = 1
    if max_pixels is not None:
        cc.options = {"max_pixels": str(max_pixels)}
    for packet in list(cc.parse(data)) + list(cc.parse(None)):
        yield from cc.decode(packet)
    yield from cc.decode(None)
