"""The encode pipeline: plan -> key frames -> sizes -> fit -> container -> verify.

``encode`` codes the key frames, sizes and trains the networks of all GOPs
(batched, chunk by chunk so that long videos stream), writes the bitstream
atomically, then decodes *that file's bytes* with the decoder's own code and
measures the result: the reported PSNR is what any decoder on the same device
reproduces.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import numpy as np

from nrff import __version__
from nrff.codec.container import INTRA, PREDICTED, Bitstream, GopEntry, Header, read_container
from nrff.codec.keyframes import keyframe_codec
from nrff.codec.weights import weight_codec_for
from nrff.config import EncodeConfig
from nrff.decoder.budget import DecodeBudget
from nrff.decoder.video import decode
from nrff.devices import device_label, resolve_device
from nrff.encoder.checkpoint import Checkpoint, checkpoint_path, load_checkpoint, save_checkpoint
from nrff.encoder.distributed import Distributed
from nrff.encoder.fit.job import FitJob, FitOutcome
from nrff.encoder.keyframes import CodedKeyframes, code_keyframes, settings_of
from nrff.encoder.plan import SizingInputs, measured_share, read_keyframes
from nrff.encoder.ratecontrol import rate_control
from nrff.encoder.result import EncodeResult
from nrff.errors import InputError, NrffWarning
from nrff.eval.metrics import QualityAccumulator, bpp
from nrff.fields.encoding import PositionalEncoding
from nrff.fsutil import atomic_write_bytes, check_output
from nrff.gop import Gop, split_gops
from nrff.outputs import OutputLock, check_distinct
from nrff.methods.base import FieldShape, Method
from nrff.progress import Reporter
from nrff.video.reader import FrameRange, VideoInfo, VideoReader, open_video

MIN_SIDE = 11  # SSIM's window


def encode(
    source: str | os.PathLike | np.ndarray,
    output: str | os.PathLike,
    config: EncodeConfig | None = None,
    *,
    frames: FrameRange | str | None = None,
    size: tuple[int, int] | str | None = None,
    fps: float | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
    resume: bool = False,
    checkpoint_seconds: float | None = 60.0,
    monitor=None,
    verify: bool = True,
) -> EncodeResult | None:
    """Encode ``source`` (a path: image folder, container, .y4m, .yuv with ``size``, ``-`` for stdin;
    or uint8 frames ``[N, H, W, 3]``) into an ``.nrff`` file; measure it; return an :class:`EncodeResult`.
    ``frames`` "START:END" (0-based, END exclusive); ``fps`` for images, arrays and .yuv (24/24/25);
    ``config``: ``EncodeConfig.from_preset("fast", crf=22)`` (default: the paper preset).
    Training state is checkpointed every ``checkpoint_seconds`` (``None``: never)
    to ``OUT.ckpt``; ``resume=True`` continues from it after a crash.
    Under ``torchrun`` every rank trains a shard of the GOPs; rank 0 writes the
    file and returns the result, the other ranks return None. ``monitor(trainer)``
    is called after every logging window (benchmarks use it to trace PSNR over time).
    ``verify=False`` skips decoding the file to measure it (quality fields are then None).
    """
    config = config or EncodeConfig()
    config.validate()
    ckpt = checkpoint_path(output)
    check_distinct({"input": source if isinstance(source, (str, os.PathLike)) else None},
                   {"output": output, "checkpoint": ckpt})
    check_output(output, force)  # exists / folder writable, before any work
    ranks = Distributed.from_env()
    # one encode at a time to an output (and its checkpoint); under torchrun rank 0 holds the lock
    with OutputLock(output) if ranks is None or ranks.is_main else nullcontext():
        return _encode(source, output, config, frames=frames, size=size, fps=fps, force=force, reporter=reporter,
                       resume=resume, checkpoint_seconds=checkpoint_seconds, monitor=monitor, verify=verify,
                       ranks=ranks)


def _encode(source, output, config: EncodeConfig, *, frames, size, fps, force: bool, reporter: Reporter | None,
            resume: bool, checkpoint_seconds: float | None, monitor, verify: bool,
            ranks: Distributed | None) -> EncodeResult | None:
    reporter = reporter or Reporter(False)
    started = time.perf_counter()
    check_output(output, force)
    video = open_video(source, frames=frames, size=size, fps=fps)
    info = video.info
    if min(info.width, info.height) < MIN_SIDE:  # refused before any work, not after training
        raise InputError(f"{info.width}x{info.height} frames are too small: nrff encodes frames of at least 11x11 "
                         "pixels (the quality it reports includes SSIM, which needs an 11x11 window)")
    method = config.method
    device = ranks.device(config.device) if ranks else resolve_device(config.device)
    if ranks:
        ranks.start(device)
        checkpoint_seconds = None  # one checkpoint per rank is not supported yet
    ckpt = checkpoint_path(output)
    fingerprint = _fingerprint(config, source, info, frames)
    resumed = _resume_policy(ckpt, output, fingerprint, device, resume, force)

    gop_length = method.gop_length(config.gop, info.frames)
    gops = split_gops(info.frames, gop_length)
    shape = FieldShape(method, config.split, PositionalEncoding.for_sizes(gop_length, info.height, info.width),
                       config.field.hidden_layers, config.field.reuse, info.height, info.width)
    config, difficulty = measured_share(config, method, video, gops)
    config, keys = _code_keyframes(config, method, video, gops, reporter)
    codec = weight_codec_for(config.field.quant_bits, config.field.quant_grid)
    units = method.plan_units(SizingInputs(config, shape, gops, keys.sizes, info.pixels, info.frames, codec, difficulty))
    header = _header(config, method, shape, info, gop_length, gops, units)

    failed: list[OSError] = []

    def save(weights: dict[int, bytes], chunk: int, state) -> None:
        if failed:  # a checkpoint could not be written: carry on without them
            return
        try:
            save_checkpoint(ckpt, fingerprint, weights, chunk, state)
        except OSError as exc:
            failed.append(exc)
            warnings.warn(f"cannot write the checkpoint {ckpt} ({exc.strerror or exc}); the encode carries on "
                          "without checkpoints", NrffWarning, stacklevel=2)

    outcome = method.fit(FitJob(
        config, shape, gops, units, video, keys.images, codec, device, reporter, resumed=resumed,
        save=save if checkpoint_seconds is not None else None, checkpoint_seconds=checkpoint_seconds or 0.0,
        shard=ranks.shard(gops) if ranks else None, monitor=monitor,
    ))
    if ranks:
        outcome.weights = ranks.gather_weights(outcome.weights)
        if not ranks.is_main:
            ranks.stop()
            return None

    data = Bitstream(header, keys.intra, outcome.weights, keys.segments).to_bytes()
    atomic_write_bytes(output, data, force=force or resumed is not None)
    if ckpt.exists() or ckpt.is_symlink():
        ckpt.unlink()
    encode_seconds = time.perf_counter() - started
    result = _measure(data, video, config, verify, reporter)
    if ranks:
        ranks.stop()
    return _result(output, data, header, config, method, gops, shape, keys, outcome, result, encode_seconds,
                   device_label(device) + (f" x {ranks.world} ranks" if ranks else ""))


def _fingerprint(config: EncodeConfig, source, info: VideoInfo, frames) -> dict:
    """What a checkpoint must match to be resumed: the settings, the input and this nrff."""
    named = str(Path(source).resolve()) if isinstance(source, (str, os.PathLike)) else "frames"
    return {"config": json.loads(json.dumps(asdict(config))), "source": named,
            "frames": info.frames, "width": info.width, "height": info.height, "range": str(frames), "version": __version__}


def _resume_policy(ckpt: Path, output, fingerprint: dict, device, resume: bool, force: bool) -> Checkpoint | None:
    if resume:
        if ckpt.exists():
            return load_checkpoint(ckpt, fingerprint, device)
        warnings.warn(f"no checkpoint {ckpt} to resume from; starting from the beginning", NrffWarning, stacklevel=3)
    elif ckpt.exists():
        if not force:
            raise InputError(f"{ckpt} exists: an earlier encode to {output} was interrupted; "
                             "pass --resume to continue it or --force to start over")
        ckpt.unlink()
    return None


def _code_keyframes(config: EncodeConfig, method: Method, video: VideoReader, gops: list[Gop],
                    reporter: Reporter) -> tuple[EncodeConfig, CodedKeyframes]:
    """The key frames as coded (with ``target_bpp``, at the CRF rate control chose)."""
    info = video.info
    reporter.detail(f"{info.frames} frames {info.width}x{info.height} at {float(info.fps):g} fps ({info.kind}); "
                    f"{method.name}, {len(gops)} GOPs of {', '.join(str(g.length) for g in gops)} frames")
    if not method.uses_keyframes:
        return config, CodedKeyframes()
    keyframe_codec(config.keyframes.codec).validate(settings_of(config.keyframes), info.width, info.height)
    originals = read_keyframes(video, gops)
    if config.field.target_bpp is not None:
        return rate_control(config, method, info, originals, gops, reporter)
    return config, code_keyframes(config.keyframes, originals, gops, info.width, info.height, reporter)


def _header(config: EncodeConfig, method: Method, shape: FieldShape, info: VideoInfo, gop_length: int, gops: list[Gop],
            units: list[int]) -> Header:
    k = config.keyframes
    uses = method.uses_keyframes
    codec = weight_codec_for(config.field.quant_bits, config.field.quant_grid)
    return Header(
        frames=info.frames, width=info.width, height=info.height, fps=Fraction(info.fps), method_id=method.id,
        split=config.split, gop_length=gop_length, hidden_layers=config.field.hidden_layers,
        reuse=config.field.reuse, frequencies=shape.encoding.counts, weight_format=codec.format_id, quant_bits=codec.bits,
        keyframe_codec=k.codec if uses else None, keyframe_pix_fmt=k.pix_fmt if uses else None,
        keyframe_crf=k.crf if uses else 0.0, keyframe_mode=PREDICTED if uses and k.mode == "predicted" else INTRA,
        random_access=k.random_access if k.mode == "predicted" else 1,
        gops=tuple(GopEntry(g.length, g.key, u) for g, u in zip(gops, units)),
    )


def _measure(data: bytes, video: VideoReader, config: EncodeConfig, verify: bool, reporter: Reporter) -> dict:
    """Decode the file's bytes and compare with the input (what a decoder reproduces)."""
    started = time.perf_counter()
    acc = QualityAccumulator()
    quality = {"psnr": None, "ssim": None, "ms_ssim": None}
    if verify:
        decoded = decode(data, device=config.device, budget=DecodeBudget.unlimited())  # our own file
        with reporter.task("verifying", video.info.frames, unit="frames") as update:
            for i, (ref, dist) in enumerate(zip(video, decoded.frames(), strict=True)):
                acc.add(ref, dist)
                update(i + 1)
        quality = acc.summary()
    return {"quality": quality, "psnr": list(acc.psnr), "seconds": time.perf_counter() - started}


