"""Running rate-distortion sweeps (see :mod:`nrff.eval.sweep` for the sweep file): one results row
per run, appended as soon as it finishes, with its real bitstream beside the results file."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nrff import __version__
from nrff.errors import InputError, NrffWarning
from nrff.progress import Reporter

from nrff.eval.sweep import ANCHORS, MATCHED, STREAM_SUFFIX, ClipSpec, MethodSpec, Run, SweepConfig, row_key  # noqa: F401


def streams_folder(results: str | os.PathLike) -> Path:
    """Where a results file keeps its bitstreams: ``R-streams/`` beside ``R.jsonl``."""
    p = Path(results)
    return p.with_name(f"{p.stem}-streams")


def load_rows(results: str | os.PathLike) -> list[dict]:
    """The rows of a results file. A last line cut short by a kill is ignored (and
    dropped from the file by the next sweep); any other bad line is an error."""
    p = Path(results)
    if not p.exists():
        return []
    rows = []
    try:
        lines = p.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a results file (not UTF-8 text)") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # unterminated last line: an interrupted append
                continue
            raise InputError(f"{p}: line {i + 1} is not a JSON row") from None
    return rows


def _drop_partial_line(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _append_row(path: Path, row: dict) -> None:
    line = (json.dumps(row) + "\n").encode()
    with open(path, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Refuse a second sweep writing the same results file at the same time."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError(f"another sweep is writing {path}") from None
        yield


def git_commit() -> str | None:
    """The commit of the nrff source tree (None outside a git checkout or without git)."""
    here = Path(__file__).resolve().parent
    try:  # a copy installed into a venv inside some checkout is not that checkout's code
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "__init__.py"], cwd=here,
                                 capture_output=True, text=True, timeout=10)
        if tracked.returncode != 0:
            return None
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def git_dirty() -> bool | None:
    """Whether tracked files of the source tree differ from the commit (results may not match it)."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(done.stdout.strip()) if done.returncode == 0 else None


@dataclass
class SweepOutcome:
    """What a sweep did: keys computed now, keys already in the results file."""

    results: str
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)


