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
from nrff.decoder.budget import DecodeBudget, check_budget
from nrff.decoder.keycache import KeyframeCache
from nrff.decoder.render import FieldRenderer, frame_times, reference_stack, to_uint8
from nrff.decoder.stream import Stream, read_stream
from nrff.devices import memory_budget, resolve_device, resolve_precision
from nrff.errors import BitstreamError, InputError
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
        but the current chunk of GOPs). Running out of memory on a file's declarations is a
        BitstreamError, as any other defect of untrusted data."""
        return _memory_errors_as_bitstream_errors(self.stream.method.render(self))

    def parts(self, frame: float) -> dict[str, np.ndarray]:
        """What frame ``frame`` (a global time, possibly fractional) is made of, for figures."""
        if not 0 <= frame <= self.header.frames - 1:
            raise InputError(f"frame {frame} is outside 0..{self.header.frames - 1}")
        return self.stream.method.frame_parts(self, frame)


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text
                                              or "out of memory" in text)


def _memory_errors_as_bitstream_errors(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    try:
        yield from frames
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise BitstreamError(f"decoding the file needs more memory than this machine has ({detail})") from None


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
    budget: DecodeBudget | None = None,
) -> DecodedVideo:
    """Parse and validate a bitstream (bytes, or a path); frames are rendered lazily by ``.frames()``.

    ``size`` (W, H) or ``scale`` samples the fields at another resolution; ``fps_factor`` K
    renders K - 1 in-between frames per interval. ``precision``: ``fp32``, ``fp16`` or ``bf16``
    for the networks' hidden layers; ``auto`` is fp16 on CUDA (within 0.01 dB of fp32, see
    docs/performance.md) and fp32 on the CPU. The encoder measures with the same default, so a
    decoder on the same device reproduces its figures exactly.

    ``budget`` (:class:`~nrff.decoder.budget.DecodeBudget`; None: the default) limits the
    networks and the total work a file may declare, checked before anything is decoded;
    ``DecodeBudget.unlimited()`` lifts it for research files.
    """
    stream = read_stream(as_bytes(source))
    header = stream.header
    if not 1 <= fps_factor <= MAX_FPS_FACTOR:
        raise InputError(f"--fps-factor must be in 1..{MAX_FPS_FACTOR} (got {fps_factor})")
    width, height = output_size(header, size, scale)
    count = (header.frames - 1) * fps_factor + 1
    check_budget(stream, width, height, fps_factor, budget)
    dev = resolve_device(device)
    half = resolve_precision(precision, dev)
    return DecodedVideo(stream, width, height, header.fps * fps_factor, count, fps_factor, dev, half)


# ----------------------------------------------------------------------------- coordinate fields


def chunk_renderer(video: DecodedVideo, method: CoordinateMethod, chunk: Sequence[Gop], key_image: KeyframeCache,
                   chain: bool = True):
    """Model, references and (single reference, unless ``chain`` is False) chain of a run of consecutive GOPs."""
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
    return renderer, own_keys, method.reference_chain(renderer, own_keys) if chain else None


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
    budget = min(memory_budget(device), RENDER_CHUNK_BYTES)
    for chunk in chunk_gops(gops, per_gop, budget):
        if len(chunk) == 1 and per_gop[chunk[0].index] > budget:  # a GOP too large to hold: frame by frame
            yield from _stream_gop(video, method, chunk[0], times.get(chunk[0].index, []), key_image)
            continue
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


# ----------------------------------------------------------------------------- GOPs too large to hold


STREAM_BATCH_BYTES = 64 * 1024**2  # output frames rendered at once by the frame-by-frame path


def _batch_frames(video: DecodedVideo) -> int:
    return max(1, STREAM_BATCH_BYTES // max(video.height * video.width * 12, 1))


def _stream_gop(video: DecodedVideo, method: CoordinateMethod, gop: Gop, times: Sequence[float],
                key_image: KeyframeCache) -> Iterator[np.ndarray]:
    """The output frames of one GOP whose frames do not fit the render budget, in order, holding a
    few frames at a time (single reference: the chain's two fronts and O(sqrt(length)) checkpoints)."""
    renderer, own_keys, _ = chunk_renderer(video, method, [gop], key_image, chain=False)
    local = sorted(tau - gop.start for tau in times)
    if method.chain_frames(gop.length):
        yield from _stream_chain(video, renderer, own_keys, gop, local, key_image)
        return
    batch = _batch_frames(video)
    for b0 in range(0, len(local), batch):
        cols = local[b0 : b0 + batch]
        todo = [t for t in cols if not (method.uses_keyframes and t == gop.key)]
        rendered = {}
        if todo:
            out = renderer.render(torch.tensor([todo], dtype=torch.float32, device=video.device), video.height, video.width)
            rendered = dict(zip(todo, to_uint8(out[0]).cpu().numpy()))
        for t in cols:
            yield rendered[t] if t in rendered else _key_output(video, own_keys, gop, key_image)


def _key_output(video: DecodedVideo, own_keys, gop: Gop, key_image: KeyframeCache) -> np.ndarray:
    if (video.height, video.width) == (video.header.height, video.header.width):
        return key_image(gop.index)
    return to_uint8(resize_bicubic(own_keys[0:1], video.height, video.width))[0].cpu().numpy()


def _stream_chain(video: DecodedVideo, renderer: FieldRenderer, own_keys, gop: Gop, local: Sequence[float],
                  key_image: KeyframeCache) -> Iterator[np.ndarray]:
    """Single reference, frame by frame. Step d renders frames key - d and key + d from the two
    fronts key -+ (d - 1), exactly as :func:`~nrff.decoder.render.render_chain` does; an output
    time before the key is rendered at the step whose before-front is its neighbour (floor(t) + 1),
    one after it at the step whose after-front is (ceil(t) - 1). Times after the key come out in
    the order they are computed; those before it are needed in the reverse order, so a first pass
    keeps the fronts of every s-th step and each run of s steps is recomputed (identically) from
    its checkpoint, latest run first, with s ~ sqrt(key) so both lists stay short."""
    from nrff.methods.nrff_single import Fronts

    H, W = renderer.height, renderer.width
    key, length = gop.key, gop.length
    native = (video.height, video.width) == (H, W)
    device = video.device
    reach = max(key, length - 1 - key)

    def step(fronts: torch.Tensor, d: int) -> torch.Tensor:
        times = torch.tensor([[max(key - d, 0), min(key + d, length - 1)]], dtype=torch.float32, device=device)
        frames = renderer.render(times, H, W, chain=Fronts(fronts))
        new = fronts.clone()
        if key - d >= 0:
            new[0, 0] = frames[0, 0]
        if key + d < length:
            new[0, 1] = frames[0, 1]
        return new

    def outputs(fronts: torch.Tensor, d: int, before: bool) -> list[tuple[float, np.ndarray]]:
        """Outputs of step d on one side: the native frame itself, and times warping a front."""
        if before:
            wanted = [t for t in local if t < key and math.floor(t) + 1 == key - (d - 1)]
        else:
            wanted = [t for t in local if t > key and math.ceil(t) - 1 == key + (d - 1)]
        out = []
        if native:
            exact = [t for t in wanted if t == int(t)]
            wanted = [t for t in wanted if t != int(t)]
        else:
            exact = []
        if wanted:
            rendered = renderer.render(torch.tensor([wanted], dtype=torch.float32, device=device), video.height,
                                       video.width, chain=Fronts(fronts))
            out += list(zip(wanted, to_uint8(rendered[0]).cpu().numpy()))
        return out + [(t, None) for t in exact]

    start = torch.stack([own_keys[0], own_keys[0]])[None]  # [1, 2, 3, H, W]: before- and after-front
    if key > 0 and any(t < key for t in local):
        every = max(1, math.isqrt(key))
        checkpoints = {0: start}  # d -> the fronts after step d
        fronts = start
        for d in range(1, key):
            fronts = step(fronts, d)
            if d % every == 0:
                checkpoints[d] = fronts
        for d0 in sorted(checkpoints, reverse=True):  # runs d0 + 1 .. d0 + every, the latest (earliest frames) first
            fronts = checkpoints[d0]
            run = []
            for d in range(d0 + 1, min(d0 + every, key) + 1):
                new = step(fronts, d)
                for t, frame in outputs(fronts, d, before=True):
                    run.append((t, frame if frame is not None else to_uint8(new[0, 0]).cpu().numpy()))
                fronts = new
            yield from (frame for _, frame in sorted(run, key=lambda x: x[0]))
    if key in local:
        yield _key_output(video, own_keys, gop, key_image)
    fronts = start
    for d in range(1, reach + 1):
        if not any(t > key and math.ceil(t) - 1 >= key + (d - 1) for t in local):
            break
        new = step(fronts, d)
        done = outputs(fronts, d, before=False)
        yield from (frame if frame is not None else to_uint8(new[0, 1]).cpu().numpy() for _, frame in sorted(done, key=lambda x: x[0]))
        fronts = new
