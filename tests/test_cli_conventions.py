"""The command line as scripts use it: progress and log lines, --json, pipes, --fps, --version,
python -m nrff, -y, -q/-v, playable output, the Python API with paths, bytes and arrays.

A few runs are real subprocesses (stderr is then a pipe, not a terminal, exactly as under
nohup or CI), started together; the rest run in-process with typer's CliRunner.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

import nrff
from helpers import write_clip
from nrff.cli import app
from nrff.progress import Reporter
from nrff.video import open_video
from nrff.video.writer import write_video

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
REPORT_KEYS = {"bytes", "bpp", "psnr", "ssim", "frames", "width", "height", "encode_seconds", "method", "gop", "device"}
FAST = ["--preset", "fast", "--epochs", "2", "--device", "cpu"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NRFF_DEBUG", "NRFF_LOG_INTERVAL")}
    env.update(NO_COLOR="1", OMP_NUM_THREADS="1")
    return env


def _run(args, cwd, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    exe = [sys.executable, "-m", "nrff"]
    done = subprocess.run([*exe, *map(str, args)], capture_output=True, env=_env(), cwd=cwd, timeout=300, input=stdin)
    done.err = ANSI.sub("", done.stderr.decode())
    return done


def _y4m_frames(data: bytes) -> tuple[dict, int]:
    header, _, rest = data.partition(b"\n")
    assert header.startswith(b"YUV4MPEG2 ")
    fields = {f[:1].decode(): f[1:].decode() for f in header.split(b" ")[1:]}
    return fields, rest.count(b"FRAME\n")


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """A tiny clip, its .nrff (encoded in-process through the API), and the subprocess runs."""
    root = tmp_path_factory.mktemp("conventions")
    clip = root / "clip"
    write_clip(clip, frames=6)
    nrff_file = root / "a.nrff"
    nrff.encode(clip, nrff_file, nrff.EncodeConfig.from_preset("fast", epochs=2, device="cpu"))
    y4m = root / "clip.y4m"
    write_video(y4m, open_video(clip))
    jobs = {
        "encode json": (["encode", clip, "-o", root / "b.nrff", *FAST, "--json"], None),
        "encode quiet": (["encode", clip, "-o", root / "c.nrff", *FAST, "-q"], None),
        "encode stdin": (["encode", "-", "-o", root / "d.nrff", *FAST, "--fps", "12", "-q", "--json"], y4m.read_bytes()),
        "decode stdout": (["decode", nrff_file, "-o", "-", "--device", "cpu"], None),
        "decode gpu": (["decode", nrff_file, "-o", root / "x.mp4", "--device", "gpu"], None),
        "info": (["info", nrff_file], None),
        "version": (["--version"], None),
    }
    with ThreadPoolExecutor(2) as pool:
        futures = {k: pool.submit(_run, args, root, stdin) for k, (args, stdin) in jobs.items()}
        runs = {k: f.result() for k, f in futures.items()}
    return {"root": root, "clip": clip, "file": nrff_file, "runs": runs}


def test_progress_is_logged_in_plain_lines_when_stderr_is_not_a_terminal(encoded):
    done = encoded["runs"]["encode json"]
    assert done.returncode == 0, done.err
    lines = done.err.splitlines()
    training = [l for l in lines if l.startswith("training:")]
    assert training and training[-1].startswith("training: 2/2 epochs (100%)"), lines
    assert re.search(r"\d+\.\d\d dB", training[-1]) and "elapsed" in training[-1]
    assert any(l.startswith("verifying:") for l in lines) and any(l.startswith("key frames:") for l in lines)
    assert not any("\r" in l or "━" in l for l in lines)  # no bar drawing in a log


def test_encode_json_is_the_only_thing_on_stdout(encoded):
    done = encoded["runs"]["encode json"]
    report = json.loads(done.stdout)  # exactly one document: json.loads refuses anything after it
    assert REPORT_KEYS <= set(report) and report["frames"] == 6


def test_quiet_means_nothing_on_stderr(encoded):
    done = encoded["runs"]["encode quiet"]
    assert done.returncode == 0 and done.err.strip() == "", done.err
    assert "method" in done.stdout.decode()  # the table still goes to stdout


def test_encode_reads_a_y4m_stream_from_stdin_at_the_given_fps(encoded):
    done = encoded["runs"]["encode stdin"]
    assert done.returncode == 0, done.err
    report = json.loads(done.stdout)
    assert (report["frames"], report["width"], report["height"], report["fps"]) == (6, 64, 48, 12.0)


def test_decode_to_stdout_is_a_y4m_stream(encoded):
    done = encoded["runs"]["decode stdout"]
    assert done.returncode == 0, done.err
    fields, count = _y4m_frames(done.stdout)
    assert (fields["W"], fields["H"], count) == ("64", "48", 6)
    assert "decoding: 6/6 frames" in done.err and "to stdout" in done.err


def test_decode_unknown_device_is_one_line(encoded):
    done = encoded["runs"]["decode gpu"]
    lines = [l for l in done.err.splitlines() if l.strip()]
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: unknown device 'gpu'"), lines


def test_piped_output_is_not_cut_to_80_columns(encoded):
    done = encoded["runs"]["info"]
    assert done.returncode == 0, done.err
    first = done.stdout.decode().splitlines()[0]
    assert len(first) > 80 and first.rstrip().endswith("bpp"), first


def test_version_and_python_dash_m(encoded):
    done = encoded["runs"]["version"]  # run as `python -m nrff --version`
    assert done.returncode == 0 and done.stdout.decode().strip() == f"nrff {nrff.__version__}"


def _invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert "Traceback" not in result.stdout + result.stderr
    return result


def test_help_flags_take_no_value_and_name_every_method_and_the_gop_rule():
    from nrff.methods import METHODS

    text = " ".join(_invoke("encode", "--help").stdout.split())
    assert "<bool>" not in text
    assert "-q" in text and "--verbose" in text and "-y" in text
    for name in METHODS:
        assert re.search(rf"(^|[ (,]){re.escape(name)}[ ,)]", text), name
    assert "balanced" in text and "one GOP" in text


def test_info_compare_and_baseline_json(encoded):
    info = _invoke("info", encoded["file"], "--json")
    assert info.exit_code == 0 and json.loads(info.stdout)["frames"] == 6
    compare = _invoke("compare", encoded["clip"], encoded["clip"], "--json")
    assert compare.exit_code == 0 and json.loads(compare.stdout)["frames"] == 6
    assert "comparing: 6/6 frames" in compare.stderr
    baseline = _invoke("baseline", encoded["clip"], "--crf", "30", "--json")
    assert baseline.exit_code == 0, baseline.stderr
    assert REPORT_KEYS <= set(json.loads(baseline.stdout))
    assert "x264 CRF 30: 12/12 frames" in baseline.stderr


def test_decode_mp4_is_playable_by_default_and_exact_with_lossless(encoded):
    root = encoded["root"]
    assert _invoke("decode", encoded["file"], "-o", root / "p.mp4", "-q", "--device", "cpu").exit_code == 0
    assert _invoke("decode", encoded["file"], "-o", root / "l.mp4", "-q", "--device", "cpu", "--lossless").exit_code == 0
    for name, pix_fmt in (("p.mp4", "yuv420p"), ("l.mp4", "gbrp")):
        with av.open(str(root / name)) as c:
            assert c.streams.video[0].codec_context.pix_fmt == pix_fmt, name
    exact = np.stack(list(nrff.decode(encoded["file"], device="cpu").frames()))
    np.testing.assert_array_equal(open_video(root / "l.mp4").read_all(), exact)
    both = _invoke("decode", encoded["file"], "-o", root / "z.mp4", "--lossless", "--crf", "20")
    assert both.exit_code == 2 and "exclude" in both.stderr


def test_verbose_adds_detail(encoded):
    done = _invoke("decode", encoded["file"], "-o", encoded["root"] / "v.y4m", "-v", "-y", "--device", "cpu")
    assert done.exit_code == 0 and "6 frames 64x48 -> 6 frames 64x48 on cpu" in done.stderr, done.stderr


def test_force_has_a_short_y(encoded):
    out = encoded["root"] / "y.y4m"
    out.write_bytes(b"old")
    assert _invoke("decode", encoded["file"], "-o", out, "-q", "--device", "cpu").exit_code == 2
    assert _invoke("decode", encoded["file"], "-o", out, "-q", "-y", "--device", "cpu").exit_code == 0
    assert out.read_bytes().startswith(b"YUV4MPEG2")


def test_api_takes_paths_bytes_and_arrays(encoded, tmp_path):
    path = encoded["file"]
    data = path.read_bytes()
    assert nrff.info(path) == nrff.info(str(path)) == nrff.info(data)
    a = np.stack(list(nrff.decode(path, device="cpu").frames()))
    b = np.stack(list(nrff.decode(data, device="cpu").frames()))
    assert a.shape == (6, 48, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    result = nrff.encode(a, tmp_path / "arr.nrff", nrff.EncodeConfig.from_preset("fast", epochs=1, device="cpu"),
                         fps=30, verify=False)
    assert (result.frames, result.width, result.height) == (6, 64, 48)
    assert nrff.info(tmp_path / "arr.nrff")["fps"] == 30.0


def test_png_folder_fps(encoded):
    assert open_video(encoded["clip"]).info.fps == 24
    assert open_video(encoded["clip"], fps=30).info.fps == 30


def test_stdin_spool_names_what_it_holds():
    from nrff.errors import InputError
    from nrff.video.reader import spool_stdin

    assert spool_stdin(source=io.BytesIO(b"YUV4MPEG2 W2 H2 F1:1\n")).name == "stdin.y4m"
    assert spool_stdin(raw=True, source=io.BytesIO(b"\0" * 12)).name == "stdin.yuv"
    assert spool_stdin(source=io.BytesIO(b"\0\0\0\x18ftypisom")).name == "stdin"
    with pytest.raises(InputError, match="empty"):
        spool_stdin(source=io.BytesIO(b""))


def test_log_lines_are_rate_limited(capsys):
    with Reporter(mode="log", interval=3600) as reporter, reporter.task("work", 100, unit="items") as update:
        for i in range(1, 101):
            update(i, psnr=30.0)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("work: 100/100 items (100%), 30.00 dB, elapsed"), lines
    assert "eta" not in lines[0]
    with Reporter(mode="log", interval=0) as reporter, reporter.task("work", 4) as update:
        for i in range(1, 5):
            update(i)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and re.search(r"eta \d:\d\d:\d\d$", lines[1]), lines
    with Reporter(mode="off") as quiet, quiet.task("work", 2) as update:
        update(2)
        quiet.log("hidden")
    assert capsys.readouterr().err == ""


ROOT = Path(__file__).resolve().parents[1]


def test_license_citation_and_dependencies():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"]["text"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    citation = (ROOT / "CITATION.cff").read_text()
    assert "Neural Residual Flow Fields for Efficient Video Representations" in citation and "Rho" in citation
    runtime = " ".join(project["dependencies"])
    assert "scipy" not in runtime and any("scipy" in d for d in project["optional-dependencies"]["test"])
    assert (Path(nrff.__file__).parent / "py.typed").exists()


def test_public_api_is_documented():
    from nrff.decoder.video import DecodedVideo

    for obj in (nrff.encode, nrff.decode, nrff.info, nrff.load, nrff.EncodeConfig, nrff.EncodeConfig.from_preset,
                DecodedVideo, DecodedVideo.frames):
        assert obj.__doc__ and len(obj.__doc__.strip()) > 20, obj
    assert "from_preset" in nrff.EncodeConfig.__doc__
    assert (ROOT / "docs" / "python.md").read_text().startswith("# Using nrff from Python")
