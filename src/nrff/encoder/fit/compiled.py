"""An optionally compiled training step: the networks' element-wise chain fused by ``torch.compile``.

A step is dominated by small element-wise kernels; ``torch.compile`` (inductor: C++ on the
CPU, Triton on CUDA) fuses the networks' part of them (positional-encoding phases, Swish,
masks), and ``graphs`` additionally replays it as a CUDA graph so that launching many tiny
kernels stops costing more than running them. The warps and pixel gathers stay eager (the
trainer passes only the networks in). Compiling changes the floating-point order, so a
compiled encode gives other (equally valid) bytes than an eager one; for a given device,
seed and mode the bytes are still the same run after run. A compiler that cannot build the
step (no C++ compiler, an unsupported operation) falls back to the eager step with one
warning instead of failing the encode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from nrff.errors import InputError

log = logging.getLogger(__name__)

# option value -> torch.compile mode (None: eager)
COMPILE_MODES: dict[str, str | None] = {"off": None, "on": "default", "graphs": "reduce-overhead"}


def check_compile_mode(name: str) -> None:
    if name not in COMPILE_MODES:
        raise InputError(f"unknown compile mode {name!r}; use off, on or graphs")


class CompiledStep:
    """``fn`` compiled with ``mode`` on first use; the eager ``fn`` if compiling fails."""

    def __init__(self, fn: Callable[..., torch.Tensor], mode: str, device: torch.device):
        check_compile_mode(mode)
        self.eager = fn
        self.mode = mode
        if mode == "graphs" and device.type != "cuda":
            self.mode = "on"  # CUDA graphs need CUDA; the fused step still helps
        self.fn = fn if self.mode == "off" else torch.compile(fn, mode=COMPILE_MODES[self.mode], dynamic=False)
        self.fallback_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.mode != "off" and self.fallback_reason is None

    def __call__(self, *args) -> torch.Tensor:
        if not self.active:
            return self.eager(*args)
        if self.mode == "graphs":
            torch.compiler.cudagraph_mark_step_begin()
        try:
            return self.fn(*args)
        except Exception as error:  # noqa: BLE001 - any compiler failure means: run eagerly
            if not _is_compiler_error(error):
                raise
            self.fallback_reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            log.warning("torch.compile failed (%s); training continues without it", self.fallback_reason)
            return self.eager(*args)


def _is_compiler_error(error: Exception) -> bool:
    import torch._dynamo  # loaded by torch.compile already; BackendCompilerFailed is one of these

    return isinstance(error, torch._dynamo.exc.TorchDynamoException)
