"""Crash-safe encoding: kill -9 a real ``nrff encode`` in the middle of training, then ``--resume``.

The procedure is tools/kill_resume.py's (which also runs it for nrff-single and
SIREN, see docs/robustness.md): an uninterrupted encode and a second one with
``--checkpoint-every 0.5`` start side by side with the same seed; the second is
killed with SIGKILL as soon as its checkpoint appears. Then no file may exist
under the final name, a plain encode must refuse while the checkpoint exists,
and ``--resume`` must give a valid file within 0.1 dB of the uninterrupted run
(in fact the same bytes: the checkpoint holds the whole training state, i.e.
weights, Adam moments, roll-back snapshots, step and random generator). That an
existing output is only replaced with --force: tests/test_edge_cases.py.
"""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from nrff.api import decode
from nrff.eval.metrics import psnr
from nrff.video import open_video

_TOOL = Path(__file__).resolve().parents[1] / "tools" / "kill_resume.py"
_spec = importlib.util.spec_from_file_location("nrff_tools_kill_resume", _TOOL)
kill_resume = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = kill_resume
_spec.loader.exec_module(kill_resume)


@pytest.mark.slow
def test_kill_9_mid_training_then_resume_matches_an_uninterrupted_run(tmp_path):
    clip = kill_resume.make_clip(tmp_path / "clip")
    row = kill_resume.kill_and_resume(tmp_path, clip, "nrff")

    assert row["killed_status"] == -signal.SIGKILL
    assert 0 < row["checkpoint_step"] < row["total_steps"]  # killed in the middle of training
    assert not row["output_after_kill"]  # nothing under the final name
    assert row["plain_encode_status"] == 2 and len(row["plain_encode_lines"]) == 1
    assert row["plain_encode_lines"][0].startswith("error:") and "--resume" in row["plain_encode_lines"][0]
    assert row["checkpoint_kept"] and row["checkpoint_removed"]

    assert abs(row["psnr_resumed"] - row["psnr_uninterrupted"]) < 0.1
    assert row["identical"]  # what the checkpoint design promises
    data = (tmp_path / "nrff.nrff").read_bytes()
    frames = open_video(clip).read_all()
    decoded = list(decode(data, device="cpu").frames())
    assert np.mean([psnr(a, b) for a, b in zip(frames, decoded)]) == pytest.approx(row["psnr_resumed"], abs=1e-6)
    assert row["temporary_files"] == [] or all(".ckpt." in name for name in row["temporary_files"])
