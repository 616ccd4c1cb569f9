"""The code writes the bytes it wrote before, and reads the files it wrote before.

``tests/data/golden`` holds reference encodes of the bundled clip, one per method and
option family (recorded by ``tools/golden.py``). Re-encoding each must give the same
file, byte for byte, and decoding each recorded file must give the same frames. Float
arithmetic may differ on another CPU, instruction set (AVX2 / AVX-512) or torch build, so
there the check is the header and key frames byte for byte and the quality within 0.05 dB.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from nrff.api import decode, info
from nrff.machine import float_machine

GOLDEN = Path(__file__).parent / "data" / "golden"
CASES = {k: v for k, v in json.loads((GOLDEN / "cases.json").read_text()).items() if not k.startswith("_")}
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())
SAME_MACHINE = EXPECTED["_machine"] == float_machine()


@pytest.fixture(autouse=True)
def _recording_threads():
    """Float results (NeRV's convolutions) depend on the thread count: use the recording's two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _tool():
    spec = importlib.util.spec_from_file_location("golden_tool", Path(__file__).parents[1] / "tools" / "golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _structure(data: bytes) -> dict:
    """What must match on any machine: the header and the key-frame bytes."""
    d = info(data)
    return {k: d[k] for k in ("frames", "width", "height", "method", "split", "gops", "keyframe_codec", "keyframe_crf",
                              "keyframe_bytes")} | {"units": [g["units"] for g in d["gop_table"]]}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_encode_writes_the_recorded_bytes(name, tmp_path):
    tool = _tool()
    out, report = tmp_path / "x.nrff", tmp_path / "x.json"
    tool.encode_case(CASES[name], out, report)
    data = out.read_bytes()
    expected = EXPECTED[name]
    recorded = (GOLDEN / f"{name}.nrff").read_bytes()
    if SAME_MACHINE:
        assert hashlib.sha256(data).hexdigest() == expected["sha256"], f"{name}: the bytes changed"
    else:
        assert _structure(data) == _structure(recorded)
        assert abs(json.loads(report.read_text())["psnr"] - expected["psnr"]) < 0.05


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_files_decode_to_the_recorded_frames(name):
    data = (GOLDEN / f"{name}.nrff").read_bytes()
    assert hashlib.sha256(data).hexdigest() == EXPECTED[name]["sha256"]
    if SAME_MACHINE:
        assert _tool().frames_digest(data) == EXPECTED[name]["frames_sha256"]
    else:
        from nrff.data import sample_clip
        from nrff.eval.metrics import compare_videos
        from nrff.video import open_video

        reference = open_video(sample_clip(), frames=EXPECTED["_frames"])
        psnr = compare_videos(reference, decode(data, device="cpu").frames()).summary()["psnr"]
        assert abs(psnr - EXPECTED[name]["psnr"]) < 0.05
