"""RGB <-> YUV conversion with one fixed, documented convention.

All YUV data nrff writes or reads is BT.601, limited ("MPEG", 16-235) range,
converted by swscale with bicubic filtering, accurate rounding and full chroma
interpolation in both directions. PyAV's defaults (bilinear, no accurate
rounding) lose up to 4 dB on a plain RGB -> yuv420p -> RGB round trip; with
these flags the round trip of a Sintel frame is ~47.4 dB (yuv420p) and
~52.2 dB (yuv444p), which is the ceiling any YUV codec can reach when scored
on RGB.

Foreign videos tagged with another matrix or range (e.g. BT.709 HD content)
are read with their own tags; untagged YUV is taken as BT.601 limited.
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

SWS_FLAGS = (
    Interpolation.BICUBIC
    | Interpolation.ACCURATE_RND
    | Interpolation.FULL_CHR_H_INT
    | Interpolation.FULL_CHR_H_INP
)
MATRIX = Colorspace.ITU601
RANGE = ColorRange.MPEG

# Pixel formats a 4:2:0 / 4:4:4 encoder can take, and their chroma subsampling.
SUBSAMPLED = {"yuv420p": True, "yuv422p": True, "yuv444p": False}


def needs_even_size(pix_fmt: str) -> bool:
    return SUBSAMPLED.get(pix_fmt, False)


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """Wrap an HxWx3 uint8 RGB array as a VideoFrame in ``pix_fmt`` (BT.601 limited)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    if pix_fmt == "rgb24":
        return frame
    out = frame.reformat(
        format=pix_fmt,
        dst_colorspace=MATRIX,
        dst_color_range=RANGE,
        interpolation=SWS_FLAGS,
        threads=1,
    )
    out.colorspace = MATRIX
    out.color_range = RANGE
    return out


def frame_to_rgb(frame: av.VideoFrame, *, trust_tags: bool = True) -> np.ndarray:
    """Convert a decoded VideoFrame to HxWx3 uint8 RGB.

    ``trust_tags`` uses the frame's own colour matrix and range when it is tagged
    (foreign content); nrff's own streams are always BT.601 limited.
    """
    if frame.format.name == "rgb24":
        return frame.to_ndarray()
    src_space = MATRIX
    src_range = RANGE
    if trust_tags:
        if frame.colorspace in (Colorspace.ITU709, Colorspace.BT2020, Colorspace.SMPTE240M, Colorspace.FCC):
            src_space = frame.colorspace
        if frame.color_range == ColorRange.JPEG or frame.format.name.startswith("yuvj"):
            src_range = ColorRange.JPEG
    rgb = frame.reformat(
        format="rgb24",
        src_colorspace=src_space,
        src_color_range=src_range,
        interpolation=SWS_FLAGS,
        threads=1,
    )
    return rgb.to_ndarray()


def yuv420_planes_to_rgb(buf: bytes | np.ndarray, width: int, height: int) -> np.ndarray:
    """Convert one raw planar 8-bit 4:2:0 frame (I420) to RGB."""
    frame = av.VideoFrame(width, height, "yuv420p")
    data = np.frombuffer(buf, dtype=np.uint8)
    cw, ch = (width + 1) // 2, (height + 1) // 2
    y = data[: width * height].reshape(height, width)
    u = data[width * height : width * height + cw * ch].reshape(ch, cw)
    v = data[width * height + cw * ch :].reshape(ch, cw)
    for plane, arr in zip(frame.planes, (y, u, v)):
        rows = arr.shape[0]
        stride = plane.line_size
        padded = np.zeros((rows, stride), dtype=np.uint8)
        padded[:, : arr.shape[1]] = arr
        plane.update(padded.tobytes())
    return frame_to_rgb(frame, trust_tags=False)


def rgb_to_yuv420_planes(rgb: np.ndarray) -> bytes:
    """Convert one RGB frame to raw planar I420 bytes (even sizes only)."""
    height, width = rgb.shape[:2]
    frame = rgb_to_frame(rgb, "yuv420p")
    out = []
    for plane, (w, h) in zip(frame.planes, ((width, height), (width // 2, height // 2), (width // 2, height // 2))):
        arr = np.frombuffer(bytes(plane), dtype=np.uint8).reshape(-1, plane.line_size)[:h, :w]
        out.append(arr.tobytes())
    return b"".join(out)
