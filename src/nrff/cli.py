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


def command(fn):
    """Register ``fn`` as a command that reports errors in one line."""

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

    return app.command()(wrapper)


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
    codec: Annotated[str, typer.Option(help="x264 or x265.")] = "x264",
    preset: Annotated[str, typer.Option(help="Encoder preset.")] = "medium",
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

    from nrff.baselines import run_baseline
    from nrff.codec.h26x import H26xSettings
    from nrff.errors import InputError
    from nrff.video import open_video
    from nrff.video.writer import VideoWriter

    crfs = _parse_crfs(crf)
    if output is not None and len(crfs) > 1:
        raise InputError("-o writes one reconstruction; give a single --crf")
    video = open_video(input, frames=frames, size=size)
    settings = H26xSettings(codec=codec, crf=crfs[0], preset=preset, pix_fmt=pix_fmt, gop=gop, bframes=bframes)
    settings.validate(video.info.width, video.info.height)
    if report is not None and report.exists() and not force:
        raise InputError(f"{report} already exists; pass --force to replace it")
    results = []
    for value in crfs:
        s = replace(settings, crf=value)
        if output is not None:
            with VideoWriter(output, video.info.width, video.info.height, video.info.fps, force=force) as writer:
                results.append(run_baseline(video, s, recon_writer=writer))
        else:
            results.append(run_baseline(video, s))
    table = Table(title=f"{codec} {preset}, GOP {gop}, {pix_fmt}, {video.info.frames} frames {video.info.width}x{video.info.height}")
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
    from nrff.metrics import compare_videos
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


def main() -> None:
    """Console entry point."""
    app(prog_name="nrff")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
