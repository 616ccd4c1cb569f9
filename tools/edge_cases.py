"""Input edge cases of ``nrff encode`` / ``nrff decode``: build them, run the CLI, print the matrix.

    python tools/edge_cases.py            # markdown table: input, behaviour, what the CLI printed
    python tools/edge_cases.py --keep DIR # keep the inputs and outputs in DIR

Every case is a real ``nrff encode INPUT -o OUT.nrff --preset fast --epochs 2
--device cpu -q`` (plus the case's options) in its own process; an input that
encodes is then decoded with ``nrff decode OUT.nrff -o OUT.y4m -q``. A bad
input must give exit status 2, exactly one stderr line starting with
``error:`` and no file at (or beside) the output path; a converted input
exits 0 with ``warning:`` lines. ``tests/test_edge_cases.py`` checks the same
cases in-process. The figures in docs/robustness.md come from this script.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

ENCODE = ["--preset", "fast", "--epochs", "2", "--device", "cpu", "-q"]


@dataclass(frozen=True)
class Case:
    name: str
    input: str  # path relative to the inputs folder
    options: list[str] = field(default_factory=list)
    expect: str = "ok"  # "ok", "warning" or "error"
    words: str = ""  # the warning/error line contains this
    frames: int | None = None  # frames the decoded video must have


CASES = [
    Case("one frame", "one-frame", frames=1),
    Case("one frame, nrff-single", "one-frame", ["--method", "nrff-single"], frames=1),
    Case("one frame, siren", "one-frame", ["--method", "siren", "--target-bpp", "2"], frames=1),
    Case("3 frames, shorter than one GOP (5)", "three-frames", frames=3),
    Case("odd size 33x17, AV1 key frames (default; coded padded)", "odd-33x17", frames=4),
    Case("odd size 33x17, x264 yuv444p key frames", "odd-33x17", ["--keyframe-codec", "x264"], frames=4),
    Case("odd size 33x17, x264 yuv420p key frames", "odd-33x17", ["--keyframe-codec", "x264", "--keyframe-pix-fmt", "yuv420p"],
         "error", "--keyframe-pix-fmt yuv444p"),
    Case("16x16 frames", "tiny-16x16", frames=4),
    Case("2x2 frames", "tiny-2x2", expect="error", words="at least 11x11"),
    Case("11x11 frames", "tiny-11x11", frames=3),
    Case("grayscale PNGs (8-bit)", "gray", expect="warning", words="grayscale image converted to RGB", frames=4),
    Case("grayscale PNGs (16-bit)", "gray16", expect="warning", words="16-bit grayscale image converted", frames=4),
    Case("RGB PNGs (16-bit)", "rgb16", expect="warning", words="16-bit RGB image converted", frames=4),
    Case("RGBA PNGs", "rgba", expect="warning", words="alpha channel dropped", frames=4),
    Case("palette PNGs", "palette", frames=4),
    Case("variable frame rate .mkv", "vfr.mkv", expect="warning", words="variable frame rate", frames=6),
    Case("variable frame rate .mp4", "vfr.mp4", expect="warning", words="variable frame rate", frames=6),
    Case("raw .yuv --size 48x32", "whole.yuv", ["--size", "48x32"], frames=3),
    Case("frame size changes (PNG folder)", "mixed-sizes", expect="error", words="all frames must have the same size"),
    Case("frame size changes (raw .264)", "size-change.264", expect="error", words="all frames must have the same size"),
    Case("frame size changes (.mkv)", "size-change.mkv", expect="error", words="all frames must have the same size"),
    Case(".yuv not a whole number of frames", "ragged.yuv", ["--size", "48x32"], "error", "not a whole number"),
    Case(".yuv without --size", "whole.yuv", [], "error", "give its size with --size"),
    Case("absurd --size 100000x100000", "whole.yuv", ["--size", "100000x100000"], "error", "exceeds the supported maximum"),
    Case("--size 0x32", "whole.yuv", ["--size", "0x32"], "error", "at least 1"),
    Case("folder without images", "no-images", expect="error", words="no image files"),
    Case("empty folder", "empty-folder", expect="error", words="the folder is empty"),
    Case("empty .mp4", "empty.mp4", expect="error", words="the file is empty"),
    Case("garbage .mp4", "garbage.mp4", expect="error", words="cannot open as a video"),
    Case("missing input", "does-not-exist", expect="error", words="no such file"),
    Case("--frames past the end", "three-frames", ["--frames", "2:9"], "error", "only 3 frames"),
]


def _clip(width: int, height: int, frames: int) -> np.ndarray:
    """Frames of the bundled clip, resized with PIL (not nrff)."""
    from PIL import Image

    from nrff.data import sample_clip

    files = sorted(sample_clip().glob("*.png"))[:frames]
    out = []
    for f in files:
        with Image.open(f) as im:
            out.append(np.asarray(im.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)))
    return np.stack(out)


def _folder(path: Path, frames, convert=None) -> Path:
    from PIL import Image

    path.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, start=1):
        im = Image.fromarray(np.ascontiguousarray(frame))
        (convert(im) if convert else im).save(path / f"frame_{i:04d}.png")
    return path


def _png16_rgb(path: Path, frames) -> Path:
    """16-bit-per-channel RGB PNGs (PIL cannot write them; FFmpeg's PNG encoder can)."""
    import av

    path.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, start=1):
        deep = av.VideoFrame.from_ndarray(frame.astype(np.uint16) * 257, format="rgb48le")
        with av.open(str(path / f"frame_{i:04d}.png"), "w", format="image2") as c:
            s = c.add_stream("png", rate=1)
            s.width, s.height, s.pix_fmt = frame.shape[1], frame.shape[0], "rgb48be"
            for packet in list(s.encode(deep)) + list(s.encode(None)):
                c.mux(packet)
    return path


