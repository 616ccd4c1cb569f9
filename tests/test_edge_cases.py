"""Input edge cases through the command line (the cases and inputs are tools/edge_cases.py's).

Each case runs ``nrff encode INPUT -o OUT --preset fast --epochs 2 --device cpu -q``
in-process (typer's CliRunner: the same argument parsing and error reporting as
the installed command, without a 2 s torch import per case) and, when it
encodes, ``nrff decode``. A bad input gives exit status 2, one stderr line
starting with ``error:`` that names the problem, and leaves no file behind; a
converted input (grayscale, 16-bit, alpha) encodes with ``warning:`` lines.
Two cases also run as real subprocesses, and so does the matrix in
docs/robustness.md (``python tools/edge_cases.py``).
"""

from __future__ import annotations

import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nrff.cli import app
from nrff.video import open_video

_TOOL = Path(__file__).resolve().parents[1] / "tools" / "edge_cases.py"
_spec = importlib.util.spec_from_file_location("nrff_tools_edge_cases", _TOOL)
edge = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = edge
_spec.loader.exec_module(edge)

CASES = {case.name: case for case in edge.CASES}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("edge") / "inputs"
    edge.make_inputs(root)
    return root


def _cli(*args) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()], everything


@pytest.mark.parametrize("name", list(CASES))
def test_edge_case(inputs, tmp_path, torch_one_thread, name):
    case = CASES[name]
    out = tmp_path / "out.nrff"
    status, lines, _ = _cli("encode", inputs / case.input, "-o", out, *edge.ENCODE, *case.options)
    if case.expect == "error":
        assert status == 2
        assert len(lines) == 1 and lines[0].startswith("error:"), lines
        assert case.words in lines[0], lines[0]
        assert list(tmp_path.iterdir()) == []  # no output, no temporary file, no checkpoint
        return
    assert status == 0, lines
    assert not any(line.startswith("error:") for line in lines)
    if case.expect == "warning":
        assert any(line.startswith("warning:") and case.words in line for line in lines), lines
    else:
        assert lines == [], lines
    assert [p.name for p in tmp_path.iterdir()] == ["out.nrff"]
    status, lines, _ = _cli("decode", out, "-o", tmp_path / "out.y4m", "-q", "--device", "cpu")
    assert status == 0, lines
    video = open_video(tmp_path / "out.y4m").info
    assert video.frames == case.frames


def test_two_cases_as_real_processes(inputs, tmp_path):
    """The installed command, in its own process: exit status, one line, no traceback."""
    cases = [CASES["frame size changes (raw .264)"], CASES["grayscale PNGs (16-bit)"]]
    with ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(lambda c: edge.run_case(c, inputs, tmp_path), cases))
    for row in rows:
        assert edge.verdict(row) == "", (row["case"].name, row["lines"])


def test_decode_refusals_leave_nothing_behind(inputs, tmp_path, torch_one_thread):
    status, lines, _ = _cli("encode", inputs / "odd-33x17", "-o", tmp_path / "odd.nrff", *edge.ENCODE)
    assert status == 0, lines
    for output, options, words in (
        ("v.mp4", ["--crf", "20"], "needs even sizes"),
        ("v.yuv", [], "needs even sizes"),
        ("v.mp4", ["--fps-factor", "0"], "--fps-factor"),
        ("v.mp4", ["--scale", "17"], "--scale"),
        ("v.mp4", ["--size", "0x4"], "at least 1"),
        ("v.txt", [], "unknown output type"),
    ):
        status, lines, _ = _cli("decode", tmp_path / "odd.nrff", "-o", tmp_path / output, "-q", *options)
        assert status == 2 and len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], lines
        assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.nrff"], output


def test_existing_output_is_only_replaced_with_force(inputs, tmp_path, torch_one_thread):
    out = tmp_path / "c.nrff"
    out.write_bytes(b"precious")
    status, lines, _ = _cli("encode", inputs / "three-frames", "-o", out, *edge.ENCODE)
    assert status == 2 and "already exists" in lines[0] and out.read_bytes() == b"precious"
    status, lines, _ = _cli("encode", inputs / "three-frames", "-o", out, *edge.ENCODE, "--force")
    assert status == 0 and out.read_bytes()[:4] == b"NRFF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.nrff"]
    status, lines, _ = _cli("decode", out, "-o", tmp_path / "v.y4m", "-q")
    original = (tmp_path / "v.y4m").read_bytes()
    status, lines, _ = _cli("decode", out, "-o", tmp_path / "v.y4m", "-q", "--scale", "2")
    assert status == 2 and "already exists" in lines[0] and (tmp_path / "v.y4m").read_bytes() == original
    status, lines, _ = _cli("decode", out, "-o", tmp_path / "v.y4m", "-q", "--scale", "2", "--force")
    assert status == 0 and open_video(tmp_path / "v.y4m").info.width == 96
