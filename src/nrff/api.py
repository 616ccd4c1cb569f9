"""The public Python API: ``encode``, ``decode``, ``info``.

``encode`` codes the key frames, sizes and trains the networks of all GOPs
(batched, chunk by chunk so that long videos stream), writes the bitstream
atomically, then decodes *that file's bytes* with the decoder's own code and
measures the result: the reported PSNR is what any decoder on the same device
reproduces.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from nrff import __version__
from nrff.codec.bitstream import INTRA, PREDICTED, Bitstream, GopEntry, Header, SectionInfo, read_bitstream
from nrff.codec.keyframes import H26xIntra, decode_intra, decode_keyframe_segment, encode_keyframe_segments
from nrff.codec.weights import FP16, QUANTIZED, pack_fp16, pack_quantized, quantized_side_bytes, unpack_fp16, unpack_quantized
from nrff.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from nrff.config import EncodeConfig
from nrff.distributed import Distributed
from nrff.errors import BitstreamError, InputError, NrffWarning
from nrff.fields.encoding import PositionalEncoding
from nrff.fields.models import FieldModel, FieldShape, get_method
from nrff.fields.nerv import Nerv, NervLayout, channels_for_bytes, frame_time
from nrff.nerv_train import train_nerv
from nrff.fsutil import atomic_write_bytes, check_output
from nrff.gop import Gop, gops_from_lengths, split_gops
from nrff.metrics import QualityAccumulator, bpp
from nrff.progress import Reporter
from nrff.render import FieldRenderer, frame_times, render_chain, to_uint8
from nrff.train import GopData, Trainer
from nrff.video.reader import FrameRange, VideoReader, check_dimensions, open_video
from nrff.warp import resize_bicubic

# ----------------------------------------------------------------------------- devices


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was requested but no CUDA device is available")
    return torch.device(name)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def _memory_budget(device: torch.device) -> int:
    """Bytes the frames and activations of one training/decoding chunk may take."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return 3 * 1024**3


def plan_chunks(gops: Sequence[Gop], per_gop_bytes: Sequence[int], budget: int) -> list[list[Gop]]:
    """Consecutive groups of GOPs whose memory estimate fits ``budget`` (at least one GOP each)."""
    chunks: list[list[Gop]] = []
    current: list[Gop] = []
    used = 0
    for gop, need in zip(gops, per_gop_bytes):
        if current and used + need > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(gop)
        used += need
    if current:
        chunks.append(current)
    return chunks


# ----------------------------------------------------------------------------- encode


@dataclass
class EncodeResult:
    """What ``encode`` measured; ``report()`` is the JSON of ``--report``."""

    path: str
    bytes: int
    bpp: float
    psnr: float | None  # None only with verify=False
    ssim: float | None
    ms_ssim: float | None
    frames: int
    width: int
    height: int
    fps: float
    encode_seconds: float
    train_seconds: float
    verify_seconds: float
    method: str
    split: bool
    gop: int
    preset: str
    epochs: int
    steps: int
    device: str
    seed: int
    ratio: float | None
    target_bpp: float | None
    keyframes: dict | None
    version: str = __version__
    gops: list[dict] = field(default_factory=list)
    sections: list[dict] = field(default_factory=list)
    recoveries: list[dict] = field(default_factory=list)
    psnr_per_frame: list[float] = field(default_factory=list)

    def report(self) -> dict:
        return asdict(self)


def _keyframe_codec(config: EncodeConfig) -> H26xIntra:
    k = config.keyframes
    return H26xIntra(codec=k.codec, crf=k.crf, pix_fmt=k.pix_fmt, preset=k.preset)


def network_size_model(config: EncodeConfig, shape: FieldShape):
    """Expected stored bytes of one GOP's networks at a width (exact for fp16, an estimate
    for entropy-coded weights: the side information plus ``size_bits`` per parameter)."""
    per_param = config.field.bytes_per_param
    if config.field.quant_bits is None:
        return lambda w: shape.param_count(w) * per_param
    return lambda w: 0 if w == 0 else quantized_side_bytes(shape.shapes(w)) + shape.param_count(w) * per_param


def _fill_widths(size_of, shares: list[float], budget: float, minimum: int = 1) -> list[int]:
    """Largest widths within each share, then grow one unit at a time while the total
    stays within ``budget``, so the file lands just under its target."""
    widths = []
    for share in shares:
        w = minimum
        while size_of(w + 1) <= share:
            w += 1
        widths.append(w)
    total = sum(size_of(w) for w in widths)
    grew = True
    while grew:
        grew = False
        for i in range(len(widths)):
            extra = size_of(widths[i] + 1) - size_of(widths[i])
            if total + extra <= budget:
                widths[i] += 1
                total += extra
                grew = True
    return widths


