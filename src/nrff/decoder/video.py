"""Decoding: a validated stream rendered at any (t, H, W), frame by frame, GOP chunk by GOP chunk."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from nrff.codec.container import Header, SectionInfo
from nrff.decoder.keycache import KeyframeCache
from nrff.decoder.render import FieldRenderer, frame_times, reference_stack, to_uint8
from nrff.decoder.stream import Stream, read_stream
from nrff.devices import memory_budget, resolve_device, resolve_precision
from nrff.errors import InputError
from nrff.fields.models import FieldModel
from nrff.gop import Gop, chunk_gops
from nrff.methods.coordinate import CoordinateMethod
from nrff.video.reader import check_dimensions
from nrff.warp import resize_bicubic

RENDER_CHUNK_BYTES = 1024**3  # output frames and references of one chunk of GOPs
MAX_FPS_FACTOR = 64


@dataclass
class DecodedVideo:
    """A decoded stream: its header, output geometry and a frame iterator (``frames()``)."""

    stream: Stream
    width: int  # output size
    height: int
    fps: Fraction
    count: int  # output frames
    fps_factor: int
    device: torch.device
    half: torch.dtype | None = None  # autocast dtype of the networks while rendering

    @property
    def header(self) -> Header:
        return self.stream.header

    @property
    def sections(self) -> list[SectionInfo]:
        return self.stream.sections

    def frames(self) -> Iterator[np.ndarray]:
        """Every output frame in order, uint8 ``[height, width, 3]``, rendered lazily (nothing is held
        but the current chunk of GOPs)."""
        return self.stream.method.render(self)

    def parts(self, frame: float) -> dict[str, np.ndarray]:
        """What frame ``frame`` (a global time, possibly fractional) is made of, for figures."""
        if not 0 <= frame <= self.header.frames - 1:
            raise InputError(f"frame {frame} is outside 0..{self.header.frames - 1}")
        return self.stream.method.frame_parts(self, frame)


def load(path: str | os.PathLike) -> bytes:
    """The bytes of a file, or a one-line InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if not p.is_file():
        raise InputError(f"{p}: not a file")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None


