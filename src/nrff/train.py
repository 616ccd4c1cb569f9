"""Fitting the fields of many GOPs at once.

All GOPs of a chunk are one batched model trained together: every step takes
``batch_frames`` non-key frames per GOP and a random 1/``stride`` of the rows
and of the columns (1/64 of the pixels at stride 8), while the warps sample
the full-resolution references. The loss is the MSE of the clamped
reconstruction, key frames excluded, summed over GOPs (so each GOP's gradient
is that of its own mean loss); Adam with warm-up + cosine decay, gradient
clipping per GOP.

GOPs never interact: initialisation is seeded per GOP, random draws are made
for every GOP of the video and sliced, losses and clipping are per GOP. A GOP
therefore trains to the same weights whichever other GOPs share its batch,
which is what lets a long video be split over processes (``torchrun``) and
still give the bytes of a single-process run.

Nothing synchronises with the host inside a step; every ``log_every`` steps
the loss is read once for the progress bar and for the divergence guard,
which rolls a GOP whose loss became non-finite or collapsed back to its last
good state with half the learning rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from nrff.config import TrainConfig
from nrff.fields.models import FieldModel, Method, reconstruct
from nrff.gop import Gop
from nrff.optim import BatchedAdam, clip_grad_norm_per_gop, lr_factor
from nrff.render import FieldRenderer, multi_reference_roles, render_chain, slot_sampler

COLLAPSE_DB = 3.0  # a GOP whose training PSNR falls this far below its best is rolled back
FP16_MAX = 65504.0  # weights are stored as fp16: a GOP with a larger weight is rolled back too


@dataclass
class GopData:
    """Frames and references of the GOPs trained together, on the training device."""

    gops: list[Gop]
    frames: torch.Tensor  # uint8 [G, Lmax, H, W, 3]
    keys: torch.Tensor | None  # float [G + 2, 3, H, W] extended key images (None for siren)
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
    def __init__(
        self,
        model: FieldModel,
        method: Method,
        data: GopData,
        cfg: TrainConfig,
        lr: float,
        amp: bool,
        video_max_count: int | None = None,
        quant_bits: int | None = None,
    ):
        """``video_max_count``: trainable frames of the longest GOP of the whole video, which
        fixes the batch and epoch length for every chunk (default: this chunk's).
        ``quant_bits``: fine-tune on the quantisation grid from ``cfg.qat_start`` on."""
        self.model, self.method, self.data, self.cfg, self.lr = model, method, data, cfg, lr
        device = data.frames.device
        self.device = device
        gops = data.gops
        G = len(gops)
        self.G = G
        self.lmax = data.frames.shape[1]
        self.gop_index = torch.tensor([g.index for g in gops], device=device)
        self.lengths = torch.tensor([g.length for g in gops], device=device)
        self.key_at = torch.tensor([g.key for g in gops], device=device)
        local = torch.arange(self.lmax, device=device)[None]
        trainable = local < self.lengths[:, None]
        if method.uses_keyframes:
            trainable &= local != self.key_at[:, None]
        self.trainable = trainable
        self.counts = trainable.sum(1)
        self.active = (self.counts > 0).float()
        max_count = max(video_max_count or int(self.counts.max()), 1)
        self.batch = min(cfg.batch_frames, max_count)
        self.steps_per_epoch = math.ceil(2 * max_count / self.batch)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.rows = math.ceil(data.height / cfg.pixel_stride)
        self.cols = math.ceil(data.width / cfg.pixel_stride)
        self.amp = amp and device.type == "cuda" and method.kind != "siren"
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(cfg.seed)
        self.params = list(model.parameters())
        self.optimizer = BatchedAdam(self.params)
        self.lr_scale = torch.ones(G, device=device)
        self.best_psnr = torch.full((G,), -math.inf, device=device)
        self.snapshot = [p.detach().clone() for p in self.params + self.optimizer.state()]
        self.step = 0
        self.quant_bits = quant_bits
        self.qat_from = int(cfg.qat_start * self.total_steps) if quant_bits else None
        self.report = TrainReport()
        self.chain: torch.Tensor | None = None
        self._run_started: float | None = None
        self._window = torch.zeros(G, device=device)
        self._window_steps = 0

    # ----------------------------------------------------------------- sampling
    def _draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames ``[G, B]``, rows ``[G, R]`` and columns ``[G, C]`` for this step."""
        d = self.data
        gen = self.generator
        frame_scores = torch.rand(d.video_gops, d.video_lmax, generator=gen, device=self.device)
        row_scores = torch.rand(d.video_gops, d.height, generator=gen, device=self.device)
        col_scores = torch.rand(d.video_gops, d.width, generator=gen, device=self.device)
        scores = frame_scores[self.gop_index, : self.lmax].masked_fill(~self.trainable, 2.0)
        order = scores.argsort(dim=1)
        pick = torch.arange(self.batch, device=self.device)[None] % self.counts.clamp(min=1)[:, None]
        frames = order.gather(1, pick)
        rows = row_scores[self.gop_index].argsort(dim=1)[:, : self.rows].sort(dim=1).values
        cols = col_scores[self.gop_index].argsort(dim=1)[:, : self.cols].sort(dim=1).values
        return frames, rows, cols

    def _sampler(self, frames, base_x, base_y):
        if self.method.references == "none":
            return None
        before = frames < self.key_at[:, None]
        if self.method.references == "multi":
            images, slots, counts = multi_reference_roles(before, frames.shape[1])
            return slot_sampler(self.data.keys, base_x, base_y, images, slots, counts)
        ref = torch.where(before, frames + 1, frames - 1)
        g = torch.arange(self.G, device=self.device)[:, None]
        image = g * self.lmax + ref
        side = torch.where(before, 0, 1)
        chain = self.chain.reshape(-1, *self.chain.shape[2:])
        return slot_sampler(chain, base_x, base_y, [image], [side], [2])

    def _refresh_chain(self) -> None:
        """Single-reference: re-render the reference chain with the current weights."""
        renderer = FieldRenderer(self.model, self.method, self.data.gops, None, self.data.height, self.data.width)
        key_frames = self.data.frames[torch.arange(self.G, device=self.device), self.key_at]
        keys = key_frames.permute(0, 3, 1, 2).float() / 255 if self.data.keys is None else self.data.keys[1:-1]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            self.chain = render_chain(renderer, keys)

    # --------------------------------------------------------------------- step
    def _loss(self) -> torch.Tensor:
        frames, rows, cols = self._draw()
        t = 2 * frames.float() / (self.lengths[:, None] - 1).clamp(min=1).float() - 1
        t = torch.where(self.lengths[:, None] > 1, t, torch.zeros_like(t))
        y = 2 * rows.float() / max(self.data.height - 1, 1) - 1
        x = 2 * cols.float() / max(self.data.width - 1, 1) - 1
        g = torch.arange(self.G, device=self.device)
        target = self.data.frames[g[:, None, None, None], frames[:, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
        target = target.float() / 255
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            raw = self.model(t, y, x)
        pred = reconstruct(self.method, raw, self._sampler(frames, cols.float(), rows.float())).clamp(0, 1)
        return (pred - target).pow(2).mean(dim=(1, 2, 3, 4))

    def _set_quantization(self) -> None:
        active = self.qat_from is not None and self.step >= self.qat_from
        bits = self.quant_bits if active else None
        for net in self.model.nets:
            net.quant_bits = bits
        if active and self.step == self.qat_from:  # the guard re-baselines on the quantised model
            self.best_psnr.fill_(-math.inf)

    def train_step(self) -> None:
        self._set_quantization()
        if self.method.references == "single" and (self.chain is None or self.step % self.cfg.refresh_every == 0):
            self._refresh_chain()
        if self.step == 0 and self.cfg.guard:
            self._initial_psnr()
        loss = self._loss()
        (loss * self.active).sum().backward()
        if self.cfg.grad_clip > 0:
            clip_grad_norm_per_gop(self.params, self.cfg.grad_clip)
        factor = lr_factor(self.step, self.total_steps, self.cfg.warmup, self.cfg.final_lr)
        self.optimizer.step(self.lr * factor, self.lr_scale)
        if not self.cfg.accumulate or (self.step + 1) % self.steps_per_epoch == 0:
            self.optimizer.zero_grad()
        self._window += loss.detach()
        self._window_steps += 1
        self.step += 1

    # -------------------------------------------------------------------- guard
    @torch.no_grad()
    def _initial_psnr(self) -> None:
        """Start each GOP's best PSNR at that of its untrained field (one epoch of draws; the
        random stream is left as it was), so that a GOP whose very first window already
        diverged (too high a learning rate) is rolled back too, not kept as its own best."""
        state = self.generator.get_state()
        mse = torch.zeros(self.G, device=self.device)
        for _ in range(self.steps_per_epoch):
            mse += self._loss()
        self.generator.set_state(state)
        psnr = -10 * torch.log10((mse / self.steps_per_epoch).clamp(min=1e-10))
        self.best_psnr = torch.where(torch.isfinite(psnr) & self.active.bool(), psnr, self.best_psnr)

    @torch.no_grad()
    def _check(self) -> torch.Tensor:
        """Per-GOP training PSNR of the last window; roll back diverged GOPs."""
        mse = self._window / max(self._window_steps, 1)
        self._window.zero_()
        self._window_steps = 0
        psnr = -10 * torch.log10(mse.clamp(min=1e-10))
        largest = torch.stack([p.detach().abs().flatten(1).amax(1) for p in self.params]).amax(0)
        bad = ~torch.isfinite(mse) | (psnr < self.best_psnr - COLLAPSE_DB) | ~(largest <= FP16_MAX)
        bad &= self.active.bool()
        if self.cfg.guard and bool(bad.any()):
            state = self.params + self.optimizer.state()
            for current, saved in zip(state, self.snapshot):
                mask = bad.view(-1, *([1] * (current.dim() - 1)))
                current.copy_(torch.where(mask, saved, current))
            self.lr_scale = torch.where(bad, self.lr_scale * 0.5, self.lr_scale)
            self.optimizer.zero_grad()  # an accumulating gradient restarts with the rolled-back state
            for g in torch.nonzero(bad).flatten().tolist():
                self.report.recoveries.append(
                    {"gop": self.data.gops[g].index, "step": self.step, "psnr": float(psnr[g]),
                     "best_psnr": float(self.best_psnr[g]), "lr_scale": float(self.lr_scale[g])}
                )
        good = ~bad
        state = self.params + self.optimizer.state()
        for current, saved in zip(state, self.snapshot):
            mask = good.view(-1, *([1] * (current.dim() - 1)))
            saved.copy_(torch.where(mask, current.detach(), saved))
        self.best_psnr = torch.where(good & torch.isfinite(psnr), torch.maximum(self.best_psnr, psnr), self.best_psnr)
        return torch.where(bad, self.best_psnr, psnr)

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
                psnr = self._check()
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
        chain = None
        if self.method.references == "single":
            chain = render_chain(renderer, self.data.keys[1:-1])
        times = torch.tensor([[min(i, g.length - 1) for i in range(self.lmax)] for g in gops], dtype=torch.float32, device=self.device)
        frames = renderer.render(times, H, W, chain=chain)
        values = []
        for gi, g in enumerate(gops):
            for i in range(g.length):
                if self.method.uses_keyframes and i == g.key:
                    rendered = self.data.keys[gi + 1]
                else:
                    rendered = frames[gi, i]
                pred = (rendered.clamp(0, 1) * 255 + 0.5).floor()
                target = self.data.frames[gi, i].permute(2, 0, 1).float()
                mse = float(((pred - target) ** 2).mean()) / 255**2
                values.append(-10 * math.log10(max(mse, 1e-10)))
        return sum(values) / len(values)

    # --------------------------------------------------------------- checkpoint
    def state(self) -> dict:
        """Everything needed to continue exactly where training stopped."""
        return {
            "step": self.step,
            "adam_steps": self.optimizer.step_count,
            "tensors": [p.detach() for p in self.params] + self.optimizer.state() + self.snapshot,
            "lr_scale": self.lr_scale,
            "best_psnr": self.best_psnr,
            "generator": self.generator.get_state(),
            "recoveries": list(self.report.recoveries),
            "seconds": self.report.seconds,
        }

    @torch.no_grad()
    def load_state(self, state: dict) -> None:
        tensors = state["tensors"]
        n = len(self.params)
        for p, v in zip(self.params, tensors[:n], strict=True):
            p.copy_(v)
        self.optimizer.load_state(tensors[n : 3 * n], int(state["adam_steps"]))
        for s, v in zip(self.snapshot, tensors[3 * n :], strict=True):
            s.copy_(v)
        self.lr_scale = state["lr_scale"].to(self.device)
        self.best_psnr = state["best_psnr"].to(self.device)
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])
        self.report.recoveries = list(state["recoveries"])
        self.report.seconds = float(state["seconds"])