def _result(output, data: bytes, header: Header, config: EncodeConfig, method: Method, gops: list[Gop], shape: FieldShape,
            keys: CodedKeyframes, outcome: FitOutcome, measured: dict, encode_seconds: float, device: str) -> EncodeResult:
    info = header
    units = [g.units for g in header.gops]
    per_frame = measured["psnr"]
    gop_reports = [{
        "index": g.index, "start": g.start, "frames": g.length, "key": g.key_frame,
        "keyframe_bytes": keys.sizes.get(g.index, 0), "network_bytes": len(outcome.weights.get(g.index, b"")),
        "units": u, "params": shape.param_count(u),
        "psnr": float(np.mean(per_frame[g.start : g.stop])) if per_frame[g.start : g.stop] else None,
    } for g, u in zip(gops, units)]
    _, infos = read_container(data)
    q = measured["quality"]
    return EncodeResult(
        path=str(output), bytes=len(data), bpp=bpp(len(data), info.frames, info.width, info.height),
        psnr=q["psnr"], ssim=q["ssim"], ms_ssim=q["ms_ssim"], frames=info.frames, width=info.width, height=info.height,
        fps=float(header.fps), encode_seconds=encode_seconds, train_seconds=outcome.seconds, verify_seconds=measured["seconds"],
        method=method.name, split=config.split, gop=header.gop_length, preset=config.preset,
        epochs=config.train.epochs, steps=outcome.steps, seed=config.train.seed, device=device,
        ratio=config.field.ratio if method.uses_keyframes else None, target_bpp=config.field.target_bpp,
        keyframes=asdict(config.keyframes) if method.uses_keyframes else None,
        gops=gop_reports, sections=[asdict(s) for s in infos], recoveries=outcome.recoveries, psnr_per_frame=per_frame,
    )