def _vfr(path: Path, frames, durations_ms) -> Path:
    """H.264 in a container with irregular timestamps (variable frame rate)."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for frame, duration in zip(frames, durations_ms):
            f = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = pts, Fraction(1, 1000)
            pts += duration
            for packet in s.encode(f):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


def _h264_packets(frames, start: int):
    import av

    h, w = frames.shape[1:3]
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt, cc.time_base = w, h, "yuv420p", Fraction(1, 25)
    cc.options = {"x264-params": "repeat-headers=1"}  # parameter sets in-band, so a stream can change size
    packets = []
    for i, frame in enumerate(frames):
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="yuv420p")
        f.pts = start + i
        packets += list(cc.encode(f))
    return packets + list(cc.encode(None))


def _size_change(path: Path, first, second) -> Path:
    """A video whose frames change size mid-stream: raw Annex-B (.264) or muxed (.mkv)."""
    import av

    parts = [_h264_packets(first, 0), _h264_packets(second, len(first))]
    if path.suffix == ".264":
        path.write_bytes(b"".join(bytes(p) for part in parts for p in part))
        return path
    with av.open(str(path), "w") as c:
        s = c.add_stream("h264", rate=25)
        s.width, s.height = first.shape[2], first.shape[1]
        for part in parts:
            for p in part:
                p.stream, p.time_base = s, Fraction(1, 25)
                c.mux(p)
    return path


def make_inputs(root: str | os.PathLike) -> list[Case]:
    """Write every edge-case input under ``root``; return the cases."""
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = _clip(48, 32, 6)
    _folder(root / "one-frame", base[:1])
    _folder(root / "three-frames", base[:3])
    _folder(root / "odd-33x17", _clip(33, 17, 4))
    _folder(root / "tiny-16x16", _clip(16, 16, 4))
    _folder(root / "tiny-2x2", _clip(2, 2, 3))
    _folder(root / "tiny-11x11", _clip(11, 11, 3))
    _folder(root / "gray", base[:4], lambda im: im.convert("L"))
    _folder(root / "gray16", base[:4], lambda im: Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257))
    _png16_rgb(root / "rgb16", base[:4])
    _folder(root / "rgba", base[:4], lambda im: im.convert("RGBA"))
    _folder(root / "palette", base[:4], lambda im: im.convert("P"))
    _vfr(root / "vfr.mkv", base, [40, 10, 100, 33, 7, 60])
    _vfr(root / "vfr.mp4", base, [40, 10, 100, 33, 7, 60])
    mixed = _folder(root / "mixed-sizes", base[:4])
    _folder(root / "_tmp", [base[2, :24, :40]])
    shutil.move(root / "_tmp" / "frame_0001.png", mixed / "frame_0003.png")
    (root / "_tmp").rmdir()
    small = _clip(32, 16, 6)
    _size_change(root / "size-change.264", base[:3], small[3:])
    _size_change(root / "size-change.mkv", base[:3], small[3:])
    frame_bytes = 48 * 32 * 3 // 2
    (root / "whole.yuv").write_bytes(bytes(range(256)) * (3 * frame_bytes // 256))
    (root / "ragged.yuv").write_bytes(b"\x80" * (2 * frame_bytes + 100))
    (root / "no-images").mkdir(exist_ok=True)
    (root / "no-images" / "notes.txt").write_text("not a frame\n")
    (root / "no-images" / "clip.bin").write_bytes(bytes(64))
    (root / "empty-folder").mkdir(exist_ok=True)
    (root / "empty.mp4").write_bytes(b"")
    (root / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 500)
    return CASES


# --------------------------------------------------------------------------- running the real CLI

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def nrff_command() -> list[str]:
    local = Path(sys.executable).with_name("nrff")
    return [str(local)] if local.exists() else [sys.executable, "-m", "nrff.cli"]


def run_cli(args: list[str], cwd: str | os.PathLike | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NRFF_DEBUG")}
    env.update(NO_COLOR="1", OMP_NUM_THREADS="1", COLUMNS="200")
    done = subprocess.run([*nrff_command(), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)
    done.stdout, done.stderr = ANSI.sub("", done.stdout), ANSI.sub("", done.stderr)
    return done


def run_case(case: Case, inputs: Path, outputs: Path) -> dict:
    """Encode (and decode) one case with the real CLI; describe what happened."""
    slug = re.sub(r"[^a-z0-9]+", "-", case.name.lower()).strip("-")
    out = outputs / f"{slug}.nrff"
    done = run_cli(["encode", inputs / case.input, "-o", out, *ENCODE, *case.options])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    row = {"case": case, "status": done.returncode, "lines": lines, "output": out.exists(),
           "leftovers": sorted(p.name for p in outputs.iterdir() if p.name.startswith((f".{slug}.", f"{slug}.")) and p != out),
           "traceback": "Traceback" in done.stderr + done.stdout, "decoded": None, "decode_lines": []}
    if done.returncode == 0:
        video = outputs / f"{slug}.y4m"
        dec = run_cli(["decode", out, "-o", video, "-q"])
        row["decode_status"] = dec.returncode
        row["decode_lines"] = [line for line in dec.stderr.splitlines() if line.strip()]
        if dec.returncode == 0:
            from nrff.video import open_video

            info = open_video(video).info
            row["decoded"] = (info.frames, info.width, info.height)
    return row


def verdict(row: dict) -> str:
    """'' when the case behaved as expected, else what went wrong."""
    case, lines = row["case"], row["lines"]
    if row["traceback"]:
        return "traceback"
    if case.expect == "error":
        if row["status"] != 2 or len(lines) != 1 or not lines[0].startswith("error:") or case.words not in lines[0]:
            return f"expected one error line with {case.words!r}"
        if row["output"] or row["leftovers"]:
            return f"left {row['leftovers'] or 'the output'} behind"
        return ""
    if row["status"] != 0 or not row["output"]:
        return "did not encode"
    if any(line.startswith("error:") for line in lines):
        return "error line"
    if case.expect == "warning" and not any(line.startswith("warning:") and case.words in line for line in lines):
        return f"no warning with {case.words!r}"
    if case.expect == "ok" and lines:
        return "unexpected output on stderr"
    if row.get("decode_status") != 0 or (case.frames is not None and row["decoded"][0] != case.frames):
        return "did not decode"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, default=None, help="write inputs and outputs here (default: a temporary folder)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nrff-edge-"))
    try:
        inputs, outputs = root / "inputs", root / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        cases = make_inputs(inputs)
        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(lambda c: run_case(c, inputs, outputs), cases))
        print("| input | behaviour | what the CLI prints (stderr) |")
        print("| --- | --- | --- |")
        bad = 0
        for row in rows:
            case, problem = row["case"], verdict(row)
            bad += bool(problem)
            opts = f" `{' '.join(case.options)}`" if case.options else ""
            if case.expect == "error":
                behaviour = f"refused, exit {row['status']}, no output"
            else:
                frames, w, h = row["decoded"] or (0, 0, 0)
                behaviour = f"encodes (exit {row['status']}); decodes to {frames} frame{'s' if frames != 1 else ''} of {w}x{h}"
            seen = {}
            for line in row["lines"] + row["decode_lines"]:  # a warning repeated per frame is shown once, counted
                key = re.sub(r"frame_\d+", "frame_N", line)
                seen[key] = seen.get(key, 0) + 1
            printed = "<br>".join(f"`{k}`" + (f" (x{n})" if n > 1 else "") for k, n in seen.items()) or "(nothing)"
            printed = printed.replace(str(inputs) + "/", "").replace(str(outputs) + "/", "")
            print(f"| {case.name}{opts} | {behaviour}{' **' + problem + '**' if problem else ''} | {printed} |")
        print(f"\n{len(rows)} cases, {bad} unexpected")
        return 1 if bad else 0
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
