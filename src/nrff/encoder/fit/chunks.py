"""Fitting coordinate fields chunk by chunk: as many consecutive GOPs as the memory allows train
together, so a long video streams through in one pass and never sits in memory whole."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import torch

from nrff.decoder.render import reference_stack
from nrff.devices import memory_budget
from nrff.encoder.fit.job import FitJob, FitOutcome
from nrff.encoder.fit.trainer import GopData, Trainer
from nrff.fields.models import FieldModel
from nrff.gop import Gop, chunk_gops
from nrff.methods.base import FieldShape
from nrff.methods.coordinate import CoordinateMethod
from nrff.video.reader import VideoReader


def trainable_frames(method: CoordinateMethod, gops: Sequence[Gop]) -> int:
    """Frames the longest GOP of the video trains on (sets the batch and the epoch length)."""
    return max(g.length - (1 if method.uses_keyframes else 0) for g in gops)


def training_bytes(gop: Gop, height: int, width: int, units: int, shape: FieldShape, stride: int, batch: int) -> int:
    """Memory one GOP takes while its chunk trains: its frames (uint8), its key frame
    (float32), the method's extras (single reference: the reference chain), and a step's
    activations, which autograd keeps for the backward pass and which dominate for wide
    networks and large frames (1/64 of a 1080p frame is 32,400 points, times each hidden
    unit of each layer)."""
    frames = gop.length * height * width * 3
    keys = 3 * height * width * 4
    extra = shape.method.extra_training_bytes(gop, height, width)
    points = batch * -(-height // stride) * -(-width // stride)
    nets = len(shape.network_outputs())
    layers = 3 + 4 * shape.hidden_layers * shape.reuse  # saved tensors per unit: pre-activation, sigmoid, product, mask
    activations = points * (nets * units * layers + 40) * 4  # + warps, mixing, residual, loss
    return frames + keys + extra + 2 * activations  # gradients of the same size exist during backward


def chunk_frames(video: VideoReader, chunks: Sequence[Sequence[Gop]], todo: Sequence[int]) -> Iterator[tuple[int, torch.Tensor]]:
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


def fit_fields(job: FitJob, method: CoordinateMethod) -> FitOutcome:
    """Train every chunk of GOPs; a resumed checkpoint skips finished chunks and continues the
    chunk in progress from its saved state. ``job.save`` is called at most every
    ``job.checkpoint_seconds``."""
    config, gops, units, device = job.config, job.gops, job.units, job.device
    H, W = job.video.info.height, job.video.info.width
    mine = list(job.shard) if job.shard is not None else list(gops)
    batch = min(config.train.batch_frames, trainable_frames(method, gops))
    stride = min(config.train.pixel_stride, config.train.fine_stride or config.train.pixel_stride)
    per_gop = [training_bytes(g, H, W, units[g.index], job.shape, stride, batch) for g in mine]
    chunks = chunk_gops(mine, per_gop, memory_budget(device))
    resumed = job.resumed
    outcome = FitOutcome(dict(resumed.weights) if resumed else {}, 0.0, 0)
    todo = [i for i, c in enumerate(chunks) if any(units[g.index] > 0 and g.index not in outcome.weights for g in c)]
    for chunk_index, frames in chunk_frames(job.video, chunks, todo):
        chunk = chunks[chunk_index]
        trainer = _chunk_trainer(job, method, chunk, frames)
        if resumed is not None and resumed.chunk == chunk_index and resumed.trainer is not None:
            trainer.load_state(resumed.trainer)
        _train_chunk(job, method, trainer, chunk_index, len(chunks), outcome)
        for i, g in enumerate(chunk):
            if units[g.index] > 0:
                outcome.weights[g.index] = job.weight_codec.pack(trainer.model.export_gop(i))
        if job.save is not None and chunk_index != len(chunks) - 1:
            job.save(outcome.weights, chunk_index + 1, None)
        del frames, trainer
    return outcome


def _chunk_trainer(job: FitJob, method: CoordinateMethod, chunk: Sequence[Gop], frames: torch.Tensor) -> Trainer:
    config, gops = job.config, job.gops
    keys = None
    if method.uses_keyframes:
        keys = reference_stack(job.key_images, chunk[0].index, chunk[-1].index, len(gops), job.device)
    local_gops = [Gop(g.index, g.start, g.length, g.key) for g in chunk]
    data = GopData(local_gops, frames.to(job.device), keys, len(gops), max(g.length for g in gops))
    model = FieldModel(job.shape, [job.units[g.index] for g in chunk], [g.index for g in chunk], seed=config.train.seed,
                       zero_output=config.train.zero_output).to(job.device)
    return Trainer(model, method, data, config.train, config.lr, amp=config.train.amp,
                   video_max_count=trainable_frames(method, gops), quant_bits=config.field.quant_bits,
                   quant_grid=config.field.quant_grid)


def _train_chunk(job: FitJob, method: CoordinateMethod, trainer: Trainer, chunk_index: int, chunks: int,
                 outcome: FitOutcome) -> None:
    last_save = time.perf_counter()

    def on_window(tr: Trainer) -> None:
        nonlocal last_save
        due = time.perf_counter() - last_save >= job.checkpoint_seconds
        if job.save is not None and method.checkpoint_allowed(tr) and tr.step < tr.total_steps and due:
            job.save(outcome.weights, chunk_index, tr.state())
            last_save = time.perf_counter()
        if job.monitor is not None:
            job.monitor(tr)

    label = "training" if chunks == 1 else f"training {chunk_index + 1}/{chunks}"
    per_epoch = trainer.steps_per_epoch
    with job.reporter.task(label, trainer.total_steps / per_epoch, unit="epochs") as update:
        update(trainer.step / per_epoch)
        report = trainer.run(lambda step, total, psnr: update(step / per_epoch, psnr=psnr), on_window=on_window)
    outcome.seconds += report.seconds
    outcome.steps = trainer.total_steps
    outcome.recoveries += report.recoveries
