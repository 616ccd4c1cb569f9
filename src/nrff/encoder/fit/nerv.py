"""Fitting a NeRV baseline: one frame per step, 0.7 L1 + 0.3 (1 - SSIM), Adam, warm-up + cosine.

As in the NeRV paper (Adam betas (0.5, 0.999), 20 % warm-up, cosine decay);
with ``quant_bits`` the last steps fine-tune on the quantisation grid, like
nrff's networks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from pytorch_msssim import ssim

from nrff.config import TrainConfig
from nrff.encoder.fit.job import FitJob, FitOutcome
from nrff.encoder.fit.optim import lr_factor
from nrff.fields.nerv import Nerv, NervLayout, frame_time
from nrff.quant import fake_quantize


def fit_nerv(job: FitJob) -> FitOutcome:
    """One network for the clip, fitted on all frames (held as uint8 on the device)."""
    video, config = job.video, job.config
    frames = torch.from_numpy(video.read_all()).to(job.device)
    model = Nerv(NervLayout(video.info.height, video.info.width, job.units[0]), seed=config.train.seed).to(job.device)
    n = len(frames)
    with job.reporter.task("training nerv", config.train.epochs, unit="epochs") as update:
        report = train_nerv(model, frames, config.train, config.lr, config.field.quant_bits,
                            lambda step, total, psnr: update(step / n, psnr=psnr))
    data = job.weight_codec.pack([t.detach().cpu() for t in model.tensors()])
    return FitOutcome({0: data}, report["seconds"], report["steps"], [])


def train_nerv(
    model: Nerv,
    frames: torch.Tensor,
    cfg: TrainConfig,
    lr: float,
    quant_bits: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict:
    """Fit ``model`` to ``frames`` (uint8 ``[N, H, W, 3]`` on the training device)."""
    device = frames.device
    n = frames.shape[0]
    total = cfg.epochs * n
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
    generator = torch.Generator(device="cpu")
    generator.manual_seed(cfg.seed)
    qat_from = int(cfg.qat_start * total) if quant_bits else None
    params = model.tensors()
    started = time.perf_counter()
    window, window_steps, psnr = 0.0, 0, float("nan")
    use_ssim = min(frames.shape[1:3]) >= 11
    step = 0
    for _ in range(cfg.epochs):
        for index in torch.randperm(n, generator=generator).tolist():
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(step, total, cfg.warmup, cfg.final_lr)
            target = frames[index].permute(2, 0, 1)[None].float() / 255
            t = torch.tensor([frame_time(index, n)], device=device)
            if qat_from is not None and step >= qat_from:
                saved = [p.detach().clone() for p in params]
                with torch.no_grad():
                    for p in params:  # straight-through: forward on the grid, step the float weights
                        p.copy_(fake_quantize(p[None], quant_bits)[0])
                pred = model(t)
                loss = _loss(pred, target, use_ssim)
                loss.backward()
                with torch.no_grad():
                    for p, s in zip(params, saved):
                        p.copy_(s)
            else:
                pred = model(t)
                loss = _loss(pred, target, use_ssim)
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            window += float(torch.mean((pred.detach() - target) ** 2))
            window_steps += 1
            step += 1
            if step % cfg.log_every == 0 or step == total:
                psnr = -10 * math.log10(max(window / window_steps, 1e-10))
                window, window_steps = 0.0, 0
                if progress is not None:
                    progress(step, total, psnr)
    return {"steps": total, "seconds": time.perf_counter() - started, "train_psnr": psnr}


def _loss(pred: torch.Tensor, target: torch.Tensor, use_ssim: bool) -> torch.Tensor:
    l1 = (pred - target).abs().mean()
    if not use_ssim:
        return l1
    return 0.7 * l1 + 0.3 * (1 - ssim(pred, target, data_range=1.0, size_average=True))
