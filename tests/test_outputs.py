"""Output safety: no command destroys a file it was not asked to write, leaves a partial output
under the final name, or reports a file problem as an internal error.

Outputs equal to the input or to each other (also through symlinks and hard links) are refused
before any work; a read-only folder is refused before training; SIGTERM during a PNG-folder
decode leaves neither the folder nor temporaries; a second encode to the same output fails at
once naming the first; a checkpoint that cannot be written only warns; a full disk at the
final write is one line and exit 2. Plus the small command-line checks: --crf, --seed, --fps,
--size, hostile and truncated .y4m headers, unreadable inputs.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nrff
from helpers import write_clip
from nrff.cli import app
from nrff.errors import InputError, NrffWarning, OutputError
from nrff.outputs import OutputLock, check_distinct, interrupts_on_signals, lock_path, same_file
from nrff.video import open_video
from nrff.video.writer import VideoWriter, write_video

FAST = ["--preset", "fast", "--epochs", "2", "--device", "cpu", "-q"]
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _cli(*args):
    """Run the CLI in-process: (exit status, stderr lines)."""
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"})
    text = result.stderr
    assert "Traceback" not in result.output + text, result.output + text
    return result.exit_code, [line for line in ANSI.sub("", text).splitlines() if line.strip()]


def _one_error(status, lines, status_expected=2):
    assert status == status_expected, lines
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and "internal error" not in lines[-1], lines
    return errors[0]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NRFF_DEBUG", "NRFF_LOG_INTERVAL")}
    env.update(NO_COLOR="1", OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    clip = root / "clip"
    write_clip(clip, frames=6)
    y4m = root / "clip.y4m"
    write_video(y4m, open_video(clip))
    encoded = root / "a.nrff"
    nrff.encode(clip, encoded, nrff.EncodeConfig.from_preset("fast", epochs=2, device="cpu"))
    return {"root": root, "clip": clip, "y4m": y4m, "file": encoded}


def _leftovers(folder: Path, name: str) -> list[str]:
    """Temporaries of an output ``name`` in ``folder`` (hidden .NAME.* files and folders, NAME.lock)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}.") or p.name == f"{name}.lock")


# ------------------------------------------------------------------ outputs that are inputs or each other

def test_report_equal_to_output_is_refused_before_any_work(files, tmp_path, monkeypatch):
    import nrff.encoder.pipeline as pipeline

    def no_work(*args, **kwargs):  # pragma: no cover - reached only if the check is missing
        raise AssertionError("encode started")

    monkeypatch.setattr(pipeline, "_encode", no_work)
    out = tmp_path / "r.nrff"
    out.write_bytes(b"the user's file")
    for extra in ([], ["--force"]):
        line = _one_error(*_cli("encode", files["clip"], "-o", out, "--report", out, *FAST, *extra))
        assert "both -o and --report" in line
        assert out.read_bytes() == b"the user's file"
    link = tmp_path / "link.json"
    link.symlink_to(out)  # the same file under another name
    line = _one_error(*_cli("encode", files["clip"], "-o", out, "--report", link, *FAST, "--force"))
    assert "both -o and --report" in line and out.read_bytes() == b"the user's file"
    # baseline: the reconstruction and the report
    rec = tmp_path / "rec.y4m"
    rec.write_bytes(b"keep")
    line = _one_error(*_cli("baseline", files["clip"], "-o", rec, "--report", rec, "-y", "-q"))
    assert "both -o and --report" in line and rec.read_bytes() == b"keep"


