"""``--compile``: the training step fused by torch.compile, with an eager fallback."""

from __future__ import annotations

import pytest
import torch

from nrff.api import decode, encode, load
from nrff.config import EncodeConfig
from nrff.encoder.fit.compiled import CompiledStep
from nrff.errors import InputError


def _mse(x: torch.Tensor) -> torch.Tensor:
    return (x * torch.sigmoid(x)).pow(2).mean()


def test_off_is_the_eager_step_and_unknown_modes_are_refused():
    step = CompiledStep(_mse, "off", torch.device("cpu"))
    assert step.fn is _mse and not step.active
    x = torch.randn(10)
    assert torch.equal(step(x), _mse(x))
    with pytest.raises(InputError, match="unknown compile mode"):
        CompiledStep(_mse, "fastest", torch.device("cpu"))
    with pytest.raises(InputError, match="unknown compile mode"):
        EncodeConfig.from_preset("fast", compile="yes").validate()
    assert EncodeConfig.from_preset("fast").train.compile == "off"


def test_cuda_graphs_ask_for_cuda_and_fall_back_to_the_fused_step_on_the_cpu():
    assert CompiledStep(_mse, "graphs", torch.device("cpu")).mode == "on"


def test_a_compiler_failure_falls_back_to_eager_once_and_other_errors_propagate(monkeypatch):
    calls = []

    def broken(*args):
        calls.append(args)
        raise torch._dynamo.exc.TorchDynamoException("no C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda fn, **kw: broken)
    step = CompiledStep(_mse, "on", torch.device("cpu"))
    x = torch.randn(10)
    assert torch.equal(step(x), _mse(x)) and step.fallback_reason.startswith("TorchDynamoException")
    assert torch.equal(step(x), _mse(x)) and len(calls) == 1  # compiled once, eager from then on

    def wrong(*args):
        raise ValueError("a bug in the step, not in the compiler")

    monkeypatch.setattr(torch, "compile", lambda fn, **kw: wrong)
    with pytest.raises(ValueError, match="a bug in the step"):
        CompiledStep(_mse, "on", torch.device("cpu"))(x)


@pytest.mark.slow
def test_a_compiled_encode_repeats_its_bytes_and_decodes(tiny_clip, tmp_path):
    """A real inductor compile on the CPU (fp16 weights: one graph, no recompile for QAT)."""
    config = EncodeConfig.from_preset("fast", epochs=20, quant_bits=0, compile="on")
    eager = EncodeConfig.from_preset("fast", epochs=20, quant_bits=0)
    runs = []
    for i, cfg in enumerate((config, config, eager)):
        out = tmp_path / f"run{i}.nrff"
        result = encode(tiny_clip, out, cfg, checkpoint_seconds=None)
        runs.append((out.read_bytes(), result.psnr))
    assert runs[0][0] == runs[1][0]  # same device, seed and mode: same bytes
    assert abs(runs[0][1] - runs[2][1]) < 0.5  # the same training, another float order
    video = decode(load(tmp_path / "run0.nrff"))
    assert sum(1 for _ in video.frames()) == 7
