"""Devices, precisions and the memory a chunk of GOPs may take on them."""

from __future__ import annotations

import torch

from nrff.errors import InputError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_device_name(name: str) -> None:
    if name not in DEVICES and not name.startswith("cuda:"):
        raise InputError(f"unknown device {name!r}; use auto, cpu or cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU; asking for CUDA without one is an error."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was requested but no CUDA device is available")
    return torch.device(name)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def memory_budget(device: torch.device) -> int:
    """Bytes the frames and activations of one training/decoding chunk may take."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return 3 * 1024**3


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the networks' hidden layers: ``auto`` is fp16 on CUDA, fp32 on the CPU."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else None
    if name not in PRECISIONS:
        raise InputError(f"unknown precision {name!r}; use auto, fp32, fp16 or bf16")
    return PRECISIONS[name]
