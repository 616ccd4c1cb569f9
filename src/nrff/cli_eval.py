"""The evaluation commands: ``nrff baseline``, ``compare``, ``demo`` and ``bench run|report|picture``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from nrff.cli_common import Force, Json, Quiet, Verbose, app, command, err, out, print_json, reporter, say, write_report
from nrff.outputs import check_distinct, check_paths


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
    input: Annotated[Path, typer.Argument(readable=False, help="Video: image folder, container/stream, .yuv (with --size), or - for stdin.")],
    codec: Annotated[str, typer.Option(help="x264, x265 or svtav1 (SVT-AV1).")] = "x264",
    preset: Annotated[Optional[str], typer.Option(help="Encoder preset (default: medium for x264/x265, 4 for svtav1).")] = None,
    gop: Annotated[int, typer.Option(help="Closed GOP length (keyint = min-keyint).")] = 5,
    crf: Annotated[str, typer.Option(help="CRF, or several separated by commas for an RD sweep.")] = "23",
    pix_fmt: Annotated[str, typer.Option("--pix-fmt", help="yuv420p or yuv444p.")] = "yuv420p",
    bframes: Annotated[bool, typer.Option("--bframes/--no-bframes", help="B-frames (off = low delay).")] = True,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", readable=False, help="Write the reconstruction here (an .mp4/.mkv is lossless RGB: exactly what was measured).")] = None,
    report: Annotated[Optional[Path], typer.Option(readable=False, help="Write a JSON report here.")] = None,
    frames: Annotated[Optional[str], typer.Option(help="Frame range START:END (0-based, END exclusive).")] = None,
    size: Annotated[Optional[str], typer.Option(help="WxH of a raw .yuv input.")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Frame rate of a PNG folder or raw .yuv input (default 24 / 25).")] = None,
    force: Force = False,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Code a clip with x264/x265/SVT-AV1 at a closed GOP and measure it like nrff."""
    from dataclasses import replace

    from nrff.errors import InputError
    from nrff.eval.baselines import anchor_settings, run_baseline
    from nrff.video import open_video
    from nrff.video.writer import VideoWriter, output_kind

    crfs = _parse_crfs(crf)
    if output is not None and len(crfs) > 1:
        raise InputError("-o writes one reconstruction; give a single --crf")
    # before any work: outputs distinct from the input and from each other, writable, absent unless --force
    if output is not None and output_kind(output) == "png":
        check_paths({"input": input}, {"--report": report}, force, folders={"-o": output})
    else:
        check_paths({"input": input}, {"-o": output, "--report": report}, force)
    video = open_video(input, frames=frames, size=size, fps=fps)
    for value in crfs:  # every CRF of a sweep, not only the first
        anchor_settings(codec, value, preset, gop, pix_fmt, bframes).validate(video.info.width, video.info.height)
    settings = anchor_settings(codec, crfs[0], preset, gop, pix_fmt, bframes)
    results = []
    with reporter(quiet, verbose) as progress:
        for value in crfs:
            s = replace(settings, crf=value)
            with progress.task(f"{codec} CRF {value:g}", 2 * video.info.frames, unit="frames") as update:
                if output is not None:
                    with VideoWriter(output, video.info.width, video.info.height, video.info.fps, force=force) as writer:
                        results.append(run_baseline(video, s, recon_writer=writer, progress=update))
                else:
                    results.append(run_baseline(video, s, progress=update))
    reports = [r.report() for r in results]
    write_report(report, reports[0] if len(reports) == 1 else reports, force)
    if as_json:
        print_json(reports[0] if len(reports) == 1 else reports)
        return
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


@command
def compare(
    reference: Annotated[Path, typer.Argument(readable=False, help="Reference video.")],
    distorted: Annotated[Path, typer.Argument(readable=False, help="Distorted video.")],
    as_json: Json = False,
    size: Annotated[Optional[str], typer.Option(help="WxH for raw .yuv inputs.")] = None,
    frames: Annotated[Optional[str], typer.Option(help="Frame range START:END applied to both.")] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
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
    with reporter(quiet, verbose) as progress, progress.task("comparing", ref.info.frames, unit="frames") as update:
        acc = compare_videos(ref, dist, progress=update)
    summary = {"frames": acc.frames, "width": ref.info.width, "height": ref.info.height, **acc.summary()}
    summary["psnr_per_frame"] = acc.psnr
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"{distorted} vs {reference}")
    for col in ("frames", "PSNR (dB)", "SSIM", "MS-SSIM"):
        table.add_column(col, justify="right")
    ms = summary["ms_ssim"]
    table.add_row(str(acc.frames), f"{summary['psnr']:.3f}", f"{summary['ssim']:.4f}", "-" if ms is None else f"{ms:.4f}")
    out.print(table)


