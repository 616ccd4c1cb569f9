"""``nrff bench``: the tiny sweep of benchmarks/sweeps/tiny.toml run, killed, resumed and reported;
the pictures of a frame; the BD table against the bjontegaard package.

The sweep (10 frames of the bundled clip, 12 runs, a few seconds) is run once per module:
first as a user runs it (a subprocess, killed with SIGKILL after a few rows), then
resumed in-process; every other test reads its results file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import nrff.eval.bench as bench
from nrff.eval.bench import SweepConfig, load_rows, row_key, run_sweep
from nrff.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "benchmarks" / "sweeps" / "tiny.toml"
ROW_FIELDS = {"clip", "method", "settings", "point", "bytes", "bpp", "psnr", "ssim", "ms_ssim", "encode_seconds",
              "decode_seconds", "device", "version", "commit", "bitstream"}


def nrff_cli() -> str:
    local = Path(sys.executable).with_name("nrff")
    return str(local) if local.exists() else shutil.which("nrff")


def cli_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NRFF_DEBUG")}
    env.update(NO_COLOR="1", OMP_NUM_THREADS="1")
    return env


def run_cli(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([nrff_cli(), *map(str, args)], capture_output=True, text=True, env=cli_env(), cwd=cwd,
                          timeout=180)


def _complete_rows(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture(scope="module")
def swept(tmp_path_factory, torch_one_thread):
    """Run the tiny sweep in a subprocess, kill it after 3 rows, then finish it in-process."""
    folder = tmp_path_factory.mktemp("bench")
    results = folder / "tiny.jsonl"
    proc = subprocess.Popen([nrff_cli(), "bench", "run", str(TINY), "--results", str(results), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(), cwd=folder)
    deadline = time.monotonic() + 120
    while _complete_rows(results) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=30)
    before = load_rows(results)
    assert len(before) >= 3, stderr.decode()
    first_lines = results.read_bytes()[: results.read_bytes().rfind(b"\n") + 1]

    config = SweepConfig.load(TINY)
    calls = []
    real = bench._run_one

    def counting(run, *args, **kwargs):
        calls.append(run.key)
        return real(run, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench, "_run_one", counting)
        outcome = run_sweep(config, results)
        again = run_sweep(config, results)
        calls_again = calls[len(outcome.computed):]
    return SimpleNamespace(folder=folder, results=results, config=config, before=before, first_lines=first_lines,
                           outcome=outcome, calls=calls[: len(outcome.computed)], again=again, calls_again=calls_again)


def test_killed_sweep_resumes_with_only_the_missing_rows(swept):
    keys = [r.key for r in swept.config.runs()]
    done_before = [row_key(r) for r in swept.before]
    missing = [k for k in keys if k not in done_before]
    assert missing, "the subprocess finished the whole sweep before it was killed"
    assert swept.calls == missing  # exactly the missing runs were computed, in sweep order
    assert swept.outcome.computed == missing
    assert sorted(swept.outcome.skipped) == sorted(done_before)
    rows = load_rows(swept.results)
    assert sorted(row_key(r) for r in rows) == sorted(keys)  # every run once
    assert swept.results.read_bytes().startswith(swept.first_lines)  # finished rows untouched
    assert swept.calls_again == [] and swept.again.computed == []  # a third run computes nothing


def test_rows_have_the_fields_and_their_bytes_are_the_bitstreams(swept):
    from nrff.api import info

    rows = load_rows(swept.results)
    assert {r["method"] for r in rows} == {"nrff", "siren", "x264"}
    for row in rows:
        assert ROW_FIELDS <= set(row), ROW_FIELDS - set(row)
        stream = swept.results.parent / row["bitstream"]
        assert stream.parent.name == "tiny-streams"
        assert row["bytes"] == stream.stat().st_size
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (10 * 256 * 108))
        assert row["decode_seconds"] > 0 and row["encode_seconds"] > 0
        assert row["version"] and row["device"] == "cpu"
        if row["kind"] in ("nrff", "siren"):
            data = stream.read_bytes()
            described = info(data)
            assert described["bytes"] == row["bytes"]
            assert [g["keyframe_bytes"] for g in row["gops"]] == [g["keyframe_bytes"] for g in described["gop_table"]]
            assert [g["network_bytes"] for g in row["gops"]] == [g["network_bytes"] for g in described["gop_table"]]
    by = {(r["method"], r["point"]): r for r in rows}
    for crf in (17.0, 22.0, 27.0, 32.0):  # siren is sized to the nrff row at the same CRF
        siren, target = by[("siren", crf)], by[("nrff", crf)]
        assert siren["target_bpp"] == target["bpp"]
        assert 0.8 * target["bpp"] < siren["bpp"] <= target["bpp"]


def test_partial_last_line_is_dropped_and_recomputed(swept, tmp_path, torch_one_thread):
    results = tmp_path / "tiny.jsonl"
    lines = swept.results.read_bytes().splitlines(keepends=True)
    results.write_bytes(b"".join(lines[:-1]) + lines[-1][:40])  # killed in the middle of an append
    shutil.copytree(bench.streams_folder(swept.results), bench.streams_folder(results))
    assert len(load_rows(results)) == len(lines) - 1
    outcome = run_sweep(swept.config, results)
    assert outcome.computed == [row_key(json.loads(lines[-1]))]
    assert len(load_rows(results)) == len(lines)


def test_report_bd_rates_match_bjontegaard(swept, tmp_path):
    import bjontegaard

    from nrff.eval.report import write_report

    report = write_report(swept.results, tmp_path / "report")
    for name in ("rd_sample.png", "bits_sample_nrff.png"):
        assert (tmp_path / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pdf = (tmp_path / "report" / name).with_suffix(".pdf")
        assert pdf.read_bytes()[:5] == b"%PDF-" and str(pdf) in report.files
    table = (tmp_path / "report" / "bd_rate.md").read_text()
    assert "| sample | nrff | x264 |" in table
    entries = {e.method: e for e in report.bd}
    assert entries["x264"].anchor == "x264"
    assert entries["x264"].bd_rate_psnr == pytest.approx(0, abs=1e-9)
    assert entries["x264"].bd_rate_ssim == pytest.approx(0, abs=1e-9)
    assert entries["x264"].bd_psnr == pytest.approx(0, abs=1e-9)

    rows = load_rows(swept.results)
    curve = {m: sorted((r for r in rows if r["method"] == m), key=lambda r: r["bpp"]) for m in ("nrff", "x264")}
    expected = bjontegaard.bd_rate([r["bpp"] for r in curve["x264"]], [r["psnr"] for r in curve["x264"]],
                                   [r["bpp"] for r in curve["nrff"]], [r["psnr"] for r in curve["nrff"]],
                                   method="pchip", require_matching_points=False, min_overlap=0)
    assert entries["nrff"].bd_rate_psnr == pytest.approx(expected, rel=1e-12)
    assert f"{expected:+.2f} %" in table
    # the bits: key frames + networks + container = the file, per row
    for b in report.bits:
        assert b["keyframe_bytes"] + b["network_bytes"] + b["container_bytes"] == b["bytes"]
        assert b["container_bytes"] > 0


def test_bd_needs_four_points_and_says_why(swept):
    from nrff.eval.report import bd_table, curves

    rows = [r for r in load_rows(swept.results) if not (r["method"] == "nrff" and r["point"] == 32.0)]
    entries = {e.method: e for e in bd_table(curves(rows))}
    assert entries["nrff"].bd_rate_psnr is None
    assert "at least 4 points" in "; ".join(entries["nrff"].notes)
    assert entries["x264"].bd_rate_psnr == pytest.approx(0, abs=1e-9)
    with_anchor = {e.method: e for e in bd_table(curves(rows), anchor="siren")}
    assert with_anchor["x264"].anchor == "siren"


def test_average_over_clips_is_at_matching_points():
    from nrff.eval.report import average_curves, curves

    def row(clip, point, bpp, psnr):
        return {"clip": clip, "method": "m", "kind": "x264", "settings": {"gop": 5}, "point": point,
                "bpp": bpp, "psnr": psnr, "ssim": psnr / 100}

    rows = [row("a", 20.0, 0.1, 30.0), row("a", 25.0, 0.05, 28.0), row("b", 20.0, 0.3, 34.0)]
    averaged, notes = average_curves(curves(rows))
    assert len(averaged["m"]) == 1
    assert averaged["m"][0].bpp == pytest.approx(0.2) and averaged["m"][0].psnr == pytest.approx(32.0)
    assert "25" in notes[0]


def test_cli_report_and_errors(swept, tmp_path):
    with ThreadPoolExecutor(3) as pool:
        report = pool.submit(run_cli, "bench", "report", swept.results, "--out", tmp_path / "r", cwd=tmp_path)
        missing = pool.submit(run_cli, "bench", "run", tmp_path / "missing.toml", cwd=tmp_path)
        bad = tmp_path / "bad.toml"
        bad.write_text('[[clips]]\npath = "x"\n[[methods]]\nmethod = "siren"\n')
        unmatched = pool.submit(run_cli, "bench", "run", bad, cwd=tmp_path)
    done = report.result()
    assert done.returncode == 0, done.stderr
    assert "| sample | x264 | x264 | +0.00 % | +0.00 % | +0.000 dB |" in done.stdout
    assert (tmp_path / "r" / "report.md").exists() and (tmp_path / "r" / "rd_sample.png").exists()
    for proc, words in ((missing.result(), "no such sweep file"), (unmatched.result(), "needs match")):
        assert proc.returncode == 2
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], proc.stderr


@pytest.mark.parametrize("text, words", [
    ('points = [17]\n[[clips]]\npath = "x"\ncolour = 1\n[[methods]]\nmethod = "x264"\n', "unknown setting 'colour'"),
    ('[[clips]]\npath = "x"\n[[methods]]\nmethod = "x264"\n[[methods]]\nmethod = "x264"\n', "unique"),
    ('[[clips]]\npath = "x"\n[[methods]]\nmethod = "vp9"\n', "unknown method"),
    ('[[clips]]\npath = "x"\n', "[[methods]]"),
    ('points = [60]\n[[clips]]\npath = "x"\n[[methods]]\nmethod = "x264"\n', "between 0 and 51"),
    ('[[clips]]\npath = "x"\n[[methods]]\nmethod = "nrff"\npreset = "slow"\n', "unknown preset"),
    ('[[clips]]\npath = "x"\n[[methods]]\nmethod = "nrff"\ngop = "5"\n', "gop must be int"),
    ('[[clips]]\npath = "x"\n[[methods]]\nmethod = "x264"\nbframes = 1\n', "bframes must be bool"),
])
def test_bad_sweep_files(tmp_path, text, words):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=words.replace("[", r"\[").replace("]", r"\]")):
        SweepConfig.load(path)


def test_sweep_files_shipped_are_valid():
    for name in ("tiny", "sintel20", "basketball50"):
        config = SweepConfig.load(ROOT / "benchmarks" / "sweeps" / f"{name}.toml")
        assert config.runs()
    full = SweepConfig.load(ROOT / "benchmarks" / "sweeps" / "sintel20.toml")
    assert {m.method for m in full.methods} == {"nrff", "nrff-single", "siren", "nerv", "x264", "x265"}
    assert full.clips[0].frames == "0:20"


# ----------------------------------------------------------------------------- pictures


def test_flow_colour_coding():
    from nrff.eval.pictures import colour_key, colour_wheel, flow_to_colour

    assert colour_wheel().shape == (55, 3)
    flows = np.array([[[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, -1.0], [2.0, 0.0]]])
    right, left, still, down, up, beyond = flow_to_colour(flows, max_radius=1.0)[0]
    assert tuple(right) == (255, 0, 0)  # right is red
    assert left[0] == 0 and left[1] > 200 and left[2] > 200  # left is cyan
    assert tuple(still) == (255, 255, 255)  # no motion is white
    assert down[0] == 255 and down[2] == 0 and 100 < down[1] < 255  # down is orange-yellow
    assert up[2] == 255 and up[1] == 0  # up is blue-magenta
    assert tuple(beyond) == (191, 0, 0)  # beyond the scale: darkened
    assert colour_key(33).shape == (33, 33, 3)


def test_pictures_of_a_frame(swept, tmp_path):
    from nrff.data import sample_clip
    from nrff.eval.pictures import write_pictures

    rows = {(r["method"], r["point"]): r for r in load_rows(swept.results)}
    nrff_file = swept.results.parent / rows[("nrff", 17.0)]["bitstream"]
    siren_file = swept.results.parent / rows[("siren", 17.0)]["bitstream"]
    out = tmp_path / "fig.png"
    pictures = write_pictures(nrff_file, sample_clip(), 1, out, siren_file=siren_file, frames="0:10", device="cpu")
    assert [Path(f).name for f in pictures.files] == ["fig.png", "fig-sr.png", "fig-interp.png"]
    for f in pictures.files:
        assert Path(f).read_bytes()[:4] == b"\x89PNG"
        assert Path(f).with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"  # vector copy beside it
    titles = [p.title for p in pictures.panels[str(out)]]
    # ground truth, SIREN, nrff, 2 flows, the flow colour key, 2 warped references, alpha, residual, 2 error maps
    assert len(titles) == 12, titles
    assert titles[5].startswith("flow colour key")
    assert titles[0].startswith("ground truth") and titles[-1].startswith("|error| nrff")
    sr = pictures.panels[str(tmp_path / "fig-sr.png")]
    assert [p.image.shape[:2] for p in sr] == [(27, 64), (27, 64), (54, 128), (54, 128)]
    interp = pictures.panels[str(tmp_path / "fig-interp.png")]
    assert [p.title for p in interp][1] == "nrff at t = 1.5"
    with pytest.raises(InputError, match="key frame"):
        write_pictures(nrff_file, sample_clip(), 2, tmp_path / "key.png", frames="0:10", device="cpu")


def test_cli_picture_in_process(swept, tmp_path):
    from typer.testing import CliRunner

    from nrff.cli import app
    from nrff.data import sample_clip

    row = next(r for r in load_rows(swept.results) if r["method"] == "nrff")
    args = ["bench", "picture", str(swept.results.parent / row["bitstream"]), "--frame", "3", "--reference",
            str(sample_clip()), "--frames", "0:10", "--out", str(tmp_path / "p.png"), "--device", "cpu"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert (tmp_path / "p-interp.png").exists()
    done = CliRunner().invoke(app, args)  # outputs exist: one-line error
    assert done.exit_code == 2 and "already exists" in done.output


def test_a_stale_checkpoint_is_discarded(swept, tmp_path, torch_one_thread):
    """A checkpoint the sweep cannot resume from (here: garbage) is ours to discard."""
    from nrff.errors import NrffWarning

    results = tmp_path / "tiny.jsonl"
    lines = swept.results.read_bytes().splitlines(keepends=True)
    first = next(line for line in lines if json.loads(line)["kind"] == "nrff")
    results.write_bytes(b"".join(line for line in lines if line != first))
    shutil.copytree(bench.streams_folder(swept.results), bench.streams_folder(results))
    stream = results.parent / json.loads(first)["bitstream"]
    Path(str(stream) + ".ckpt").write_bytes(b"not a checkpoint")
    with pytest.warns(NrffWarning, match="cannot resume"):
        outcome = run_sweep(swept.config, results)
    assert outcome.computed == [row_key(json.loads(first))]
    assert not Path(str(stream) + ".ckpt").exists()


def test_a_missing_clip_fails_before_any_work(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('[[clips]]\npath = "nowhere"\n[[methods]]\nmethod = "x264"\n')
    with pytest.raises(InputError, match="clip nowhere: .*no such file"):
        run_sweep(SweepConfig.load(path), tmp_path / "r.jsonl")
    assert not (tmp_path / "r.jsonl").exists() and not (tmp_path / "r-streams").exists()


def test_anchor_matrix_compares_each_curve_with_each_anchor(swept, tmp_path):
    import bjontegaard

    from nrff.eval.report import write_report

    write_report(swept.results, tmp_path / "report")
    matrix = (tmp_path / "report" / "bd_vs_anchors.md").read_text()
    rows = load_rows(swept.results)
    curve = {m: sorted((r for r in rows if r["method"] == m), key=lambda r: r["bpp"]) for m in ("nrff", "x264")}
    expected = bjontegaard.bd_rate([r["bpp"] for r in curve["x264"]], [r["psnr"] for r in curve["x264"]],
                                   [r["bpp"] for r in curve["nrff"]], [r["psnr"] for r in curve["nrff"]],
                                   method="pchip", require_matching_points=False, min_overlap=0)
    line = next(l for l in matrix.splitlines() if l.startswith("| sample | nrff |"))
    assert f"{expected:+.2f} %" in line
    assert "| sample | x264 | n/a |" in matrix  # an anchor is not compared with itself