def probe_difficulty(video: VideoReader, gops: Sequence[Gop]) -> dict[int, float]:
    """How much each GOP's networks must explain, from one pass over the video: the mean
    squared error of its non-key frames against the closer of their two reference key
    frames (uncoded). Motion and occlusion raise it; a static GOP has almost none."""
    keys = _read_keyframes(video, gops)
    gop_of = {f: g for g in gops for f in range(g.start, g.stop)}
    total: dict[int, float] = {g.index: 0.0 for g in gops}
    count: dict[int, int] = {g.index: 0 for g in gops}
    last = len(gops) - 1
    for index, frame in enumerate(video):
        g = gop_of[index]
        if index == g.key_frame:
            continue
        neighbour = g.index - 1 if index < g.key_frame else g.index + 1
        neighbour = min(max(neighbour, 0), last)
        errors = [np.mean((frame.astype(np.float32) - keys[k].astype(np.float32)) ** 2) for k in {g.index, neighbour}]
        total[g.index] += float(min(errors))
        count[g.index] += 1
    return {g: total[g] / count[g] if count[g] else 0.0 for g in total}


def probe_weights(difficulty: dict[int, float], exponent: float = 0.5, spread: float = 4.0) -> dict[int, float]:
    """Per-GOP multipliers of the network budget, ``(d / mean d) ^ exponent`` clipped to
    [1/spread, spread]; the caller renormalises so that the total budget is unchanged."""
    values = [d for d in difficulty.values() if d > 0]
    if not values:
        return {g: 1.0 for g in difficulty}
    mean = float(np.mean(values))
    return {g: float(np.clip((max(d, 1e-6) / mean) ** exponent, 1 / spread, spread)) for g, d in difficulty.items()}


def network_widths(
    config: EncodeConfig, shape: FieldShape, gops: Sequence[Gop], key_bytes: dict[int, int], info_pixels: int, frames: int,
    difficulty: dict[int, float] | None = None,
) -> list[int]:
    """Per-GOP network width.

    * key-frame methods: stored network bytes ~ ``ratio`` x the GOP's key-frame bytes
      (the paper's rule, even widths); with ``target_bpp``, the bytes left after the
      key frames and the container, shared in proportion to the key-frame bytes;
    * SIREN: the ``target_bpp`` budget shared in proportion to the GOP lengths.

    With a ``difficulty`` probe (``ratio_mode = "probe"``), each GOP's share is also
    scaled by :func:`probe_weights`, keeping the total the same.
    """
    spec = shape.spec
    size_of = network_size_model(config, shape)
    target = config.field.target_bpp
    if spec.kind == "nerv":
        budget = target * frames * info_pixels / 8 - container_bytes(config, 1)
        if budget < size_of(4):
            raise InputError(f"--target-bpp {target:g} leaves no room for the smallest NeRV ({size_of(4)} bytes)")
        return [channels_for_bytes(shape.height, shape.width, budget, lambda layout: size_of(layout.channels))]
    trained = [g for g in gops if g.length > 1 or not spec.uses_keyframes]
    scale = {g.index: 1.0 for g in trained}
    if difficulty is not None and spec.uses_keyframes and trained:
        raw = probe_weights({g.index: difficulty[g.index] for g in trained})
        norm = sum(key_bytes[g.index] for g in trained) / sum(key_bytes[g.index] * raw[g.index] for g in trained)
        scale = {g: w * norm for g, w in raw.items()}
    if spec.uses_keyframes and target is None:
        per_param = config.field.bytes_per_param
        widths = {}
        for gop in trained:
            budget = config.field.ratio * key_bytes[gop.index] * scale[gop.index]
            widths[gop.index] = shape.width_for_bytes(budget, per_param) if config.field.quant_bits is None else \
                min(range(2, 1025, 2), key=lambda w: abs(size_of(w) - budget))
        return [widths.get(g.index, 0) for g in gops]
    total = target * frames * info_pixels / 8 - container_bytes(config, len(gops))
    if spec.uses_keyframes:
        total -= sum(key_bytes.values())
        weight = {g.index: key_bytes[g.index] * scale[g.index] for g in trained}
    else:
        weight = {g.index: g.length for g in trained}
    if not trained:
        return [0] * len(gops)
    if total < size_of(2) * len(trained):
        raise InputError(f"--target-bpp {target:g} leaves no room for networks")
    norm = sum(weight.values())
    fitted = _fill_widths(size_of, [total * weight[g.index] / norm for g in trained], total, minimum=2 if spec.uses_keyframes else 1)
    widths = dict(zip((g.index for g in trained), fitted))
    return [widths.get(g.index, 0) for g in gops]