@pytest.mark.parametrize("alias", ["same", "symlink", "hardlink"])
def test_output_equal_to_input_is_refused_and_the_input_untouched(files, tmp_path, alias):
    source = tmp_path / "v.y4m"
    source.write_bytes(files["y4m"].read_bytes())
    original = source.read_bytes()
    target = {"same": source, "symlink": tmp_path / "s.y4m", "hardlink": tmp_path / "h.y4m"}[alias]
    if alias == "symlink":
        target.symlink_to(source)
    elif alias == "hardlink":
        os.link(source, target)
    for args in (["encode", source, "-o", target, *FAST, "--force"],
                 ["baseline", source, "-o", target, "-y", "-q"],
                 ["encode", source, "-o", tmp_path / "x.nrff", "--report", target, *FAST, "--force"]):
        line = _one_error(*_cli(*args))
        assert "is the input" in line and "destroy" in line, line
        assert source.read_bytes() == original
    # decode: the .nrff input given as the output
    nrff_in = tmp_path / "a.nrff"
    nrff_in.write_bytes(files["file"].read_bytes())
    out = {"same": tmp_path / "same.y4m", "symlink": tmp_path / "sl.y4m", "hardlink": tmp_path / "hl.y4m"}[alias]
    if alias == "symlink":
        out.symlink_to(nrff_in)
    elif alias == "hardlink":
        os.link(nrff_in, out)
    if alias != "same":
        line = _one_error(*_cli("decode", nrff_in, "-o", out, "-y", "-q", "--device", "cpu"))
        assert "is the input" in line and nrff_in.read_bytes() == files["file"].read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_same_file_and_check_distinct(tmp_path):
    a = tmp_path / "a"
    a.write_bytes(b"x")
    (tmp_path / "l").symlink_to(a)
    os.link(a, tmp_path / "h")
    assert same_file(a, tmp_path / "l") and same_file(a, tmp_path / "h") and same_file(a, tmp_path / "sub" / ".." / "a")
    assert not same_file(a, tmp_path / "b")
    assert same_file(tmp_path / "new", tmp_path / "." / "new")  # neither exists: the same resolved path
    check_distinct({"input": "-"}, {"-o": "-", "--report": None})  # stdin/stdout and missing ones are skipped
    with pytest.raises(InputError, match="is the input"):
        check_distinct({"input": a}, {"-o": tmp_path / "h"})


# ------------------------------------------------------------------ writable before any work

def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder nobody may write into: a read-only folder for a normal user; as root (who may
    write anywhere) a kernel folder, if one refuses writes here."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    for candidate in (Path("/sys"), Path("/proc")):
        try:
            fd, probe = tempfile.mkstemp(dir=candidate)
        except OSError:
            return candidate
        os.close(fd)  # pragma: no cover - a writable /sys: clean up and try the next
        os.unlink(probe)
    pytest.skip("no folder refuses root's writes here")  # pragma: no cover


def test_a_read_only_output_folder_is_refused_before_training(files, tmp_path, monkeypatch):
    import nrff.encoder.pipeline as pipeline

    def no_work(*args, **kwargs):  # pragma: no cover - reached only if the check is missing
        raise AssertionError("encode started")

    monkeypatch.setattr(pipeline, "_encode", no_work)
    folder = _unwritable_folder(tmp_path)
    try:
        for args in (["encode", files["clip"], "-o", folder / "x.nrff", *FAST],
                     ["encode", files["clip"], "-o", tmp_path / "y.nrff", "--report", folder / "r.json", *FAST],
                     ["decode", files["file"], "-o", folder / "x.y4m", "-q"],
                     ["decode", files["file"], "-o", folder / "frames", "-q"],
                     ["baseline", files["clip"], "-o", folder / "x.mp4", "-q"]):
            line = _one_error(*_cli(*args))
            assert f"{folder}: cannot write there" in line, line
        line = _one_error(*_cli("encode", files["clip"], "-o", tmp_path / "missing" / "x.nrff", *FAST))
        assert "output folder does not exist" in line
    finally:
        if folder.is_relative_to(tmp_path):
            folder.chmod(0o755)
    assert not (tmp_path / "y.nrff").exists()


def test_a_full_disk_at_the_final_write_is_one_line_and_exit_2(files, tmp_path, monkeypatch):
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "full.nrff"
    line = _one_error(*_cli("encode", files["clip"], "-o", out, *FAST, "--checkpoint-every", "0"))
    assert "full.nrff: cannot write (No space left on device)" in line
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no partial file, no lock, no checkpoint


