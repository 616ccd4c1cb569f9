"""What a figure was measured on: the CPU model and core count, or the GPU's name."""

from __future__ import annotations

import os
import platform


def float_machine() -> dict[str, str]:
    """What float results depend on: the CPU model, the vector instructions torch uses on it
    (one model name can be an AVX2 or an AVX-512 part) and the torch build."""
    import torch

    return {"cpu": cpu_name(), "isa": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    model = platform.processor() or platform.machine() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return model


def describe_cpu() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores"
