"""Fitting the fields of many GOPs at once: the training loop.

All GOPs of a chunk are one batched model trained together: every step takes
``batch_frames`` non-key frames per GOP and a random 1/``stride`` of the rows
and of the columns (:mod:`~nrff.encoder.fit.sampler`), while the warps sample
the full-resolution references. The loss is the MSE of the clamped
reconstruction, key frames excluded, summed over GOPs (so each GOP's gradient
is that of its own mean loss); Adam with warm-up + cosine decay, gradient
clipping per GOP (:mod:`~nrff.encoder.fit.optim`); quantisation-aware
fine-tuning at the end (:mod:`~nrff.encoder.fit.qat`).

GOPs never interact: initialisation is seeded per GOP, random draws are made
for every GOP of the video and sliced, losses and clipping are per GOP. A GOP
therefore trains to the same weights whichever other GOPs share its batch,
which is what lets a long video be split over processes (``torchrun``) and
still give the bytes of a single-process run.

Nothing synchronises with the host inside a step; every ``log_every`` steps
the loss is read once for the progress bar and for the divergence guard
(:mod:`~nrff.encoder.fit.guard`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from nrff.config import TrainConfig
from nrff.decoder.render import FieldRenderer, render_chain
from nrff.encoder.fit.compiled import CompiledStep
from nrff.encoder.fit.guard import DivergenceGuard
from nrff.encoder.fit.optim import BatchedAdam, lr_factor
from nrff.encoder.fit.qat import QatSchedule
from nrff.encoder.fit.sampler import PixelSampler
from nrff.encoder.fit.state import TrainerState
from nrff.fields.models import FieldModel
from nrff.gop import Gop, time_coords
from nrff.methods.coordinate import CoordinateMethod


@dataclass
class GopData:
    """Frames and references of the GOPs trained together, on the training device."""

    gops: list[Gop]
    frames: torch.Tensor  # uint8 [G, Lmax, H, W, 3]
    keys: torch.Tensor | None  # float [G + 2, 3, H, W] extended key images (None without key frames)
    video_gops: int  # GOPs in the whole video: the random stream is drawn for all of them
    video_lmax: int  # longest GOP of the whole video

    @property
    def height(self) -> int:
        return self.frames.shape[2]

    @property
    def width(self) -> int:
        return self.frames.shape[3]


@dataclass
class TrainReport:
    steps: int = 0
    seconds: float = 0.0
    train_psnr: list[float] = field(default_factory=list)  # per GOP, last window
    recoveries: list[dict] = field(default_factory=list)  # divergence events


ProgressFn = Callable[[int, int, float], None]


class Trainer:
    def __init__(self, model: FieldModel, method: CoordinateMethod, data: GopData, cfg: TrainConfig, lr: float,
                 amp: bool, video_max_count: int | None = None, quant_bits: int | None = None,
                 quant_grid: str = "tensor"):
        """``video_max_count``: trainable frames of the longest GOP of the whole video, which
        fixes the batch and epoch length for every chunk (default: this chunk's).
        ``quant_bits``: fine-tune on the quantisation grid (``quant_grid``) from ``cfg.qat_start`` on."""
        self.model, self.method, self.data, self.cfg, self.lr = model, method, data, cfg, lr
        device = self.device = data.frames.device
        gops = data.gops
        self.G = len(gops)
        self.lmax = data.frames.shape[1]
        self.lengths = torch.tensor([g.length for g in gops], device=device)
        self.key_at = torch.tensor([g.key for g in gops], device=device)
        local = torch.arange(self.lmax, device=device)[None]
        trainable = local < self.lengths[:, None]
        if method.uses_keyframes:
            trainable &= local != self.key_at[:, None]
        counts = trainable.sum(1)
        self.active = (counts > 0).float()
        max_count = max(video_max_count or int(counts.max()), 1)
        batch = min(cfg.batch_frames, max_count)
        self.steps_per_epoch = math.ceil(2 * max_count / batch)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.amp = amp and device.type == "cuda" and method.mixed_precision
        self.sampler = PixelSampler(torch.tensor([g.index for g in gops], device=device), trainable, batch,
                                    data.height, data.width, cfg.pixel_stride, data.video_gops, data.video_lmax, cfg.seed)
        self.params = list(model.parameters())
        self.optimizer = BatchedAdam(self.params)
        self.guard = DivergenceGuard(self.params + self.optimizer.state(), self.active, cfg.guard)
        self.qat = QatSchedule(quant_bits, cfg.qat_start, self.total_steps, quant_grid)
        self.step = 0
        self.report = TrainReport()
        self.chain: torch.Tensor | None = None  # single reference: the rendered reference frames
        self.compiled = CompiledStep(self._networks, cfg.compile, device)
        self._run_started: float | None = None

    # --------------------------------------------------------------------- step
    def _loss(self, compiled: bool = True) -> torch.Tensor:
        """Per-GOP MSE of one step's draw (``compiled``: the networks through ``--compile``'s step, if any)."""
        frames, rows, cols = self.sampler.draw()
        g = torch.arange(self.G, device=self.device)
        target = self.data.frames[g[:, None, None, None], frames[:, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
        t = time_coords(frames, self.lengths)
        y, x = self.sampler.spatial_coords(rows, cols)
        raw = (self.compiled if compiled else self._networks)(t, y, x)
        sample = self.method.training_sampler(self, frames, cols.float(), rows.float())
        pred = self.method.reconstruct(raw, sample).clamp(0, 1)
        return (pred - target.float() / 255).pow(2).mean(dim=(1, 2, 3, 4))

    def _networks(self, t: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The fields' raw outputs on a grid of drawn coordinates: the part ``--compile`` fuses
        (the element-wise chain of the MLPs; warps and gathers stay eager)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(t, y, x)

    def refresh_chain(self) -> None:
        """Single reference: re-render the reference chain with the current weights."""
        renderer = FieldRenderer(self.model, self.method, self.data.gops, None, self.data.height, self.data.width)
        key_frames = self.data.frames[torch.arange(self.G, device=self.device), self.key_at]
        keys = key_frames.permute(0, 3, 1, 2).float() / 255 if self.data.keys is None else self.data.keys[1:-1]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            self.chain = render_chain(renderer, keys)

    def stride_at(self, step: int) -> int:
        """The pixel stride of a step (coarse to fine with ``fine_stride``)."""
        fine = self.cfg.fine_stride
        return fine if fine is not None and step >= int(self.cfg.fine_from * self.total_steps) else self.cfg.pixel_stride

    def train_step(self) -> None:
        if self.sampler.stride != self.stride_at(self.step):
            self.sampler.set_stride(self.stride_at(self.step))
        if self.qat.apply(self.model.nets, self.step):
            self.guard.rebaseline()
        self.method.prepare_step(self)
        if self.step == 0 and self.cfg.guard:
            self._start_guard()
        loss = self._loss()
        (loss * self.active).sum().backward()
        factor = lr_factor(self.step, self.total_steps, self.cfg.warmup, self.cfg.final_lr)
        self.optimizer.step(self.lr * factor, self.guard.lr_scale, max_norm=self.cfg.grad_clip,
                            clip_in_place=self.cfg.accumulate)
        if not self.cfg.accumulate or (self.step + 1) % self.steps_per_epoch == 0:
            self.optimizer.zero_grad()
        self.guard.add(loss)
        self.step += 1

    @torch.no_grad()
    def _start_guard(self) -> None:
        """The untrained field's PSNR over one epoch of draws (the random stream is left as it was)."""
        generator = self.sampler.generator
        saved = generator.get_state()
        mse = torch.zeros(self.G, device=self.device)
        for _ in range(self.steps_per_epoch):
            mse += self._loss(compiled=False)  # eager: no second compiled graph for one epoch without gradients
        generator.set_state(saved)
        self.guard.start(mse / self.steps_per_epoch)

    def check(self) -> torch.Tensor:
        """End a logging window: per-GOP training PSNR, diverged GOPs rolled back (see the guard)."""
        psnr = self.guard.check(self.params, self.data.gops, self.step, on_rollback=self.optimizer.zero_grad)
        self.report.recoveries = self.guard.recoveries
        return psnr

    # ---------------------------------------------------------------------- run
    def elapsed(self) -> float:
        """Training seconds so far (earlier sessions of a resumed run included)."""
        running = time.perf_counter() - self._run_started if self._run_started is not None else 0.0
        return self.report.seconds + running

    def run(self, progress: ProgressFn | None = None, on_window: Callable[[Trainer], None] | None = None) -> TrainReport:
        started = self._run_started = time.perf_counter()
        while self.step < self.total_steps:
            self.train_step()
            if self.step % self.cfg.log_every == 0 or self.step == self.total_steps:
                psnr = self.check()
                active = self.active.bool()
                self.report.train_psnr = psnr.tolist()
                mean = float(psnr[active].mean()) if bool(active.any()) else float("nan")
                if progress is not None:
                    progress(self.step, self.total_steps, mean)
                if on_window is not None:
                    on_window(self)
        self.report.steps = self.step
        self.report.seconds += time.perf_counter() - started
        self._run_started = None
        return self.report

    # ---------------------------------------------------------------- evaluate
    @torch.no_grad()
    def evaluate(self) -> float:
        """PSNR of every frame of the chunk rendered in full with the current weights
        (key frames as coded), for benchmarks: far more expensive than a step."""
        gops = self.data.gops
        H, W = self.data.height, self.data.width
        renderer = FieldRenderer(self.model, self.method, gops, self.data.keys, H, W)
        chain = self.method.reference_chain(renderer, self.data.keys[1:-1] if self.data.keys is not None else None)
        times = torch.tensor([[min(i, g.length - 1) for i in range(self.lmax)] for g in gops], dtype=torch.float32, device=self.device)
        frames = renderer.render(times, H, W, chain=chain)
        values = []
        for gi, g in enumerate(gops):
            for i in range(g.length):
                rendered = self.data.keys[gi + 1] if self.method.uses_keyframes and i == g.key else frames[gi, i]
                pred = (rendered.clamp(0, 1) * 255 + 0.5).floor()
                target = self.data.frames[gi, i].permute(2, 0, 1).float()
                mse = float(((pred - target) ** 2).mean()) / 255**2
                values.append(-10 * math.log10(max(mse, 1e-10)))
        return sum(values) / len(values)

    # --------------------------------------------------------------- checkpoint
    def state(self) -> TrainerState:
        """Everything needed to continue exactly where training stopped."""
        return TrainerState(
            step=self.step, adam_steps=self.optimizer.step_count,
            params=[p.detach() for p in self.params], exp_avg=list(self.optimizer.exp_avg),
            exp_avg_sq=list(self.optimizer.exp_avg_sq), snapshot=list(self.guard.snapshot),
            lr_scale=self.guard.lr_scale, best_psnr=self.guard.best_psnr, generator=self.sampler.generator.get_state(),
            recoveries=list(self.guard.recoveries), seconds=self.report.seconds,
        )

    @torch.no_grad()
    def load_state(self, state: TrainerState) -> None:
        for p, v in zip(self.params, state.params, strict=True):
            p.copy_(v)
        self.optimizer.load_state(state.exp_avg + state.exp_avg_sq, state.adam_steps)
        for s, v in zip(self.guard.snapshot, state.snapshot, strict=True):
            s.copy_(v)
        self.guard.lr_scale = state.lr_scale.to(self.device)
        self.guard.best_psnr = state.best_psnr.to(self.device)
        self.sampler.generator.set_state(state.generator)
        self.step = state.step
        self.guard.recoveries = list(state.recoveries)
        self.report.recoveries = self.guard.recoveries
        self.report.seconds = float(state.seconds)
