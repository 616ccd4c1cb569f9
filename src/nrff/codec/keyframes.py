"""Key-frame codecs: RGB pictures <-> raw codec bytes, chosen from a registry by name or header id.

A key-frame codec codes one picture alone (``encode_intra``: intra key frames,
one ``KEYF`` section per GOP) or a run of key frames as one predicted stream
that starts with a random-access picture (``encode_stream``: a ``KSEG``
section), and decodes untrusted bytes into exactly the pictures the header
declares (``decode``), refusing anything larger before it is allocated.

The default follows the published NRFF code: libx264, CRF 20, preset medium,
RGB coded as yuv444p (High 4:4:4 Intra); unlike that code, the size counted
is the raw stream, not an MP4 file. A new codec is one class registered in
:data:`KEYFRAME_CODECS` with a new one-byte id.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import av
import numpy as np

from nrff.codec import svtav1
from nrff.codec.h26x import H26xSettings, decode_annexb, encode_frames
from nrff.codec.paramsets import check_coded_size
from nrff.errors import BitstreamError, InputError
from nrff.video.colour import frame_to_rgb, needs_even_size

# One-byte pixel-format ids used in the bitstream header. Never renumber: files depend on them.
PIX_FMT_IDS = {"yuv444p": 1, "yuv420p": 2}


@dataclass(frozen=True)
class KeyframeSettings:
    """How a key-frame codec is driven (what the encoder chose; decoding needs none of it)."""

    crf: float = 20.0
    pix_fmt: str = "yuv444p"
    preset: str = "medium"
    tune: str | None = None  # x264/x265: e.g. "psnr"


class KeyframeCodec:
    """The protocol every key-frame codec implements."""

    name: str
    id: int  # bitstream id; never renumber
    default_pix_fmt: str = "yuv444p"
    default_preset: str = "medium"
    default_crf: float = 20.0
    crf_range: tuple[float, float] = (0.0, 51.0)
    crf_decimals: int = 2  # the CRF grid the encoder takes (rate control searches on it)

    def validate(self, settings: KeyframeSettings, width: int, height: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def encode_intra(self, rgb: np.ndarray, settings: KeyframeSettings) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def encode_stream(self, frames: Sequence[np.ndarray], settings: KeyframeSettings, interval: int) -> list[bytes]:  # pragma: no cover
        """One predicted stream of ``frames`` (the first a random-access picture, at most ``interval``
        pictures): one packet per picture."""
        raise NotImplementedError

    def decode(self, data: bytes, count: int, width: int, height: int, what: str = "key frame") -> list[np.ndarray]:
        """Exactly ``count`` RGB pictures of ``width`` x ``height`` from untrusted bytes, or a BitstreamError."""
        return list(self.iter_decode(data, count, width, height, what))

    def iter_decode(self, data: bytes, count: int, width: int, height: int, what: str = "key frame") -> Iterator[np.ndarray]:  # pragma: no cover
        """The pictures of :meth:`decode` one by one, decoded as they are asked for (a BitstreamError
        when the stream turns out to hold another number of pictures or another size)."""
        raise NotImplementedError


class H26xKeyframes(KeyframeCodec):
    """x264 or x265 through PyAV: deterministic (one thread), raw Annex-B bytes."""

    def __init__(self, name: str, id: int):
        self.name, self.id = name, id

    def settings(self, s: KeyframeSettings, gop: int | None = None) -> H26xSettings:
        return H26xSettings(codec=self.name, crf=s.crf, preset=s.preset, pix_fmt=s.pix_fmt, gop=gop, bframes=gop is None,
                            tune=s.tune)

    def validate(self, settings: KeyframeSettings, width: int, height: int) -> None:
        if needs_even_size(settings.pix_fmt) and (width % 2 or height % 2):  # name the encode option
            raise InputError(
                f"{width}x{height} has an odd side, which {settings.pix_fmt} key frames cannot code; "
                "use --keyframe-pix-fmt yuv444p (the default), or crop or pad to even sizes"
            )
        self.settings(settings).validate(width, height)

    def encode_intra(self, rgb: np.ndarray, settings: KeyframeSettings) -> bytes:
        height, width = rgb.shape[:2]
        return b"".join(encode_frames([rgb], self.settings(settings), width, height))

    def encode_stream(self, frames: Sequence[np.ndarray], settings: KeyframeSettings, interval: int) -> list[bytes]:
        height, width = frames[0].shape[:2]
        packets = encode_frames(frames, self.settings(settings, gop=max(interval, 2)), width, height)
        if len(packets) != len(frames):  # pragma: no cover - low-delay streams have one packet per picture
            raise RuntimeError("unexpected packetisation of the key-frame stream")
        return packets

    def iter_decode(self, data: bytes, count: int, width: int, height: int, what: str = "key frame") -> Iterator[np.ndarray]:
        """Every sequence parameter set is checked first: a coded picture size larger than the
        declared frame (plus block padding) is refused before FFmpeg allocates it, since FFmpeg's
        ``max_pixels`` applies to the cropped size only; that limit catches the rest. A single
        picture is decoded to the end (a second one is refused); a stream yields its pictures as
        FFmpeg outputs them and stops past ``count``."""
        if not data:
            raise BitstreamError(f"empty {what}")
        check_coded_size(data, self.name, width, height, what)
        too_many = "key frame holds at least 2 pictures instead of 1" if count == 1 else f"{what} holds more than {count} pictures"
        frames = decode_annexb(data, self.name, max_pixels=(width + 128) * (height + 128))
        for frame in _checked_pictures(frames, count, width, height, (width, height), self.name, what, too_many):
            yield frame_to_rgb(frame, trust_tags=False)


def _checked_pictures(frames: Iterator[av.VideoFrame], count: int, width: int, height: int, coded: tuple[int, int],
                      codec: str, what: str, too_many: str) -> Iterator[av.VideoFrame]:
    """The decoded pictures of a key frame or stream, each checked against the declared (coded) size
    and the declared count. A stream's pictures are given out as the decoder outputs them; a lone
    key frame is decoded to the end of its bytes first, so a second picture is refused."""
    held: list[av.VideoFrame] = []
    seen = 0
    while True:
        try:
            frame = next(frames, None)
        except (av.FFmpegError, ValueError) as exc:
            raise BitstreamError(f"{what} does not decode as {codec} at the declared {width}x{height}: {exc}") from None
        if frame is None:
            break
        seen += 1
        if seen > count:
            raise BitstreamError(too_many)
        if (frame.width, frame.height) != coded:
            raise BitstreamError(f"key frame is {frame.width}x{frame.height} but the header declares {width}x{height}")
        if count == 1:
            held.append(frame)
        else:
            yield frame
    if seen != count:
        raise BitstreamError(f"{what} holds {seen} pictures instead of {count}")
    yield from held


def _even(n: int) -> int:
    return n + n % 2


def _pad_even(rgb: np.ndarray) -> np.ndarray:
    """Repeat the last row / column so both sides are even (4:2:0 needs whole chroma samples)."""
    height, width = rgb.shape[:2]
    return np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


class Av1Keyframes(KeyframeCodec):
    """SVT-AV1 pictures decoded by dav1d: 8-bit 4:2:0, CRF 0-63 (whole numbers), preset 0-13.
    An odd side is coded one row / column larger (edge repeated) and cropped after decoding."""

    name, id = "av1", 3
    default_pix_fmt, default_preset, default_crf = "yuv420p", "4", 32.0
    crf_range, crf_decimals = (0.0, 63.0), 0

    def _settings(self, s: KeyframeSettings, gop: int) -> svtav1.Av1Settings:
        return svtav1.Av1Settings(crf=s.crf, preset=svtav1.parse_preset(s.preset), gop=gop)

    def validate(self, settings: KeyframeSettings, width: int, height: int) -> None:
        if settings.pix_fmt != "yuv420p":
            raise InputError(f"AV1 key frames are 4:2:0 only (SVT-AV1); use --keyframe-pix-fmt yuv420p, not {settings.pix_fmt}")
        if settings.tune is not None:
            raise InputError("--keyframe-tune applies to x264 and x265 key frames; SVT-AV1 is tuned for PSNR already")
        self._settings(settings, 1).validate(_even(width), _even(height))

    def encode_intra(self, rgb: np.ndarray, settings: KeyframeSettings) -> bytes:
        rgb = _pad_even(rgb)
        height, width = rgb.shape[:2]
        return b"".join(svtav1.encode_frames([rgb], self._settings(settings, 1), width, height))

    def encode_stream(self, frames: Sequence[np.ndarray], settings: KeyframeSettings, interval: int) -> list[bytes]:
        frames = [_pad_even(f) for f in frames]
        height, width = frames[0].shape[:2]
        packets = svtav1.encode_frames(frames, self._settings(settings, max(interval, 2)), width, height)
        if len(packets) != len(frames):  # pragma: no cover - SVT-AV1 emits one temporal unit per picture
            raise RuntimeError("unexpected packetisation of the AV1 key-frame stream")
        return packets

    def iter_decode(self, data: bytes, count: int, width: int, height: int, what: str = "key frame") -> Iterator[np.ndarray]:
        if not data:
            raise BitstreamError(f"empty {what}")
        coded_width, coded_height = _even(width), _even(height)
        frames = svtav1.decode_frames(data, coded_width, coded_height)
        too_many = f"{what} holds more than {count} pictures"
        for frame in _checked_pictures(frames, count, width, height, (coded_width, coded_height), "AV1", what, too_many):
            yield frame_to_rgb(frame, trust_tags=False)[:height, :width]


KEYFRAME_CODECS: dict[str, KeyframeCodec] = {
    c.name: c for c in (H26xKeyframes("x264", 1), H26xKeyframes("x265", 2), Av1Keyframes())
}
# One-byte ids used in the bitstream header. Never renumber: files depend on them.
KEYFRAME_CODEC_IDS = {name: codec.id for name, codec in KEYFRAME_CODECS.items()}


def keyframe_codec(name: str) -> KeyframeCodec:
    """The registered key-frame codec called ``name``."""
    if name not in KEYFRAME_CODECS:
        raise InputError(f"unknown key-frame codec {name!r}; choose one of {', '.join(KEYFRAME_CODECS)}")
    return KEYFRAME_CODECS[name]


def decode_keyframes(data: bytes, codec: str, count: int, width: int, height: int, what: str = "key frame") -> list[np.ndarray]:
    """Decode untrusted key-frame bytes of a file (the codec named by its header)."""
    if codec not in KEYFRAME_CODECS:
        raise BitstreamError(f"unknown key-frame codec {codec!r}")
    return KEYFRAME_CODECS[codec].decode(data, count, width, height, what)


def iter_keyframes(data: bytes, codec: str, count: int, width: int, height: int, what: str = "key frame") -> Iterator[np.ndarray]:
    """:func:`decode_keyframes` picture by picture (a predicted stream is never held whole)."""
    if codec not in KEYFRAME_CODECS:
        raise BitstreamError(f"unknown key-frame codec {codec!r}")
    return KEYFRAME_CODECS[codec].iter_decode(data, count, width, height, what)