def as_bytes(source: bytes | bytearray | memoryview | str | os.PathLike) -> bytes:
    """A bitstream given as bytes or as the path of a file."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    return load(source)


def output_size(header: Header, size: tuple[int, int] | None, scale: float | None) -> tuple[int, int]:
    if size is not None and scale is not None:
        raise InputError("give either --size or --scale, not both")
    if scale is not None:
        if not 0 < scale <= 16:
            raise InputError(f"--scale must be in (0, 16] (got {scale:g})")
        size = (max(1, round(header.width * scale)), max(1, round(header.height * scale)))
    if size is None:
        return header.width, header.height
    check_dimensions(size[0], size[1], "output size")
    return size


def decode(
    source: bytes | str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    scale: float | None = None,
    fps_factor: int = 1,
    device: str = "auto",
    precision: str = "auto",
) -> DecodedVideo:
    """Parse and validate a bitstream (bytes, or a path); frames are rendered lazily by ``.frames()``.

    ``size`` (W, H) or ``scale`` samples the fields at another resolution; ``fps_factor`` K
    renders K - 1 in-between frames per interval. ``precision``: ``fp32``, ``fp16`` or ``bf16``
    for the networks' hidden layers; ``auto`` is fp16 on CUDA (within 0.01 dB of fp32, see
    docs/performance.md) and fp32 on the CPU. The encoder measures with the same default, so a
    decoder on the same device reproduces its figures exactly.
    """
    stream = read_stream(as_bytes(source))
    header = stream.header
    if not 1 <= fps_factor <= MAX_FPS_FACTOR:
        raise InputError(f"--fps-factor must be in 1..{MAX_FPS_FACTOR} (got {fps_factor})")
    width, height = output_size(header, size, scale)
    count = (header.frames - 1) * fps_factor + 1
    dev = resolve_device(device)
    half = resolve_precision(precision, dev)
    return DecodedVideo(stream, width, height, header.fps * fps_factor, count, fps_factor, dev, half)


# ----------------------------------------------------------------------------- coordinate fields


def chunk_renderer(video: DecodedVideo, method: CoordinateMethod, chunk: Sequence[Gop], key_image: KeyframeCache):
    """Model, references and (single reference) chain of a run of consecutive GOPs."""
    stream, header = video.stream, video.header
    units = [header.gops[g.index].units for g in chunk]
    model = FieldModel(stream.shape, units).to(video.device)
    for i, g in enumerate(chunk):
        if units[i] > 0:
            model.import_gop(i, stream.gop_weights(g.index))
    model.eval()
    keys = own_keys = None
    first, last, total = chunk[0].index, chunk[-1].index, len(header.gops)
    if method.uses_keyframes:
        needed = range(max(first - 1, 0), min(last + 1, total - 1) + 1)
        keys = reference_stack({g: key_image(g) for g in needed}, first, last, total, video.device)
        own_keys = keys[1:-1]
    renderer = FieldRenderer(model, method, list(chunk), keys, header.height, header.width, video.half)
    return renderer, own_keys, method.reference_chain(renderer, own_keys)


def _times_by_gop(video: DecodedVideo, gops: Sequence[Gop]) -> dict[int, list[float]]:
    """The output times of each GOP (an in-between time belongs to the GOP of the frame before it)."""
    out: dict[int, list[float]] = {}
    gop_of_frame = np.repeat(np.arange(len(gops)), [g.length for g in gops])
    for tau in frame_times(video.header.frames, video.fps_factor):
        out.setdefault(int(gop_of_frame[int(math.floor(tau))]), []).append(tau)
    return out


def render_fields(video: DecodedVideo, method: CoordinateMethod) -> Iterator[np.ndarray]:
    """Every output frame of a coordinate-field stream, chunk of GOPs by chunk."""
    header, device = video.header, video.device
    gops = video.stream.gops()
    H, W = header.height, header.width
    times = _times_by_gop(video, gops)
    per_gop = [len(times.get(g.index, [])) * video.height * video.width * 3 * 4 + g.length * H * W * 3 * 4
               + method.extra_render_bytes(g, H, W) for g in gops]
    key_image = KeyframeCache(video.stream)
    for chunk in chunk_gops(gops, per_gop, min(memory_budget(device), RENDER_CHUNK_BYTES)):
        outputs = _render_chunk(video, method, chunk, times, key_image)
        for tau in sorted(outputs):
            yield outputs[tau]


def _render_chunk(video: DecodedVideo, method: CoordinateMethod, chunk: Sequence[Gop], times: dict[int, list[float]],
                  key_image: KeyframeCache) -> dict[float, np.ndarray]:
    out_h, out_w = video.height, video.width
    native = (out_h, out_w) == (video.header.height, video.header.width)
    renderer, own_keys, chain = chunk_renderer(video, method, chunk, key_image)
    outputs: dict[float, np.ndarray] = {}
    local = [[tau - g.start for tau in times.get(g.index, [])] for g in chunk]
    todo = [[t for t in ts if not (method.uses_keyframes and t == g.key)] for ts, g in zip(local, chunk)]
    for i, g in enumerate(chunk):  # key frames are stored, not rendered
        if method.uses_keyframes and g.key in local[i]:
            img = own_keys[i : i + 1]
            outputs[g.start + g.key] = to_uint8(resize_bicubic(img, out_h, out_w))[0].cpu().numpy() if not native else key_image(g.index)
        if chain is not None and native:  # the chain already holds the native frames
            for t in [t for t in todo[i] if t == int(t)]:
                outputs[g.start + t] = to_uint8(chain[i, int(t)]).cpu().numpy()
            todo[i] = [t for t in todo[i] if t != int(t)]
    batch = max(1, int(256 * 1024**2 // max(len(chunk) * out_h * out_w * 12, 1)))
    longest = max((len(t) for t in todo), default=0)
    for b0 in range(0, longest, batch):
        cols = [ts[b0 : b0 + batch] for ts in todo]
        width_b = max(len(c) for c in cols)
        padded = [c + [c[-1] if c else float(g.key)] * (width_b - len(c)) for c, g in zip(cols, chunk)]
        local_times = torch.tensor(padded, dtype=torch.float32, device=video.device)
        rendered = to_uint8(renderer.render(local_times, out_h, out_w, chain=chain)).cpu().numpy()
        for i, g in enumerate(chunk):
            for j, t in enumerate(cols[i]):
                outputs[g.start + t] = rendered[i, j]
    return outputs
