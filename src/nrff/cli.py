"""The ``nrff`` command line: parse, call the Python API, print.

Every user error becomes one line on stderr (``error: ...``) and exit status 2;
an unexpected internal error is reported in one line too (exit status 3) and
shows its traceback only with ``NRFF_DEBUG=1``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from nrff.errors import NrffError
from nrff.fsutil import check_output

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="nrff: a neural video codec (Neural Residual Flow Fields).",
)
out = Console()
err = Console(stderr=True)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    err.print(f"[yellow]warning:[/] {message}", highlight=False)


def command(fn, group: typer.Typer | None = None, name: str | None = None):
    """Register ``fn`` as a command (of ``group``, default the top level) that reports errors in one line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        warnings.showwarning = _show_warning
        try:
            return fn(*args, **kwargs)
        except NrffError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:  # noqa: BLE001 - last line of defence against tracebacks
            if os.environ.get("NRFF_DEBUG"):
                raise
            err.print(
                f"[red]internal error:[/] {type(exc).__name__}: {exc} (set NRFF_DEBUG=1 for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(3) from None

    return (group or app).command(name)(wrapper)


def _write_report(path: Optional[Path], report: dict | list, force: bool) -> None:
    if path is None:
        return
    from nrff.fsutil import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(report, indent=2) + "\n").encode(), force=force)


def _parse_crfs(text: str) -> list[float]:
    from nrff.errors import InputError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"bad CRF list {text!r}: expected numbers separated by commas") from None
    if not values:
        raise InputError("no CRF given")
    return values


@command
def baseline(
    input: Annotated[Path, typer.Argument(help="Video: image folder, container/stream, or .yuv (with --size).")],
    codec: Annotated[str, typer.Option(help="x264, x265 or svtav1 (SVT-AV1).")] = "x264",
    preset: Annotated[Optional[str], typer.Option(help="Encoder preset (default: medium for x264/x265, 4 for svtav1).")] = None,
    gop: Annotated[int, typer.Option(help="Closed GOP length (keyint = min-keyint).")] = 5,
    crf: Annotated[str, typer.Option(help="CRF, or several separated by commas for an RD sweep.")] = "23",
    pix_fmt: Annotated[str, typer.Option("--pix-fmt", help="yuv420p or yuv444p.")] = "yuv420p",
    bframes: Annotated[bool, typer.Option("--bframes/--no-bframes", help="B-frames (off = low delay).")] = True,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write the reconstruction here.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write a JSON report here.")] = None,
    frames: Annotated[Optional[str], typer.Option(help="Frame range START:END (0-based, END exclusive).")] = None,
    size: Annotated[Optional[str], typer.Option(help="WxH of a raw .yuv input.")] = None,
    force: Annotated[bool, typer.Option(help="Replace existing outputs.")] = False,
):
    """Code a clip with x264/x265 at a closed GOP and measure it like nrff."""
    from dataclasses import replace

    from nrff.errors import InputError
    from nrff.eval.baselines import anchor_settings, run_baseline
    from nrff.video import open_video
    from nrff.video.writer import VideoWriter

    crfs = _parse_crfs(crf)
    if output is not None and len(crfs) > 1:
        raise InputError("-o writes one reconstruction; give a single --crf")
    video = open_video(input, frames=frames, size=size)
    settings = anchor_settings(codec, crfs[0], preset, gop, pix_fmt, bframes)
    settings.validate(video.info.width, video.info.height)
    if report is not None:
        check_output(report, force)  # before any work
    results = []
    for value in crfs:
        s = replace(settings, crf=value)
        if output is not None:
            with VideoWriter(output, video.info.width, video.info.height, video.info.fps, force=force) as writer:
                results.append(run_baseline(video, s, recon_writer=writer))
        else:
            results.append(run_baseline(video, s))
    table = Table(title=f"{codec} {settings.preset}, GOP {gop}, {settings.pix_fmt}, {video.info.frames} frames "
                        f"{video.info.width}x{video.info.height}")
    for col in ("CRF", "bytes", "bpp", "PSNR (dB)", "SSIM", "MS-SSIM", "encode s"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            f"{r.crf:g}", f"{r.bytes}", f"{r.bpp:.4f}", f"{r.psnr:.2f}", f"{r.ssim:.4f}",
            "-" if r.ms_ssim is None else f"{r.ms_ssim:.4f}", f"{r.encode_seconds:.1f}",
        )
    out.print(table)
    reports = [r.report() for r in results]
    _write_report(report, reports[0] if len(reports) == 1 else reports, force)