def test_a_checkpoint_that_cannot_be_written_warns_once_and_the_encode_finishes(files, tmp_path, monkeypatch):
    import nrff.encoder.checkpoint as checkpoint

    calls = []

    def full(*args, **kwargs):
        calls.append(1)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.np, "savez", full)
    out = tmp_path / "c.nrff"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = nrff.encode(files["clip"], out, nrff.EncodeConfig.from_preset("fast", epochs=6, device="cpu"),
                             checkpoint_seconds=1e-9, verify=False)
    mine = [w for w in caught if issubclass(w.category, NrffWarning) and "checkpoint" in str(w.message)]
    assert len(calls) == 1 and len(mine) == 1, [str(w.message) for w in caught]
    assert "No space left on device" in str(mine[0].message) and "carries on" in str(mine[0].message)
    assert out.read_bytes() and result.bytes == out.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.nrff"]


# ------------------------------------------------------------------ one encode at a time per output

def test_a_second_encode_to_the_same_output_fails_at_once_naming_the_first(files, tmp_path):
    out = tmp_path / "busy.nrff"
    first = subprocess.Popen(
        [sys.executable, "-m", "nrff", "encode", str(files["clip"]), "-o", str(out), "--preset", "fast",
         "--epochs", "5000", "--device", "cpu", "-q", "--checkpoint-every", "0"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not lock_path(out).exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read().decode()
            time.sleep(0.05)
        started = time.monotonic()
        line = _one_error(*_cli("encode", files["clip"], "-o", out, *FAST, "--force"))
        assert time.monotonic() - started < 30  # at once: no training, no waiting for the first
        assert f"pid {first.pid}" in line and "another nrff encode" in line, line
        first.send_signal(signal.SIGTERM)  # the first cleans up after itself
        _, err = first.communicate(timeout=120)
        assert first.returncode == 128 + signal.SIGTERM, err.decode()
    finally:
        if first.poll() is None:  # pragma: no cover
            first.kill()
            first.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no lock, no checkpoint, no temporary


def test_the_lock_is_exclusive_and_removed_on_release(tmp_path):
    out = tmp_path / "x.nrff"
    with OutputLock(out) as held:
        assert lock_path(out).read_text().strip() == str(os.getpid())
        with pytest.raises(InputError, match=f"pid {os.getpid()}"):
            OutputLock(out).acquire()  # another open file description: refused, not waited for
        assert held.fd is not None
    assert not lock_path(out).exists()
    lock_path(out).write_text("12345\n")  # left by a killed encode: no obstacle
    with OutputLock(out):
        assert lock_path(out).read_text().strip() == str(os.getpid())
    assert not lock_path(out).exists()
    lock_path(out).write_text("the user's notes")  # a file of the user's under that name is left alone
    with pytest.raises(OutputError, match="not an nrff lock file"):
        OutputLock(out).acquire()
    assert lock_path(out).read_text() == "the user's notes"


# ------------------------------------------------------------------ atomic outputs, signals

def test_sigterm_during_a_png_folder_decode_leaves_no_partial_folder(files, tmp_path):
    out = tmp_path / "frames"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nrff", "decode", str(files["file"]), "-o", str(out), "--device", "cpu",
         "--fps-factor", "40", "--scale", "4"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not any(p.is_dir() and any(p.glob("frame_*.png")) for p in tmp_path.glob(".frames.*")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # pragma: no cover
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()
    assert "terminated" in err.decode() and "Traceback" not in err.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the folder nor a temporary


def test_interrupts_on_signals_raises_and_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with interrupts_on_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # pragma: no cover - interrupted
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize("suffix", ["", ".y4m", ".yuv", ".mp4"])
def test_an_aborted_write_leaves_nothing_and_a_finished_one_no_temporary(tiny_frames, tmp_path, suffix):
    out = tmp_path / f"o{suffix}"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 64, 48, 24) as writer:
            writer.write(tiny_frames[0])
            assert out.exists() is False  # nothing under the final name while writing
            raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    write_video(out, tiny_frames[:2], 24)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    assert open_video(out, size="64x48" if suffix == ".yuv" else None).info.frames == 2


def test_a_png_folder_is_replaced_only_with_force_and_only_when_it_holds_frames(tiny_frames, tmp_path):
    out = tmp_path / "frames"
    write_video(out, tiny_frames[:3], 24)
    with pytest.raises(InputError, match="not empty"):
        write_video(out, tiny_frames[:2], 24)
    write_video(out, tiny_frames[:2], 24, force=True)  # replaced as a whole: no third frame left over
    assert sorted(p.name for p in out.iterdir()) == ["frame_0001.png", "frame_0002.png"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="other than frames"):
        write_video(out, tiny_frames[:2], 24, force=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]
    empty = tmp_path / "empty"
    empty.mkdir()
    write_video(empty, tiny_frames[:1], 24)  # an empty folder needs no --force
    assert [p.name for p in empty.iterdir()] == ["frame_0001.png"]


def test_write_errors_are_output_errors(tiny_frames, tmp_path, monkeypatch):
    from PIL import Image

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(OutputError, match="No space left on device"):
        write_video(tmp_path / "f", tiny_frames[:2], 24)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ------------------------------------------------------------------ small command-line checks

@pytest.mark.parametrize("crf", ["-5", "nan", "99", "inf"])
def test_decode_crf_out_of_range_is_one_line(files, tmp_path, crf):
    line = _one_error(*_cli("decode", files["file"], "-o", tmp_path / "x.mp4", f"--crf={crf}", "-q"))
    assert "--crf must be a number from 0 to 51" in line
    assert not list(tmp_path.iterdir())


def test_decode_crf_needs_a_video_container(files, tmp_path):
    line = _one_error(*_cli("decode", files["file"], "-o", tmp_path / "x.y4m", "--crf", "20", "-q"))
    assert "applies to .mp4/.mkv/.mov outputs only" in line


@pytest.mark.parametrize("seed", ["99999999999999999999999", str(2**63), "-1"])
def test_a_seed_out_of_range_is_one_line(files, tmp_path, seed):
    line = _one_error(*_cli("encode", files["clip"], "-o", tmp_path / "s.nrff", *FAST, f"--seed={seed}"))
    assert "--seed must be a whole number from 0 to 2**63 - 1" in line


def test_size_has_a_total_pixel_limit(files, tmp_path):
    raw = tmp_path / "x.yuv"
    raw.write_bytes(b"\0" * 16)
    line = _one_error(*_cli("encode", raw, "-o", tmp_path / "s.nrff", *FAST, "--size", "16384x16384"))
    assert "more than the supported maximum of 67 M pixels per frame" in line
    line = _one_error(*_cli("decode", files["file"], "-o", tmp_path / "x.y4m", "--size", "16000x8000", "-q"))
    assert "67 M pixels" in line


@pytest.mark.parametrize("fps", ["2.3e-10", "0", "-24", "1001", "nan", "inf"])
def test_fps_out_of_range_is_refused_not_replaced(files, tmp_path, fps):
    line = _one_error(*_cli("encode", files["clip"], "-o", tmp_path / "f.nrff", *FAST, f"--fps={fps}"))
    assert "outside the supported range (0.001 to 1000 fps)" in line


def _y4m(header: bytes, frames: int = 1, frame_bytes: int = 64 * 48 * 3 // 2, cut: int = 0) -> bytes:
    data = header + b"\n" + (b"FRAME\n" + b"\x80" * frame_bytes) * frames
    return data[: len(data) - cut]


@pytest.mark.parametrize(("header", "message"), [
    (b"YUV4MPEG2 W64 H48 F1:4294967295", "outside the supported range"),
    (b"YUV4MPEG2 W64 H48 F24:0", "is not N:D with D > 0"),
    (b"YUV4MPEG2 W0 H48 F24:1", "at least 1"),
    (b"YUV4MPEG2 W999999999 H48 F24:1", "per side"),
    (b"YUV4MPEG2 W-64 H48 F24:1", "not a positive whole number"),
    (b"YUV4MPEG2 H48 F24:1", "no width"),
    (b"YUV4MPEG2 W64 H48 F24:1 Cweird", "unsupported .y4m colour space"),
    (b"YUV4MPEG2 W64 H48 F24:1 Ix", "interlacing"),
    (b"YUV4MPEG2 W64 W64 H48", "given twice"),
    (b"YUV4MPEG2 W64 H48 Q1", "unknown field"),
    (b"YUV4MPEG2 W64 H48 F24:1" + b" X" * 600, "no end of line"),
    (b"YUV4MPEG2 W64 H48 F24:1 C\xff", "not ASCII"),
])
def test_hostile_y4m_headers_are_one_line(tmp_path, header, message):
    path = tmp_path / "h.y4m"
    path.write_bytes(_y4m(header))
    line = _one_error(*_cli("encode", path, "-o", tmp_path / "h.nrff", *FAST))
    assert message in line and "Device or resource busy" not in line, line


def test_a_truncated_last_y4m_frame_is_an_error(files, tmp_path):
    path = tmp_path / "t.y4m"
    path.write_bytes(files["y4m"].read_bytes()[:-100])
    line = _one_error(*_cli("encode", path, "-o", tmp_path / "t.nrff", *FAST))
    assert "frame 5 is truncated" in line and "cut short" in line
    path.write_bytes(files["y4m"].read_bytes() + b"FRAMEjunk")
    line = _one_error(*_cli("compare", path, files["y4m"]))
    assert "frame 6 has no FRAME marker" in line
    good = open_video(files["y4m"])  # a whole file: counted by our own reading of the header
    assert good.info.frames == 6 and good.info.fps == 25 and len(good.read_all()) == 6


def test_a_y4m_stream_on_stdin_is_checked_the_same_way(files, tmp_path):
    data = files["y4m"].read_bytes()[:-10]
    done = subprocess.run([sys.executable, "-m", "nrff", "encode", "-", "-o", str(tmp_path / "s.nrff"), *FAST],
                          input=data, capture_output=True, env=_env(), timeout=300)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "truncated" in lines[0], lines


def test_unreadable_inputs_are_one_line(files, tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p).endswith("a.nrff") or
                        str(p).endswith("clip.y4m") else real_access(p, mode, **kw))
    line = _one_error(*_cli("encode", files["y4m"], "-o", tmp_path / "u.nrff", *FAST))
    assert "permission denied" in line
    folder = tmp_path / "frames"
    folder.mkdir()
    real_iterdir = Path.iterdir

    def denied(self):
        if self == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", denied)
    line = _one_error(*_cli("encode", folder, "-o", tmp_path / "u.nrff", *FAST))
    assert "cannot read the folder (Permission denied)" in line


def test_an_os_error_nobody_named_is_still_one_line_and_exit_2(files, tmp_path, monkeypatch):
    import nrff.api

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/somewhere/a.nrff")

    monkeypatch.setattr(nrff.api, "info", denied)
    line = _one_error(*_cli("info", files["file"]))
    assert line == "error: /somewhere/a.nrff: Permission denied"


def test_info_counts_a_predicted_key_frame_stream_for_its_first_gop(files, tmp_path):
    out = tmp_path / "p.nrff"
    nrff.encode(files["clip"], out, nrff.EncodeConfig.from_preset("fast", epochs=2, device="cpu", gop=2,
                                                                  keyframe_mode="predicted"), verify=False)
    data = nrff.info(out)
    kseg = [s for s in data["sections"] if s["tag"] == "KSEG"]
    assert kseg and data["keyframe_bytes"] > 0
    assert sum(g["keyframe_bytes"] for g in data["gop_table"]) == data["keyframe_bytes"]
    assert data["gop_table"][0]["keyframe_bytes"] == data["keyframe_bytes"]  # one stream, from GOP 0


def test_no_path_parameter_is_checked_by_the_argument_parser(files, tmp_path, monkeypatch):
    """The argument parser's own readability check prints a four-line usage box; every path is
    left to nrff, which says what is wrong in one line (or, here, where only os.access is
    fooled, reads the file)."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode == os.R_OK else real_access(p, mode, **kw))
    for args in (["info", files["file"]], ["decode", files["file"], "-o", tmp_path / "d.y4m", "-q"],
                 ["compare", files["y4m"], files["y4m"], "-q"], ["baseline", files["y4m"], "-q"],
                 ["bench", "report", files["file"], "-o", tmp_path / "rep", "-q"],
                 ["bench", "picture", files["file"], "--frame", "1", "--reference", files["clip"], "-o",
                  tmp_path / "p.png", "-q"]):
        status, lines = _cli(*args)
        assert not any(line.startswith(("Usage:", "Try ")) for line in lines), (args, lines)
        assert status in (0, 2), (args, lines)
