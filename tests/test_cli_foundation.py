"""The ``nrff baseline`` and ``nrff compare`` commands, run as a user runs them (a subprocess).

Every bad input must end with a non-zero status and exactly one ``error:`` line on
stderr that names the problem, never a traceback. Each run imports torch (about 2 s
of CPU), so the runs of this module are started together, a few at a time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def nrff_cli() -> str:
    local = Path(sys.executable).with_name("nrff")
    return str(local) if local.exists() else shutil.which("nrff")


def run_cli(args, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NRFF_DEBUG")}
    env["NO_COLOR"] = "1"
    env["OMP_NUM_THREADS"] = "1"  # tiny clips; the runs share the CPU
    done = subprocess.run(
        [nrff_cli(), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=180
    )
    done.stdout, done.stderr = ANSI.sub("", done.stdout), ANSI.sub("", done.stderr)
    return done


# name -> (command and arguments, words the error line must contain); {good} is a valid clip
BAD_INPUTS = {
    "missing path": ("{missing}", "no such file"),
    "empty folder": ("{empty}", "empty"),
    "mixed sizes": ("{mixed}", "same size"),
    "corrupt image": ("{corrupt}", "cannot read image"),
    "zero-length range": ("{good} --frames 3:3", "3:3"),
}
BASELINE_ONLY = {
    "odd size yuv420p": ("baseline {odd} --pix-fmt yuv420p", "odd"),
    "existing report": ("baseline {good} --report {report}", "already exists"),
}
CASES = {
    **{f"baseline {name}": (f"baseline {arg}", words) for name, (arg, words) in BAD_INPUTS.items()},
    **{f"compare {name}": (f"compare {arg} {{good}}", words) for name, (arg, words) in BAD_INPUTS.items()},
    **BASELINE_ONLY,
}
REPORT_KEYS = {"bytes", "bpp", "psnr", "ssim", "frames", "width", "height", "encode_seconds", "method", "gop", "device"}


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_frames) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")

    def folder(name, frames):
        path = root / name
        path.mkdir()
        for i, frame in enumerate(frames, start=1):
            Image.fromarray(frame).save(path / f"frame_{i:04d}.png")
        return path

    good = folder("good", tiny_frames)
    (root / "empty").mkdir()
    # as long as the good clip, so that `compare` gets to the bad frame
    mixed = folder("mixed", tiny_frames)
    Image.fromarray(np.ascontiguousarray(tiny_frames[4, :40, :56])).save(mixed / "frame_0005.png")
    corrupt = folder("corrupt", tiny_frames)
    (corrupt / "frame_0003.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00 not an image " * 16)
    odd = folder("odd", np.ascontiguousarray(tiny_frames[:3, :47, :63]))
    report = root / "existing.json"
    report.write_text('{"keep": true}\n')
    return {
        "root": root, "good": good, "missing": root / "does-not-exist", "empty": root / "empty",
        "mixed": mixed, "corrupt": corrupt, "odd": odd, "report": report,
    }


@pytest.fixture(scope="module")
def results(paths) -> dict[str, subprocess.CompletedProcess]:
    """Run every bad-input case and one good run, concurrently."""
    jobs = {name: template.format(**paths).split() for name, (template, _) in CASES.items()}
    jobs["report folder missing"] = ["baseline", str(paths["good"]), "--report", str(paths["root"] / "nodir" / "r.json")]
    jobs["good"] = ["baseline", str(paths["good"]), "--crf", "28", "--report", str(paths["root"] / "good.json")]
    jobs["sweep"] = ["baseline", str(paths["good"]), "--crf", "36,24", "--report", str(paths["root"] / "sweep.json")]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(run_cli, args, paths["root"]) for name, args in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_error_line(results, case):
    done = results[case]
    words = CASES[case][1]
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    error_lines = [line for line in lines if line.startswith("error:")]
    assert len(error_lines) == 1, done.stderr
    assert lines == error_lines, done.stderr  # nothing else: no warning, no wrapped continuation
    assert words.lower() in error_lines[0].lower(), error_lines[0]


def test_existing_report_is_left_alone(results, paths):
    assert results["existing report"].returncode == 2
    assert paths["report"].read_text() == '{"keep": true}\n'


def test_good_run_writes_a_full_report(results, paths):
    done = results["good"]
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr.lower()
    report = json.loads((paths["root"] / "good.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert (report["frames"], report["width"], report["height"]) == (7, 64, 48)
    assert (report["method"], report["gop"], report["device"]) == ("x264", 5, "cpu")
    assert report["bytes"] == sum(report["packet_sizes"]) > 0
    assert report["bpp"] == pytest.approx(8 * report["bytes"] / (7 * 64 * 48), rel=1e-12)
    assert 25.0 < report["psnr"] < 60.0
    assert 0.5 < report["ssim"] <= 1.0
    assert report["encode_seconds"] >= 0.0
    assert str(report["bytes"]) in done.stdout  # the table shows the same figures


def test_crf_sweep_report_is_a_list(results, paths):
    done = results["sweep"]
    assert done.returncode == 0, done.stderr
    reports = json.loads((paths["root"] / "sweep.json").read_text())
    assert isinstance(reports, list) and [r["crf"] for r in reports] == [36.0, 24.0]
    assert reports[0]["bytes"] < reports[1]["bytes"]
    assert reports[0]["psnr"] < reports[1]["psnr"]
    assert all(REPORT_KEYS <= set(r) for r in reports)


def test_report_permissions_follow_the_umask(results, paths):
    assert results["good"].returncode == 0
    umask = os.umask(0)
    os.umask(umask)
    if 0o666 & ~umask == 0o600:
        pytest.skip("a umask of 077 cannot tell the two apart")
    mode = (paths["root"] / "good.json").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask


def test_report_in_a_missing_folder_is_refused_before_encoding(results):
    done = results["report folder missing"]
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if line.strip()][0].startswith("error:")
    assert "does not exist" in done.stderr
    assert "PSNR" not in done.stdout  # refused up front: no results table