@command
def compare(
    reference: Annotated[Path, typer.Argument(help="Reference video.")],
    distorted: Annotated[Path, typer.Argument(help="Distorted video.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    size: Annotated[Optional[str], typer.Option(help="WxH for raw .yuv inputs.")] = None,
    frames: Annotated[Optional[str], typer.Option(help="Frame range START:END applied to both.")] = None,
):
    """PSNR / SSIM / MS-SSIM of DISTORTED against REFERENCE, frame by frame."""
    from nrff.errors import InputError
    from nrff.eval.metrics import compare_videos
    from nrff.video import open_video

    ref = open_video(reference, frames=frames, size=size)
    dist = open_video(distorted, frames=frames, size=size)
    if (ref.info.width, ref.info.height) != (dist.info.width, dist.info.height):
        raise InputError(
            f"the videos differ in size: {ref.info.width}x{ref.info.height} vs {dist.info.width}x{dist.info.height}"
        )
    if ref.info.frames != dist.info.frames:
        raise InputError(f"the videos differ in length: {ref.info.frames} vs {dist.info.frames} frames")
    acc = compare_videos(ref, dist)
    summary = {"frames": acc.frames, "width": ref.info.width, "height": ref.info.height, **acc.summary()}
    summary["psnr_per_frame"] = acc.psnr
    if as_json:
        out.print_json(json.dumps(summary))
        return
    table = Table(title=f"{distorted} vs {reference}")
    for col in ("frames", "PSNR (dB)", "SSIM", "MS-SSIM"):
        table.add_column(col, justify="right")
    ms = summary["ms_ssim"]
    table.add_row(str(acc.frames), f"{summary['psnr']:.3f}", f"{summary['ssim']:.4f}", "-" if ms is None else f"{ms:.4f}")
    out.print(table)


def _encode_config(preset: str, **options):
    from nrff.config import EncodeConfig

    config = EncodeConfig.from_preset(preset, **options)
    config.validate()
    return config


@command
def encode(
    input: Annotated[Path, typer.Argument(help="Video: image folder, container/stream, or .yuv (with --size).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The .nrff file to write.")],
    method: Annotated[str, typer.Option(help="nrff, nrff-single or siren.")] = "nrff",
    gop: Annotated[int, typer.Option(help="GOP length (frames per key frame).")] = 5,
    crf: Annotated[Optional[float], typer.Option(help="Key-frame CRF (default: 20 for x264/x265, 32 for av1; with --target-bpp, where the search starts).")] = None,
    ratio: Annotated[Optional[float], typer.Option(help="Network bytes / key-frame bytes per GOP (default: the preset's, 0.25).")] = None,
    split: Annotated[Optional[bool], typer.Option("--split/--no-split", help="Separate flow and residual networks (default: on for nrff).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default: the preset's).")] = None,
    preset: Annotated[str, typer.Option(help="default (AV1 key frames, 8-bit weights, 800 quick epochs), fast (the same, 300 epochs, for small clips) or paper (x264 yuv444p key frames, fp16 weights, 5,000 epochs, as published).")] = "default",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed (same seed + device = same bytes).")] = 0,
    target_bpp: Annotated[Optional[float], typer.Option("--target-bpp", help="Land the file at this bpp (chooses the key-frame CRF and network sizes).")] = None,
    frames: Annotated[Optional[str], typer.Option(help="Frame range START:END (0-based, END exclusive).")] = None,
    size: Annotated[Optional[str], typer.Option(help="WxH of a raw .yuv input.")] = None,
    keyframe_codec: Annotated[Optional[str], typer.Option("--keyframe-codec", help="x264, x265 or av1 (SVT-AV1; default, except for --preset paper: x264).")] = None,
    keyframe_pix_fmt: Annotated[Optional[str], typer.Option("--keyframe-pix-fmt", help="yuv444p or yuv420p (default: yuv444p for x264/x265, yuv420p for av1, which has no other).")] = None,
    keyframe_preset: Annotated[Optional[str], typer.Option("--keyframe-preset", help="Key-frame encoder preset (default: medium for x264/x265; 2 for av1 with --preset default, else 4).")] = None,
    keyframe_tune: Annotated[Optional[str], typer.Option("--keyframe-tune", help="x264/x265 tune for the key frames, e.g. psnr.")] = None,
    keyframe_mode: Annotated[str, typer.Option("--keyframe-mode", help="intra (each key frame alone) or predicted (P-frames between key frames).")] = "intra",
    random_access: Annotated[int, typer.Option("--random-access", help="predicted key frames: an IDR every N GOPs.")] = 8,
    quant_bits: Annotated[Optional[int], typer.Option("--quant-bits", help="Quantise weights to K bits and entropy-code them; 0: fp16 weights (default: 8; fp16 with --preset paper).")] = None,
    zero_output: Annotated[Optional[bool], typer.Option("--zero-output/--paper-init", help="Start the output layers at zero (default for --preset fast) or with PyTorch's default init (the paper's).")] = None,
    ratio_mode: Annotated[str, typer.Option("--ratio-mode", help="fixed (ratio per GOP) or probe (more bytes to GOPs with more motion).")] = "fixed",
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default: the method's from the paper).")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write a JSON report here.")] = None,
    force: Annotated[bool, typer.Option(help="Replace existing outputs (and any stale checkpoint).")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted encode from OUT.ckpt.")] = False,
    checkpoint_every: Annotated[float, typer.Option("--checkpoint-every", help="Seconds between checkpoints (0: none).")] = 60.0,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Decode the file to measure PSNR/SSIM (off: faster, no quality figures).")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
):
    """Encode a video into an .nrff bitstream."""
    from nrff.api import encode as run_encode
    from nrff.progress import Reporter

    config = _encode_config(preset, method=method, gop=gop, crf=crf, ratio=ratio, split=split, epochs=epochs,
                            device=device, seed=seed, target_bpp=target_bpp, keyframe_codec=keyframe_codec,
                            keyframe_pix_fmt=keyframe_pix_fmt, keyframe_preset=keyframe_preset,
                            keyframe_tune=keyframe_tune, lr=lr, quant_bits=quant_bits, keyframe_mode=keyframe_mode,
                            random_access=random_access, zero_output=zero_output, ratio_mode=ratio_mode)
    if report is not None:
        check_output(report, force)  # before any work
    quiet = quiet or os.environ.get("RANK", "0") != "0"  # torchrun: only rank 0 shows progress
    with Reporter(None if not quiet else False) as reporter:
        result = run_encode(input, output, config, frames=frames, size=size, force=force, reporter=reporter,
                            resume=resume, checkpoint_seconds=checkpoint_every if checkpoint_every > 0 else None,
                            verify=verify)
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        return
    table = Table(title=f"{output}")
    for col in ("method", "frames", "size", "bytes", "bpp", "PSNR (dB)", "SSIM", "encode s", "device"):
        table.add_column(col, justify="right")
    table.add_row(
        result.method + ("" if not result.split else " (split)"), str(result.frames), f"{result.width}x{result.height}",
        str(result.bytes), f"{result.bpp:.4f}", "-" if result.psnr is None else f"{result.psnr:.2f}",
        "-" if result.ssim is None else f"{result.ssim:.4f}",
        f"{result.encode_seconds:.1f}", result.device,
    )
    out.print(table)
    for event in result.recoveries:
        err.print(f"[yellow]warning:[/] GOP {event['gop']} diverged at step {event['step']}; rolled back, lr x{event['lr_scale']:g}")
    _write_report(report, result.report(), force)


@command
def decode(
    input: Annotated[Path, typer.Argument(help="An .nrff file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder of PNGs, .mp4/.mkv/.mov, .y4m or .yuv.")],
    scale: Annotated[Optional[float], typer.Option(help="Sample the fields at this scale (e.g. 2 for 2x).")] = None,
    size: Annotated[Optional[str], typer.Option(help="Sample the fields at WxH.")] = None,
    fps_factor: Annotated[int, typer.Option("--fps-factor", help="K: render K-1 in-between frames per interval.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    crf: Annotated[Optional[float], typer.Option(help="For .mp4/.mkv: CRF-coded yuv420p instead of lossless RGB.")] = None,
    precision: Annotated[str, typer.Option(help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16.")] = "auto",
    force: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """Decode an .nrff file to frames, at any size and frame rate."""
    from nrff.api import decode as run_decode
    from nrff.progress import Reporter
    from nrff.video.reader import parse_size
    from nrff.video.writer import BackgroundWriter, VideoWriter

    decoded = run_decode(input, size=parse_size(size), scale=scale, fps_factor=fps_factor, device=device,
                         precision=precision)
    with Reporter(None if not quiet else False) as reporter, reporter.task("decoding", decoded.count) as update:
        target = VideoWriter(output, decoded.width, decoded.height, decoded.fps, crf=crf, force=force)
        with BackgroundWriter(target) as writer:
            for i, frame in enumerate(decoded.frames()):
                writer.write(frame)
                update(i + 1)
    err.print(f"wrote {decoded.count} frames of {decoded.width}x{decoded.height} at {float(decoded.fps):g} fps to {output}")


@command
def info(
    input: Annotated[Path, typer.Argument(help="An .nrff file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Show the header and the sections of an .nrff file with their sizes."""
    from nrff.api import info as run_info

    data = run_info(input)
    if as_json:
        out.print_json(json.dumps(data))
        return
    out.print(
        f"[bold]{input}[/]: nrff v{data['version']}, {data['method']}{' (split)' if data['split'] else ''}, "
        f"{data['frames']} frames {data['width']}x{data['height']} @ {data['fps']:g} fps, "
        f"GOP {data['gop_length']} ({data['gops']} GOPs), {data['bytes']} bytes = {data['bpp']:.4f} bpp"
    )
    if data["keyframe_codec"]:
        out.print(f"key frames: {data['keyframe_codec']} {data['keyframe_pix_fmt']} CRF {data['keyframe_crf']:g}, "
                  f"{data['keyframe_bytes']} bytes; networks: {data['network_bytes']} bytes; "
                  f"container: {data['overhead_bytes']} bytes")
    table = Table()
    for col in ("offset", "section", "GOP", "bytes"):
        table.add_column(col, justify="right")
    for s in data["sections"]:
        table.add_row(str(s["offset"]), s["tag"], "" if s["gop"] is None else str(s["gop"]), str(s["size"]))
    out.print(table)


@command
def demo(
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Folder for the results (default: a new nrff-demo folder).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    force: Annotated[bool, typer.Option(help="Write into an existing folder.")] = False,
):
    """Encode and decode the bundled Sintel clip (fast preset) and compare with x264."""
    from nrff.eval.demo import run_demo

    run_demo(output, device=device, force=force, console=out)


bench_app = typer.Typer(
    no_args_is_help=True,
    help="Rate-distortion sweeps: run a sweep, report on its results, draw a frame's parts.",
)
app.add_typer(bench_app, name="bench")


def bench_command(name: str):
    return lambda fn: command(fn, bench_app, name)


@bench_command("run")
def bench_run(
    config: Annotated[Path, typer.Argument(help="The sweep: a .toml or .json file (see docs/evaluation.md).")],
    results: Annotated[Optional[Path], typer.Option(help="Results file (JSON lines); default CONFIG-stem.jsonl here. "
                                                         "Rows already in it are not recomputed.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda (default: the sweep's).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """Run a sweep (clips x methods x operating points), appending one row per finished run."""
    from nrff.eval.bench import SweepConfig, run_sweep, streams_folder
    from nrff.progress import Reporter

    sweep = SweepConfig.load(config)
    results = results or Path(f"{config.stem}.jsonl")
    with Reporter(None if not quiet else False) as reporter:
        outcome = run_sweep(sweep, results, reporter=reporter, device=device)
    err.print(f"{len(outcome.computed)} runs computed, {len(outcome.skipped)} already in {results}; "
              f"bitstreams in {streams_folder(results)}/")


@bench_command("report")
def bench_report(
    results: Annotated[Path, typer.Argument(help="A results file of `nrff bench run`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the plots and tables.")],
    anchor: Annotated[Optional[str], typer.Option(help="Method label to compare against (default: x264 medium, same GOP).")] = None,
    force: Annotated[bool, typer.Option(help="Write into a non-empty folder.")] = False,
):
    """RD plots, BD-rate table and per-GOP bits breakdown of a results file."""
    from nrff.eval.report import bd_markdown, write_report

    report = write_report(results, out, anchor=anchor, force=force)
    out_text = bd_markdown(report.bd + (report.bd_mean if len({e.clip for e in report.bd}) > 1 else []))
    print(out_text, end="")
    err.print(f"wrote {len(report.files)} files to {out}/ ({out}/report.md)")


def _parse_crop(text: Optional[str]) -> tuple[int, int, int, int] | None:
    from nrff.errors import InputError

    if text is None:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"bad crop {text!r}: expected X,Y,W,H in pixels") from None
    return x, y, w, h


@bench_command("picture")
def bench_picture(
    input: Annotated[Path, typer.Argument(help="An .nrff file (method nrff or nrff-single).")],
    frame: Annotated[int, typer.Option(help="The frame to show (0-based; not a key frame).")],
    reference: Annotated[Path, typer.Option(help="The clip the file was encoded from (ground truth).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The figure (.png); OUT-sr.png and OUT-interp.png beside it.")],
    siren: Annotated[Optional[Path], typer.Option(help="A SIREN .nrff of the same clip, for comparison.")] = None,
    frames: Annotated[Optional[str], typer.Option(help="Frame range START:END of the reference the file was encoded from.")] = None,
    crop: Annotated[Optional[str], typer.Option(help="X,Y,W,H of the super-resolution crop (default: centred).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    force: Annotated[bool, typer.Option(help="Replace existing figures.")] = False,
):
    """Figures of one frame: its parts (flows, warps, residual, errors), 2x crops and an in-between frame."""
    from nrff.eval.pictures import write_pictures

    pictures = write_pictures(input, reference, frame, out, siren_file=siren, frames=frames, crop=_parse_crop(crop),
                              device=device, force=force)
    err.print("wrote " + ", ".join(pictures.files))


def main() -> None:
    """Console entry point."""
    app(prog_name="nrff")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