def run_sweep(
    config: SweepConfig,
    results: str | os.PathLike,
    *,
    reporter: Reporter | None = None,
    device: str | None = None,
) -> SweepOutcome:
    """Run every run of ``config`` whose row is not in ``results`` yet; return what was done."""
    results = Path(results)
    if results.is_dir():
        raise InputError(f"{results} is a folder; give a results file name (e.g. results.jsonl)")
    if not results.parent.exists():
        raise InputError(f"{results.parent}: output folder does not exist")
    device = device or config.device
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"unknown device {device!r}; use auto, cpu or cuda")
    reporter = reporter or Reporter(False)
    check_clips(config)
    streams = streams_folder(results)
    runs = config.runs()
    outcome = SweepOutcome(str(results))
    provenance = {"version": __version__, "commit": git_commit(), "dirty": git_dirty(),
                  "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    with _exclusive(results):
        _drop_partial_line(results)
        done = {row_key(r): r for r in load_rows(results)}
        with reporter.task("sweep", len(runs), unit="runs") as update:
            for i, run in enumerate(runs):
                key = run.key
                if key in done:
                    outcome.skipped.append(key)
                    update(i + 1, status=f"{run.label} (done)")
                    continue
                update(i, status=run.label)
                streams.mkdir(exist_ok=True)
                target = None
                if run.matched is not None:
                    target = _matched_bpp(run, done)
                row = _run_one(run, streams / run.stream_name(), device, target, reporter.transient())
                row.update(provenance)
                row["bitstream"] = os.path.relpath(streams / run.stream_name(), results.parent)
                row["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
                _append_row(results, row)
                done[key] = row
                outcome.computed.append(key)
                update(i + 1, status=run.label)
    outcome.rows = [done[r.key] for r in runs]
    return outcome


def check_clips(config: SweepConfig) -> None:
    """Open every clip before any work, so that a typo fails now, not hours into a sweep."""
    from nrff.video import open_video

    for clip in config.clips:
        try:
            open_video(clip.path, frames=clip.frames)
        except InputError as exc:
            raise InputError(f"clip {clip.name}: {exc}") from None


def _matched_bpp(run: Run, done: dict[str, dict]) -> float:
    """The bpp of the row (with the current settings) that a SIREN run is sized to."""
    row = done.get(Run(run.clip, run.matched, run.point).key)
    if row is None:
        raise InputError(f"{run.label}: no {run.method.match} row at CRF {run.point:g} to take the target bpp from")
    return float(row["bpp"])


def _base_row(run: Run) -> dict:
    return {"clip": run.clip.name, "frame_range": run.clip.frames, "method": run.method.label,
            "settings": run.settings, "point": run.point, "kind": run.method.method,
            "clip_path": run.clip.path}


def _run_one(run: Run, stream: Path, device: str, target_bpp: float | None, reporter: Reporter) -> dict:
    if run.method.is_anchor:
        return _run_anchor(run, stream)
    return _run_nrff(run, stream, device, target_bpp, reporter)


def _run_nrff(run: Run, stream: Path, device: str, target_bpp: float | None, reporter: Reporter) -> dict:
    """Encode (resuming from a checkpoint a killed sweep left), then time a full decode of the file."""
    from nrff.api import encode
    from nrff.encoder.checkpoint import checkpoint_path

    config = run.method.encode_config(run.point, device, target_bpp=target_bpp)

    def attempt(resume: bool):
        return encode(run.clip.path, stream, config, frames=run.clip.frames, force=True, reporter=reporter,
                      resume=resume, checkpoint_seconds=60.0)

    ckpt = checkpoint_path(stream)
    if ckpt.exists():
        try:
            result = attempt(resume=True)
        except InputError as exc:  # e.g. left by a run on another device: ours to discard
            warnings.warn(f"{run.label}: cannot resume ({exc}); starting over", NrffWarning, stacklevel=2)
            result = attempt(resume=False)
    else:
        result = attempt(resume=False)
    decode_seconds = time_decode_nrff(stream, device)
    row = _base_row(run)
    row.update(
        crf=run.point, target_bpp=target_bpp, bytes=stream.stat().st_size, bpp=result.bpp, psnr=result.psnr,
        ssim=result.ssim, ms_ssim=result.ms_ssim, encode_seconds=result.encode_seconds,
        train_seconds=result.train_seconds, decode_seconds=decode_seconds, device=result.device,
        frames=result.frames, width=result.width, height=result.height,
        gops=[{k: g[k] for k in ("index", "start", "frames", "keyframe_bytes", "network_bytes", "units", "psnr")}
              for g in result.gops],
        psnr_per_frame=result.psnr_per_frame,
    )
    return row


def _run_anchor(run: Run, stream: Path) -> dict:
    from nrff.eval.baselines import run_baseline
    from nrff.video import open_video

    video = open_video(run.clip.path, frames=run.clip.frames)
    settings = run.method.anchor_settings(run.point)
    result = run_baseline(video, settings, stream_output=stream, force=True)
    decode_seconds = time_decode_anchor(stream, settings, result.width, result.height)
    row = _base_row(run)
    row.update(
        crf=run.point, target_bpp=None, bytes=stream.stat().st_size, bpp=result.bpp, psnr=result.psnr,
        ssim=result.ssim, ms_ssim=result.ms_ssim, encode_seconds=result.encode_seconds, train_seconds=None,
        decode_seconds=decode_seconds, device="cpu", frames=result.frames, width=result.width,
        height=result.height, gops=None, psnr_per_frame=result.psnr_per_frame,
    )
    return row


def time_decode_nrff(path: str | os.PathLike, device: str = "auto") -> float:
    """Seconds to read an .nrff file and render all its frames (``api.decode(...).frames()``)."""
    from nrff.api import decode

    _sync(device)
    started = time.perf_counter()
    for _ in decode(path, device=device).frames():
        pass
    _sync(device)
    return time.perf_counter() - started


def time_decode_anchor(path: str | os.PathLike, settings, width: int, height: int) -> float:
    """Seconds to read an anchor's stream and decode it to RGB frames, as its measurement does."""
    from nrff.video.colour import frame_to_rgb

    started = time.perf_counter()
    for frame in settings.decode(Path(path).read_bytes(), width, height):
        frame_to_rgb(frame, trust_tags=False)
    return time.perf_counter() - started


def _sync(device: str) -> None:
    import torch

    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()


__all__ = ["ClipSpec", "MethodSpec", "Run", "SweepConfig", "SweepOutcome", "load_rows", "row_key", "run_sweep",
           "streams_folder"]