def container_bytes(config: EncodeConfig, gops: int) -> int:
    """Bytes of the container itself: preamble, header, section framing."""
    from nrff.codec.bitstream import _CRC, _GOP, _HEAD, _SECTION

    section = _SECTION.size + _CRC.size
    total = 5 + section + _HEAD.size + gops * _GOP.size + section  # preamble, HEAD, END
    total += gops * (section + 4)  # NETW
    if get_method(config.field.method).uses_keyframes:
        if config.keyframes.mode == "intra":
            total += gops * (section + 4)
        else:
            total += -(-gops // config.keyframes.random_access) * (section + 8)
    return total


@dataclass
class CodedKeyframes:
    """The key frames as coded: bytes (intra per GOP, or predicted segments), the
    decoded images the fields warp, and each GOP's share of the key-frame bytes."""

    intra: dict[int, bytes] = field(default_factory=dict)
    segments: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    images: dict[int, np.ndarray] = field(default_factory=dict)
    sizes: dict[int, int] = field(default_factory=dict)


def _code_keyframes(
    config: EncodeConfig, video: VideoReader, gops: Sequence[Gop], reporter: Reporter,
    originals: dict[int, np.ndarray] | None = None,
) -> CodedKeyframes:
    kf_codec = _keyframe_codec(config)
    info = video.info
    originals = originals if originals is not None else _read_keyframes(video, gops)
    out = CodedKeyframes()
    with reporter.task("key frames", len(gops)) as update:
        if config.keyframes.mode == "intra":
            for i, gop in enumerate(gops):
                data = kf_codec.encode(originals[gop.index])
                out.intra[gop.index] = data
                out.images[gop.index] = kf_codec.decode(data, info.width, info.height)
                out.sizes[gop.index] = len(data)
                update(i + 1)
        else:
            segments = encode_keyframe_segments([originals[g.index] for g in gops], kf_codec, config.keyframes.random_access)
            for seg in segments:
                out.segments[seg.first] = (seg.count, seg.data)
                decoded = decode_keyframe_segment(seg.data, kf_codec.codec, seg.count, info.width, info.height)
                for j, image in enumerate(decoded):
                    out.images[seg.first + j] = image
                    # networks are sized from the segment's mean, not the IDR's or a P picture's own bytes
                    out.sizes[seg.first + j] = round(len(seg.data) / seg.count)
                update(seg.first + seg.count)
    return out


def rate_control(
    config: EncodeConfig, video: VideoReader, gops: Sequence[Gop], reporter: Reporter
) -> tuple[EncodeConfig, CodedKeyframes]:
    """Choose the key-frame CRF for ``target_bpp``: the key frames take about
    1 / (1 + ratio) of the bytes (a secant search on log-bytes over CRF; x264 and
    x265 take fractional CRFs), and the networks are then sized to the exact
    remainder (see :func:`network_widths`)."""
    from dataclasses import replace

    info = video.info
    originals = _read_keyframes(video, gops)
    target = config.field.target_bpp * info.frames * info.pixels / 8 - container_bytes(config, len(gops))
    if target <= 0:
        raise InputError(f"--target-bpp {config.field.target_bpp:g} is too low: the container alone needs more")
    goal = target / (1 + config.field.ratio)
    quiet = Reporter(False)
    tried: dict[float, CodedKeyframes] = {}

    def cost(crf: float) -> float:
        crf = round(min(max(crf, 0.0), 51.0), 2)
        if crf not in tried:
            cfg = replace(config, keyframes=replace(config.keyframes, crf=crf))
            tried[crf] = _code_keyframes(cfg, video, gops, quiet, originals)
        return math.log(sum(tried[crf].sizes.values()) / goal)

    with reporter.task("rate control", 8) as update:
        a, b = config.keyframes.crf, config.keyframes.crf + 6
        fa, fb = cost(a), cost(b)
        for i in range(8):
            update(i + 1)
            if abs(fb) < 0.01 or fa == fb:
                break
            a, b, fa = b, round(min(max(b - fb * (b - a) / (fb - fa), 0.0), 51.0), 2), fb
            fb = cost(b)
        best = min(tried, key=lambda c: (abs(cost(c)), c))
    if sum(tried[best].sizes.values()) >= target:
        raise InputError(f"--target-bpp {config.field.target_bpp:g} is too low: the key frames alone need "
                         f"{8 * sum(tried[best].sizes.values()) / (info.frames * info.pixels):.4f} bpp")
    return replace(config, keyframes=replace(config.keyframes, crf=best)), tried[best]


def _read_keyframes(video: VideoReader, gops: Sequence[Gop]) -> dict[int, np.ndarray]:
    wanted = {g.key_frame: g.index for g in gops}
    found = {}
    for i, frame in enumerate(video):
        if i in wanted:
            found[wanted[i]] = frame
    return found


def _extended_keys(key_images: dict[int, np.ndarray], first: int, last: int, total: int, device) -> torch.Tensor:
    """Key images ``[prev of first, first .. last, next of last]`` as float [G + 2, 3, H, W]."""
    order = [first - 1 if first > 0 else first] + list(range(first, last + 1)) + [last + 1 if last < total - 1 else last]
    stack = np.stack([key_images[i] for i in order])
    return torch.from_numpy(stack).to(device).permute(0, 3, 1, 2).float().div_(255)


def encode(
    source: str | os.PathLike,
    output: str | os.PathLike,
    config: EncodeConfig | None = None,
    *,
    frames: FrameRange | str | None = None,
    size: tuple[int, int] | str | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
    resume: bool = False,
    checkpoint_seconds: float | None = 60.0,
    monitor=None,
    verify: bool = True,
) -> EncodeResult | None:
    """Encode a video into an ``.nrff`` file and measure it.

    Training state is checkpointed every ``checkpoint_seconds`` (``None``: never)
    to ``OUT.ckpt``; ``resume=True`` continues from it after a crash.
    Under ``torchrun`` every rank trains a shard of the GOPs; rank 0 writes the
    file and returns the result, the other ranks return None. ``monitor(trainer)``
    is called after every logging window (benchmarks use it to trace PSNR over time).
    ``verify=False`` skips decoding the file to measure it (quality fields are then None).
    """
    config = config or EncodeConfig()
    config.validate()
    reporter = reporter or Reporter(False)
    started = time.perf_counter()
    check_output(output, force)
    video = open_video(source, frames=frames, size=size)
    info = video.info
    if min(info.width, info.height) < 11:  # refused before any work, not after training
        raise InputError(f"{info.width}x{info.height} frames are too small: nrff encodes frames of at least 11x11 "
                         "pixels (the quality it reports includes SSIM, which needs an 11x11 window)")
    ckpt = checkpoint_path(output)
    fingerprint = {
        "config": json.loads(json.dumps(asdict(config))), "source": str(Path(source).resolve()),
        "frames": info.frames, "width": info.width, "height": info.height, "range": str(frames), "version": __version__,
    }
    spec = get_method(config.field.method)
    ranks = Distributed.from_env()
    device = ranks.device(config.device) if ranks else resolve_device(config.device)
    if ranks:
        ranks.start(device)
        checkpoint_seconds = None  # one checkpoint per rank is not supported yet
    resumed = None
    if resume:
        if ckpt.exists():
            resumed = load_checkpoint(ckpt, fingerprint, device)
        else:
            warnings.warn(f"no checkpoint {ckpt} to resume from; starting from the beginning", NrffWarning, stacklevel=2)
    elif ckpt.exists():
        if not force:
            raise InputError(f"{ckpt} exists: an earlier encode to {output} was interrupted; "
                             "pass --resume to continue it or --force to start over")
        ckpt.unlink()
    nerv = spec.kind == "nerv"
    gop_length = min(info.frames, 1000) if nerv else config.gop
    if nerv and info.frames > 1000:
        raise InputError("nerv holds one network per clip, for at most 1000 frames; use --frames")
    gops = split_gops(info.frames, gop_length)
    kf_codec = _keyframe_codec(config)
    if spec.uses_keyframes:
        kf_codec.validate(info.width, info.height)
    shape = FieldShape(
        spec.name, config.split, PositionalEncoding.for_sizes(gop_length, info.height, info.width),
        config.field.hidden_layers, config.field.reuse, info.height, info.width,
    )

    # 1. key frames; the decoder's view of them is what the fields warp
    if spec.uses_keyframes and config.field.target_bpp is not None:
        config, keys = rate_control(config, video, gops, reporter)
        kf_codec = _keyframe_codec(config)
    elif spec.uses_keyframes:
        keys = _code_keyframes(config, video, gops, reporter)
    else:
        keys = CodedKeyframes()
    key_images = keys.images

    # 2. network sizes from the budget
    difficulty = None
    if spec.uses_keyframes and config.field.ratio_mode == "probe":
        difficulty = probe_difficulty(video, gops)
    widths = network_widths(config, shape, gops, keys.sizes, info.pixels, info.frames, difficulty)
    header = Header(
        frames=info.frames, width=info.width, height=info.height, fps=Fraction(info.fps),
        method=spec.name, split=config.split, gop_length=gop_length,
        hidden_layers=config.field.hidden_layers, reuse=config.field.reuse, encoding=shape.encoding,
        weight_format=FP16 if config.field.quant_bits is None else QUANTIZED,
        quant_bits=config.field.quant_bits or 0,
        keyframe_codec=kf_codec.codec if spec.uses_keyframes else None,
        keyframe_pix_fmt=kf_codec.pix_fmt if spec.uses_keyframes else None,
        keyframe_crf=kf_codec.crf if spec.uses_keyframes else 0.0,
        keyframe_mode=PREDICTED if spec.uses_keyframes and config.keyframes.mode == "predicted" else INTRA,
        random_access=config.keyframes.random_access if config.keyframes.mode == "predicted" else 1,
        gops=tuple(GopEntry(g.length, g.key, w) for g, w in zip(gops, widths)),
    )

    # 3. train the networks, chunk by chunk of GOPs
    def save(weights: dict[int, bytes], chunk: int, trainer_state: dict | None) -> None:
        save_checkpoint(ckpt, fingerprint, weights, chunk, trainer_state)

    if nerv:
        weights, train_seconds, steps, recoveries = _train_nerv(config, video, widths[0], device, reporter)
    else:
        weights, train_seconds, steps, recoveries = _train_all(
            config, spec, shape, gops, widths, video, key_images, device, reporter,
            resumed=resumed, save=save if checkpoint_seconds is not None else None,
            checkpoint_seconds=checkpoint_seconds or 0.0, shard=ranks.shard(gops) if ranks else None,
            monitor=monitor,
        )
    if ranks:
        weights = ranks.gather_weights(weights)
        if not ranks.is_main:
            ranks.stop()
            return None

    # 4. the bitstream, written atomically
    stream = Bitstream(header, keys.intra, weights, keys.segments)
    data = stream.to_bytes()
    atomic_write_bytes(output, data, force=force or resumed is not None)
    if ckpt.exists():
        ckpt.unlink()
    encode_seconds = time.perf_counter() - started

    # 5. measure what a decoder gets from these bytes
    verify_started = time.perf_counter()
    acc = QualityAccumulator()
    quality = {"psnr": None, "ssim": None, "ms_ssim": None}
    if verify:
        decoded = decode(data, device=config.device, reporter=reporter)
        with reporter.task("verifying", info.frames) as update:
            for i, (ref, dist) in enumerate(zip(video, decoded.frames(), strict=True)):
                acc.add(ref, dist)
                update(i + 1)
        quality = acc.summary()
    verify_seconds = time.perf_counter() - verify_started

    gop_reports = []
    for gop, width in zip(gops, widths):
        per_frame = acc.psnr[gop.start : gop.stop]
        gop_reports.append({
            "index": gop.index, "start": gop.start, "frames": gop.length, "key": gop.key_frame,
            "keyframe_bytes": keys.sizes.get(gop.index, 0),
            "network_bytes": len(weights.get(gop.index, b"")),
            "width": width, "params": shape.param_count(width), "psnr": float(np.mean(per_frame)) if per_frame else None,
        })
    _, infos = read_bitstream(data)
    if ranks:
        ranks.stop()
    return EncodeResult(
        path=str(output), bytes=len(data), bpp=bpp(len(data), info.frames, info.width, info.height),
        psnr=quality["psnr"], ssim=quality["ssim"], ms_ssim=quality["ms_ssim"],
        frames=info.frames, width=info.width, height=info.height, fps=float(info.fps),
        encode_seconds=encode_seconds, train_seconds=train_seconds, verify_seconds=verify_seconds,
        method=spec.name, split=config.split, gop=gop_length, preset=config.preset,
        epochs=config.train.epochs, steps=steps, seed=config.train.seed,
        device=device_label(device) + (f" x {ranks.world} ranks" if ranks else ""),
        ratio=config.field.ratio if spec.uses_keyframes else None, target_bpp=config.field.target_bpp,
        keyframes=asdict(config.keyframes) if spec.uses_keyframes else None,
        gops=gop_reports, sections=[asdict(s) for s in infos], recoveries=recoveries,
        psnr_per_frame=list(acc.psnr),
    )


def _train_all(config, spec, shape, gops, widths, video, key_images, device, reporter, *, resumed=None, save=None,
               checkpoint_seconds: float = 60.0, shard: Sequence[Gop] | None = None, monitor=None):
    """Train every chunk of GOPs; returns (weights per GOP, seconds, steps per chunk, recoveries).

    ``resumed`` is a loaded checkpoint: finished chunks are skipped and the chunk
    in progress continues from its saved state. ``save(weights, chunk, state)``
    writes a checkpoint; it is called at most every ``checkpoint_seconds``.
    ``shard``: train only these GOPs (a torchrun rank's share).
    """
    H, W = video.info.height, video.info.width
    mine = list(shard) if shard is not None else list(gops)
    batch = min(config.train.batch_frames, _max_count(spec, gops))
    per_gop = [training_bytes(g, H, W, widths[g.index], spec, shape, config.train.pixel_stride, batch) for g in mine]
    chunks = plan_chunks(mine, per_gop, _memory_budget(device))
    lmax_video = max(g.length for g in gops)
    weights: dict[int, bytes] = dict(resumed["weights"]) if resumed else {}
    seconds, steps, recoveries = 0.0, 0, []
    todo = [i for i, c in enumerate(chunks) if any(widths[g.index] > 0 and g.index not in weights for g in c)]
    for chunk_index, frames in _chunk_frames(video, chunks, todo):
        chunk = chunks[chunk_index]
        chunk_widths = [widths[g.index] for g in chunk]
        keys = None
        if spec.uses_keyframes:
            keys = _extended_keys(key_images, chunk[0].index, chunk[-1].index, len(gops), device)
        local_gops = [Gop(g.index, g.start, g.length, g.key) for g in chunk]
        data = GopData(local_gops, frames.to(device), keys, len(gops), lmax_video)
        model = FieldModel(shape, chunk_widths, [g.index for g in chunk], seed=config.train.seed,
                           zero_output=config.train.zero_output).to(device)
        trainer = Trainer(model, spec, data, config.train, config.lr, amp=config.train.amp, video_max_count=_max_count(spec, gops),
                          quant_bits=config.field.quant_bits)
        if resumed is not None and resumed["chunk"] == chunk_index and resumed["trainer"] is not None:
            trainer.load_state(resumed["trainer"])
        last_save = time.perf_counter()

        def on_window(tr: Trainer, chunk_index: int = chunk_index) -> None:
            nonlocal last_save
            refresh_ok = spec.references != "single" or tr.step % config.train.refresh_every == 0
            if save is not None and refresh_ok and tr.step < tr.total_steps and time.perf_counter() - last_save >= checkpoint_seconds:
                save(weights, chunk_index, tr.state())
                last_save = time.perf_counter()
            if monitor is not None:
                monitor(tr)

        label = "training" if len(chunks) == 1 else f"training {chunk_index + 1}/{len(chunks)}"
        with reporter.task(label, trainer.total_steps) as update:
            update(trainer.step)
            report = trainer.run(lambda step, total, psnr: update(step, psnr=psnr), on_window=on_window)
        seconds += report.seconds
        steps = trainer.total_steps
        recoveries += report.recoveries
        for i, g in enumerate(chunk):
            if chunk_widths[i] > 0:
                tensors = model.export_gop(i)
                bits = config.field.quant_bits
                weights[g.index] = pack_fp16(tensors) if bits is None else pack_quantized(tensors, bits)
        if save is not None and chunk_index != len(chunks) - 1:
            save(weights, chunk_index + 1, None)
        del data, frames, model, trainer
    return weights, seconds, steps, recoveries


def _train_nerv(config: EncodeConfig, video: VideoReader, channels: int, device, reporter):
    """NeRV: one network for the clip, fitted on all frames (held as uint8 on the device)."""
    frames = torch.from_numpy(video.read_all()).to(device)
    model = Nerv(NervLayout(video.info.height, video.info.width, channels), seed=config.train.seed).to(device)
    with reporter.task("training nerv", config.train.epochs * len(frames)) as update:
        report = train_nerv(model, frames, config.train, config.lr, config.field.quant_bits,
                            lambda step, total, psnr: update(step, psnr=psnr))
    tensors = [t.detach().cpu() for t in model.tensors()]
    bits = config.field.quant_bits
    data = pack_fp16(tensors) if bits is None else pack_quantized(tensors, bits)
    return {0: data}, report["seconds"], report["steps"], []


def training_bytes(gop: Gop, height: int, width: int, net_width: int, spec, shape: FieldShape, stride: int, batch: int) -> int:
    """Memory one GOP takes while its chunk trains: its frames (uint8), its key frame
    (float32), the reference chain (single reference), and a step's activations, which
    autograd keeps for the backward pass and which dominate for wide networks and large
    frames (1/64 of a 1080p frame is 32,400 points, times each hidden unit of each layer)."""
    frames = gop.length * height * width * 3
    keys = 3 * height * width * 4
    chain = gop.length * 3 * height * width * 4 if spec.references == "single" else 0
    points = batch * -(-height // stride) * -(-width // stride)
    nets = len(shape.network_outputs())
    layers = 3 + 4 * shape.hidden_layers * shape.reuse  # saved tensors per unit: pre-activation, sigmoid, product, mask
    activations = points * (nets * net_width * layers + 40) * 4  # + warps, mixing, residual, loss
    return frames + keys + chain + 2 * activations  # gradients of the same size exist during backward


def _chunk_frames(video: VideoReader, chunks: Sequence[Sequence[Gop]], todo: Sequence[int]) -> Iterator[tuple[int, torch.Tensor]]:
    """One pass over the video: each chunk's frames as uint8 ``[G, Lmax, H, W, 3]``, filled frame
    by frame (no intermediate copies: a chunk costs its own size in memory, once)."""
    frames_in = iter(video)
    position = 0
    H, W = video.info.height, video.info.width
    for index in todo:
        chunk = chunks[index]
        while position < chunk[0].start:
            next(frames_in)
            position += 1
        out = torch.zeros(len(chunk), max(g.length for g in chunk), H, W, 3, dtype=torch.uint8)
        for i, g in enumerate(chunk):
            for j in range(g.length):
                out[i, j].numpy()[...] = next(frames_in)
                position += 1
        yield index, out


def _max_count(spec, gops: Sequence[Gop]) -> int:
    """Frames the longest GOP of the video trains on (sets the batch and the epoch length)."""
    return max(g.length - (1 if spec.uses_keyframes else 0) for g in gops)


# ----------------------------------------------------------------------------- decode


@dataclass
class DecodedVideo:
    """A decoded stream: its header, output geometry and a frame iterator."""

    stream: Bitstream
    sections: list[SectionInfo]
    width: int
    height: int
    fps: Fraction
    count: int
    fps_factor: int
    device: torch.device
    half: torch.dtype | None = None  # autocast dtype of the networks while rendering

    @property
    def header(self) -> Header:
        return self.stream.header

    def frames(self) -> Iterator[np.ndarray]:
        return _render_stream(self)


def load(path: str | os.PathLike) -> bytes:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if not p.is_file():
        raise InputError(f"{p}: not a file")
    return p.read_bytes()


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
    data: bytes,
    *,
    size: tuple[int, int] | None = None,
    scale: float | None = None,
    fps_factor: int = 1,
    device: str = "auto",
    reporter: Reporter | None = None,
    precision: str = "auto",
) -> DecodedVideo:
    """Parse and validate a bitstream; frames are rendered lazily by ``.frames()``.

    ``precision``: ``fp32``, ``fp16`` or ``bf16`` for the networks' hidden layers;
    ``auto`` is fp16 on CUDA (within 0.01 dB of fp32, see docs/performance.md) and
    fp32 on the CPU. The encoder measures with the same default, so a decoder on the
    same device reproduces its figures exactly.
    """
    stream, sections = read_bitstream(data)
    header = stream.header
    if not 1 <= fps_factor <= 64:
        raise InputError(f"--fps-factor must be in 1..64 (got {fps_factor})")
    width, height = output_size(header, size, scale)
    count = (header.frames - 1) * fps_factor + 1
    dev = resolve_device(device)
    half = resolve_precision(precision, dev)
    return DecodedVideo(stream, sections, width, height, header.fps * fps_factor, count, fps_factor, dev, half)


PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else None
    if name not in PRECISIONS:
        raise InputError(f"unknown precision {name!r}; use auto, fp32, fp16 or bf16")
    return PRECISIONS[name]


class KeyframeCache:
    """Decoded key frames of a stream, decoding predicted segments whole and keeping the last two."""

    def __init__(self, stream: Bitstream):
        self.stream = stream
        self.cache: dict[int, np.ndarray] = {}

    def __call__(self, g: int) -> np.ndarray:
        if g in self.cache:
            return self.cache[g]
        h = self.stream.header
        if h.keyframe_mode == INTRA:
            images = {g: decode_intra(self.stream.keyframes[g], h.keyframe_codec, h.width, h.height)}
        else:
            first = max(f for f in self.stream.segments if f <= g)
            count, data = self.stream.segments[first]
            decoded = decode_keyframe_segment(data, h.keyframe_codec, count, h.width, h.height)
            images = {first + j: image for j, image in enumerate(decoded)}
        if len(self.cache) > 2 * max(h.random_access, 2):
            for old in sorted(self.cache)[: len(self.cache) - max(h.random_access, 2)]:
                if old < g:
                    del self.cache[old]
        self.cache.update(images)
        return self.cache[g]


def gop_weights(stream: Bitstream, g: int) -> list[torch.Tensor]:
    """The tensors of GOP ``g``'s networks, as the file stores them."""
    h = stream.header
    shapes = h.field_shape.shapes(h.gops[g].width)
    if h.weight_format == QUANTIZED:
        return unpack_quantized(stream.weights[g], shapes, h.quant_bits)
    return unpack_fp16(stream.weights[g], shapes)


def _chunk_renderer(stream: Bitstream, gops: Sequence[Gop], chunk: Sequence[Gop], device, key_image, half=None):
    """Model, references and (single-reference) chain of a run of consecutive GOPs."""
    header = stream.header
    spec = get_method(header.method)
    widths = [header.gops[g.index].width for g in chunk]
    model = FieldModel(header.field_shape, widths).to(device)
    for i, g in enumerate(chunk):
        if widths[i] > 0:
            model.import_gop(i, gop_weights(stream, g.index))
    model.eval()
    keys = own_keys = None
    first, last = chunk[0].index, chunk[-1].index
    if spec.uses_keyframes:
        needed = range(max(first - 1, 0), min(last + 1, len(gops) - 1) + 1)
        keys = _extended_keys({g: key_image(g) for g in needed}, first, last, len(gops), device)
        own_keys = keys[1:-1]
    renderer = FieldRenderer(model, spec, list(chunk), keys, header.height, header.width, half)
    chain = render_chain(renderer, own_keys) if spec.references == "single" else None
    return renderer, own_keys, chain


def frame_parts(data: bytes, frame: float, *, size: tuple[int, int] | None = None, device: str = "auto") -> dict[str, np.ndarray]:
    """The parts a frame is made of (flows, warped references, mixing weight, residual, frame),
    each ``[H, W, k]`` float32, for figures and debugging. A key frame has only ``frame``."""
    stream, _ = read_bitstream(data)
    header = stream.header
    if not 0 <= frame <= header.frames - 1:
        raise InputError(f"frame {frame} is outside 0..{header.frames - 1}")
    dev = resolve_device(device)
    out_w, out_h = size or (header.width, header.height)
    gops = gops_from_lengths([g.length for g in header.gops], [g.key for g in header.gops])
    gop = next(g for g in gops if g.start <= math.floor(frame) < g.stop)
    local = frame - gop.start
    spec = get_method(header.method)
    if spec.kind == "nerv":
        decoded = decode(data, size=size, device=device)
        model_frames = _render_nerv_at(decoded, frame)
        return {"frame": model_frames}
    if spec.uses_keyframes and local == gop.key:
        key = torch.from_numpy(KeyframeCache(stream)(gop.index)).permute(2, 0, 1)[None].float() / 255
        return {"frame": resize_bicubic(key, out_h, out_w)[0].permute(1, 2, 0).numpy()}
    renderer, _, chain = _chunk_renderer(stream, gops, [gop], dev, KeyframeCache(stream))
    parts = renderer.render_parts(torch.tensor([[float(local)]], device=dev), out_h, out_w, chain=chain)
    return {name: value[0, 0].permute(1, 2, 0).cpu().numpy() for name, value in parts.items()}


def _render_nerv(video: DecodedVideo) -> Iterator[np.ndarray]:
    """NeRV samples time only: other sizes are bicubic resizes of the native frames."""
    h = video.header
    model = Nerv(NervLayout(h.height, h.width, h.gops[0].width)).to(video.device)
    model.load(gop_weights(video.stream, 0))
    model.eval()
    times = list(frame_times(h.frames, video.fps_factor))
    batch = max(1, int(128 * 1024**2 // (h.width * h.height * 3 * 4 * 8)))
    with torch.no_grad():
        for i in range(0, len(times), batch):
            t = torch.tensor([frame_time(tau, h.frames) for tau in times[i : i + batch]], device=video.device)
            with torch.autocast(video.device.type, dtype=video.half or torch.float32, enabled=video.half is not None):
                rendered = model(t).float()
            frames = resize_bicubic(rendered, video.height, video.width)
            yield from to_uint8(frames).cpu().numpy()


def _render_nerv_at(video: DecodedVideo, frame: float) -> np.ndarray:
    h = video.header
    model = Nerv(NervLayout(h.height, h.width, h.gops[0].width)).to(video.device)
    model.load(gop_weights(video.stream, 0))
    with torch.no_grad():
        out = resize_bicubic(model(torch.tensor([frame_time(frame, h.frames)], device=video.device)), video.height, video.width)
    return out[0].permute(1, 2, 0).cpu().numpy()


def _render_stream(video: DecodedVideo) -> Iterator[np.ndarray]:
    stream, header, device = video.stream, video.header, video.device
    spec = get_method(header.method)
    if spec.kind == "nerv":
        yield from _render_nerv(video)
        return
    gops = gops_from_lengths([g.length for g in header.gops], [g.key for g in header.gops])
    H, W = header.height, header.width
    out_h, out_w = video.height, video.width
    native = (out_h, out_w) == (H, W)
    times_by_gop: dict[int, list[float]] = {}
    gop_of_frame = np.repeat(np.arange(len(gops)), [g.length for g in gops])
    for tau in frame_times(header.frames, video.fps_factor):
        times_by_gop.setdefault(int(gop_of_frame[int(math.floor(tau))]), []).append(tau)
    per_gop = [
        len(times_by_gop.get(g.index, [])) * out_h * out_w * 3 * 4 + g.length * H * W * 3 * 4 * (2 if spec.references == "single" else 1)
        for g in gops
    ]
    chunks = plan_chunks(gops, per_gop, min(_memory_budget(device), 1024**3))
    key_image = KeyframeCache(stream)
    for chunk in chunks:
        renderer, own_keys, chain = _chunk_renderer(stream, gops, chunk, device, key_image, video.half)
        outputs: dict[float, np.ndarray] = {}
        local = [[tau - g.start for tau in times_by_gop.get(g.index, [])] for g in chunk]
        todo = [[t for t in ts if not (spec.uses_keyframes and t == g.key)] for ts, g in zip(local, chunk)]
        for i, g in enumerate(chunk):  # key frames are stored, not rendered
            if spec.uses_keyframes and g.key in local[i]:
                img = own_keys[i : i + 1]
                outputs[g.start + g.key] = to_uint8(resize_bicubic(img, out_h, out_w))[0].cpu().numpy() if not native else key_image(g.index)
            if chain is not None and native:  # single reference: the chain already holds native frames
                for t in [t for t in todo[i] if t == int(t)]:
                    outputs[g.start + t] = to_uint8(chain[i, int(t)]).cpu().numpy()
                todo[i] = [t for t in todo[i] if t != int(t)]
        batch = max(1, int(256 * 1024**2 // max(len(chunk) * out_h * out_w * 12, 1)))
        longest = max((len(t) for t in todo), default=0)
        for b0 in range(0, longest, batch):
            cols = [ts[b0 : b0 + batch] for ts in todo]
            width_b = max(len(c) for c in cols)
            padded = [c + [c[-1] if c else float(g.key)] * (width_b - len(c)) for c, g in zip(cols, chunk)]
            times = torch.tensor(padded, dtype=torch.float32, device=device)
            rendered = to_uint8(renderer.render(times, out_h, out_w, chain=chain)).cpu().numpy()
            for i, g in enumerate(chunk):
                for j, t in enumerate(cols[i]):
                    outputs[g.start + t] = rendered[i, j]
        for tau in sorted(outputs):
            yield outputs[tau]
        del renderer, chain, own_keys


# ----------------------------------------------------------------------------- info


def info(data: bytes) -> dict:
    """A description of a bitstream: header fields and its sections with their sizes."""
    stream, sections = read_bitstream(data)
    h = stream.header
    shape = h.field_shape
    key_total = sum(len(b) for b in stream.keyframes.values())
    net_total = sum(len(b) for b in stream.weights.values())
    return {
        "version": data[4],
        "bytes": len(data),
        "frames": h.frames,
        "width": h.width,
        "height": h.height,
        "fps": float(h.fps),
        "bpp": bpp(len(data), h.frames, h.width, h.height),
        "method": h.method,
        "split": h.split,
        "gop_length": h.gop_length,
        "gops": len(h.gops),
        "hidden_layers": h.hidden_layers,
        "reuse": h.reuse,
        "encoding_frequencies": list(h.encoding.counts),
        "keyframe_codec": h.keyframe_codec,
        "keyframe_pix_fmt": h.keyframe_pix_fmt,
        "keyframe_crf": h.keyframe_crf if h.keyframe_codec else None,
        "keyframe_bytes": key_total,
        "network_bytes": net_total,
        "overhead_bytes": len(data) - key_total - net_total,
        "gop_table": [
            {"index": i, "frames": g.length, "key": g.key, "width": g.width, "params": shape.param_count(g.width),
             "keyframe_bytes": len(stream.keyframes.get(i, b"")), "network_bytes": len(stream.weights.get(i, b""))}
            for i, g in enumerate(h.gops)
        ],
        "sections": [asdict(s) for s in sections],
    }


__all__ = ["DecodedVideo", "EncodeResult", "decode", "encode", "info", "load", "BitstreamError"]