@command
def demo(
    output: Annotated[Optional[Path], typer.Option("-o", "--output", readable=False, help="Folder for the results (default: a new nrff-demo folder).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    force: Annotated[bool, typer.Option("--force", "-y", help="Write into an existing folder.")] = False,
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
    config: Annotated[Path, typer.Argument(readable=False, help="The sweep: a .toml or .json file (see docs/evaluation.md).")],
    results: Annotated[Optional[Path], typer.Option(readable=False, help="Results file (JSON lines); default CONFIG-stem.jsonl here. "
                                                         "Rows already in it are not recomputed.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda (default: the sweep's).")] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Run a sweep (clips x methods x operating points), appending one row per finished run."""
    from nrff.eval.bench import SweepConfig, run_sweep, streams_folder

    results = results or Path(f"{config.stem}.jsonl")
    check_distinct({"sweep": config}, {"--results": results})  # the results file is appended to
    sweep = SweepConfig.load(config)
    with reporter(quiet, verbose) as progress:
        outcome = run_sweep(sweep, results, reporter=progress, device=device)
    say(quiet, f"{len(outcome.computed)} runs computed, {len(outcome.skipped)} already in {results}; "
               f"bitstreams in {streams_folder(results)}/")


@bench_command("report")
def bench_report(
    results: Annotated[Path, typer.Argument(readable=False, help="A results file of `nrff bench run`.")],
    out: Annotated[Path, typer.Option("--out", "-o", readable=False, help="Folder for the plots (PNG and PDF) and tables.")],
    anchor: Annotated[Optional[str], typer.Option(help="Method label to compare against (default: x264 medium, same GOP).")] = None,
    force: Annotated[bool, typer.Option("--force", "-y", help="Write into a non-empty folder.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """RD plots, BD-rate table and per-GOP bits breakdown of a results file."""
    from nrff.eval.report import bd_markdown, write_report as write_rd_report

    check_paths({"results": results}, {}, force, folders={"--out": out})
    with reporter(quiet, verbose) as progress:
        report = write_rd_report(results, out, anchor=anchor, force=force, reporter=progress)
    out_text = bd_markdown(report.bd + (report.bd_mean if len({e.clip for e in report.bd}) > 1 else []))
    print(out_text, end="")
    say(quiet, f"wrote {len(report.files)} files to {out}/ ({out}/report.md)")


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
    input: Annotated[Path, typer.Argument(readable=False, help="An .nrff file (method nrff or nrff-single).")],
    frame: Annotated[int, typer.Option(help="The frame to show (0-based; not a key frame).")],
    reference: Annotated[Path, typer.Option(readable=False, help="The clip the file was encoded from (ground truth).")],
    out: Annotated[Path, typer.Option("--out", "-o", readable=False, help="The figure (.png, a .pdf beside it); OUT-sr and OUT-interp beside it.")],
    siren: Annotated[Optional[Path], typer.Option(readable=False, help="A SIREN .nrff of the same clip, for comparison.")] = None,
    frames: Annotated[Optional[str], typer.Option(help="Frame range START:END of the reference the file was encoded from.")] = None,
    crop: Annotated[Optional[str], typer.Option(help="X,Y,W,H of the super-resolution crop (default: centred).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    force: Force = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Figures of one frame: its parts (flows, warps, residual, errors), 2x crops and an in-between frame."""
    from nrff.eval.pictures import write_pictures

    check_distinct({"input": input, "--reference": reference, "--siren": siren},
                   {"--out": out, "--out (PDF)": out.with_suffix(".pdf")})
    with reporter(quiet, verbose) as progress:
        pictures = write_pictures(input, reference, frame, out, siren_file=siren, frames=frames, crop=_parse_crop(crop),
                                  device=device, force=force, reporter=progress)
    say(quiet, "wrote " + ", ".join(pictures.files))


__all__ = ["bench_app", "err"]
