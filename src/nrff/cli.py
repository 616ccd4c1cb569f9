"""The ``nrff`` command line: parse, call the Python API, print.

Every user error becomes one line on stderr (``error: ...``) and exit status 2;
an unexpected internal error is reported in one line too (exit status 3) and
shows its traceback only with ``NRFF_DEBUG=1``. The shared machinery (app,
consoles, common flags) is in :mod:`nrff.cli_common`; ``baseline``, ``compare``,
``demo`` and ``bench`` are in :mod:`nrff.cli_eval`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from nrff import cli_eval  # noqa: F401 - registers the evaluation commands
from nrff.cli_common import Force, Json, Quiet, Verbose, app, command, err, out, print_json, reporter, say, write_report
from nrff.outputs import check_distinct, check_paths

# keep in step with nrff.methods.METHODS (tests/test_cli_conventions.py checks it)
METHOD_HELP = "nrff (flows to two key frames + residual, the paper), nrff-single (one reference), siren (colour field) or nerv (one NeRV network for the clip)."
GOP_HELP = ("GOP length: frames per key frame, about. GOPs are balanced: N frames make round(N / GOP) GOPs (at least "
            "one) of nearly equal length, so 16 frames at --gop 5 are 5 + 6 + 5 and 6 or 7 frames are one GOP; the key "
            "frame is each GOP's middle frame.")


def _version(value: bool) -> None:
    if value:
        from nrff import __version__

        print(f"nrff {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """nrff: a neural video codec (Neural Residual Flow Fields)."""


def _encode_config(preset: str, **options):
    from nrff.config import EncodeConfig

    config = EncodeConfig.from_preset(preset, **options)
    config.validate()
    return config


@command
def encode(
    input: Annotated[Path, typer.Argument(readable=False, help="Video: image folder, container/stream, .yuv (with --size), or - for stdin.")],
    output: Annotated[Path, typer.Option("-o", "--output", readable=False, help="The .nrff file to write.")],
    method: Annotated[str, typer.Option(help=METHOD_HELP)] = "nrff",
    gop: Annotated[int, typer.Option(help=GOP_HELP)] = 5,
    crf: Annotated[Optional[float], typer.Option(help="Key-frame CRF (default: 20 for x264/x265, 32 for av1; with --target-bpp, where the search starts).")] = None,
    ratio: Annotated[Optional[float], typer.Option(help="Network bytes / key-frame bytes per GOP (default: 0.25, raised to 0.5 on fast-moving clips by --share-rule motion, the default and fast presets' rule; a ratio given is used as given).")] = None,
    share_rule: Annotated[Optional[str], typer.Option("--share-rule", help="motion (0.5 instead of 0.25 when frames differ much from their key frames) or fixed (--ratio as given).")] = None,
    split: Annotated[Optional[bool], typer.Option("--split/--no-split", help="Separate flow and residual networks (default: on for nrff).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default: the preset's).")] = None,
    preset: Annotated[str, typer.Option(help="default (AV1 key frames, 8-bit weights, 800 quick epochs), fast (the same, 300 epochs, for small clips) or paper (x264 yuv444p key frames, fp16 weights, 5,000 epochs, as published).")] = "default",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed (same seed + device = same bytes).")] = 0,
    target_bpp: Annotated[Optional[float], typer.Option("--target-bpp", help="Land the file at this bpp (chooses the key-frame CRF and network sizes).")] = None,
    frames: Annotated[Optional[str], typer.Option(help="Frame range START:END (0-based, END exclusive).")] = None,
    size: Annotated[Optional[str], typer.Option(help="WxH of a raw .yuv input.")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Frame rate of a PNG folder or raw .yuv input (default 24 / 25).")] = None,
    keyframe_codec: Annotated[Optional[str], typer.Option("--keyframe-codec", help="x264, x265 or av1 (SVT-AV1; default, except for --preset paper: x264).")] = None,
    keyframe_pix_fmt: Annotated[Optional[str], typer.Option("--keyframe-pix-fmt", help="yuv444p or yuv420p (default: yuv444p for x264/x265, yuv420p for av1, which has no other).")] = None,
    keyframe_preset: Annotated[Optional[str], typer.Option("--keyframe-preset", help="Key-frame encoder preset (default: medium for x264/x265; 2 for av1 with --preset default, else 4).")] = None,
    keyframe_tune: Annotated[Optional[str], typer.Option("--keyframe-tune", help="x264/x265 tune for the key frames, e.g. psnr.")] = None,
    keyframe_mode: Annotated[str, typer.Option("--keyframe-mode", help="intra (each key frame alone) or predicted (P-frames between key frames).")] = "intra",
    random_access: Annotated[int, typer.Option("--random-access", help="predicted key frames: an IDR every N GOPs.")] = 8,
    quant_bits: Annotated[Optional[int], typer.Option("--quant-bits", help="Quantise weights to K bits and entropy-code them; 0: fp16 weights (default: 8; fp16 with --preset paper).")] = None,
    quant_grid: Annotated[Optional[str], typer.Option("--quant-grid", help="tensor (one quantisation grid per tensor) or column (output layers per column; bitstream v3).")] = None,
    zero_output: Annotated[Optional[bool], typer.Option("--zero-output/--paper-init", help="Start the output layers at zero (default for --preset fast) or with PyTorch's default init (the paper's).")] = None,
    ratio_mode: Annotated[str, typer.Option("--ratio-mode", help="fixed (ratio per GOP) or probe (more bytes to GOPs with more motion).")] = "fixed",
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default: the method's from the paper).")] = None,
    compile: Annotated[Optional[str], typer.Option("--compile", help="off, on (torch.compile fuses the training step) or graphs (also CUDA graphs on CUDA); other bytes than eager.")] = None,
    report: Annotated[Optional[Path], typer.Option(readable=False, help="Write a JSON report here.")] = None,
    force: Annotated[bool, typer.Option("--force", "-y", help="Replace existing outputs (and any stale checkpoint).")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted encode from OUT.ckpt.")] = False,
    checkpoint_every: Annotated[float, typer.Option("--checkpoint-every", help="Seconds between checkpoints (0: none).")] = 60.0,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Decode the file to measure PSNR/SSIM (off: faster, no quality figures).")] = True,
    as_json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Encode a video into an .nrff bitstream."""
    from nrff.api import encode as run_encode

    config = _encode_config(preset, method=method, gop=gop, crf=crf, ratio=ratio, split=split, epochs=epochs,
                            device=device, seed=seed, target_bpp=target_bpp, keyframe_codec=keyframe_codec,
                            keyframe_pix_fmt=keyframe_pix_fmt, keyframe_preset=keyframe_preset,
                            keyframe_tune=keyframe_tune, lr=lr, quant_bits=quant_bits, keyframe_mode=keyframe_mode,
                            random_access=random_access, zero_output=zero_output, ratio_mode=ratio_mode,
                            quant_grid=quant_grid, share_rule=share_rule, compile=compile)
    from nrff.encoder.checkpoint import checkpoint_path

    # before any work: outputs distinct from the input and from each other, writable, absent unless --force
    check_paths({"input": input}, {"-o": output, "--report": report}, force)
    check_distinct({"input": input, "--report": report}, {"checkpoint": checkpoint_path(output)})
    with reporter(quiet, verbose) as progress:
        result = run_encode(input, output, config, frames=frames, size=size, fps=fps, force=force, reporter=progress,
                            resume=resume, checkpoint_seconds=checkpoint_every if checkpoint_every > 0 else None,
                            verify=verify)
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        return
    for event in result.recoveries:
        err.print(f"[yellow]warning:[/] GOP {event['gop']} diverged at step {event['step']}; rolled back, lr x{event['lr_scale']:g}")
    write_report(report, result.report(), force)
    if as_json:
        print_json(result.report())
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


def decode_budget(max_work: float | None, unlimited: bool):
    """The decode budget of ``--max-work`` / ``--no-decode-budget``."""
    import math
    from dataclasses import replace

    from nrff.decoder.budget import DEFAULT_BUDGET, DecodeBudget
    from nrff.errors import InputError

    if max_work is not None and not (math.isfinite(max_work) and max_work > 0):
        raise InputError(f"--max-work must be a positive number (got {max_work:g})")
    if unlimited:
        return replace(DecodeBudget.unlimited(), max_work=max_work)
    return DEFAULT_BUDGET if max_work is None else replace(DEFAULT_BUDGET, max_work=max_work)


@command
def decode(
    input: Annotated[Path, typer.Argument(readable=False, help="An .nrff file.")],
    output: Annotated[Path, typer.Option("-o", "--output", readable=False, help="Folder of PNGs, .mp4/.mkv/.mov (playable H.264), .y4m, .yuv, or - for .y4m on stdout.")],
    scale: Annotated[Optional[float], typer.Option(help="Sample the fields at this scale (e.g. 2 for 2x).")] = None,
    size: Annotated[Optional[str], typer.Option(help="Sample the fields at WxH.")] = None,
    fps_factor: Annotated[int, typer.Option("--fps-factor", help="K: render K-1 in-between frames per interval.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    crf: Annotated[Optional[float], typer.Option(help="For .mp4/.mkv/.mov: the H.264 CRF (default 12, visually lossless yuv420p).")] = None,
    lossless: Annotated[bool, typer.Option("--lossless", help="For .mp4/.mkv/.mov: exact RGB (libx264rgb, QP 0) instead of yuv420p; many players cannot play it.")] = False,
    precision: Annotated[str, typer.Option(help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16.")] = "auto",
    max_work: Annotated[Optional[float], typer.Option("--max-work", help="Refuse a file whose decode takes more multiply-adds than this (default 1e15; docs/robustness.md).")] = None,
    no_decode_budget: Annotated[bool, typer.Option("--no-decode-budget", help="Decode files over the decode budget (research files one trusts).")] = False,
    force: Force = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Decode an .nrff file to frames, at any size and frame rate."""
    from nrff.api import decode as run_decode
    from nrff.errors import InputError
    from nrff.video.reader import parse_size
    from nrff.video.writer import BackgroundWriter, VideoWriter, check_h264_crf, output_kind

    if lossless and crf is not None:
        raise InputError("--lossless and --crf exclude each other")
    check_h264_crf(crf)
    kind = output_kind(output)
    if kind == "png":
        check_paths({"input": input}, {}, force, folders={"-o": output})
    else:
        check_paths({"input": input}, {"-o": output}, force)
    if crf is not None and kind != "container":
        raise InputError(f"{output}: --crf applies to .mp4/.mkv/.mov outputs only")
    decoded = run_decode(input, size=parse_size(size), scale=scale, fps_factor=fps_factor, device=device,
                         precision=precision, budget=decode_budget(max_work, no_decode_budget))
    with reporter(quiet, verbose) as progress, progress.task("decoding", decoded.count, unit="frames") as update:
        progress.detail(f"{decoded.header.frames} frames {decoded.header.width}x{decoded.header.height} -> "
                        f"{decoded.count} frames {decoded.width}x{decoded.height} on {decoded.device}")
        target = VideoWriter(output, decoded.width, decoded.height, decoded.fps, crf=crf, lossless=lossless, force=force)
        with BackgroundWriter(target) as writer:
            for i, frame in enumerate(decoded.frames()):
                writer.write(frame)
                update(i + 1)
    say(quiet, f"wrote {decoded.count} frames of {decoded.width}x{decoded.height} at {float(decoded.fps):g} fps to "
               f"{'stdout' if str(output) == '-' else output}")


@command
def info(
    input: Annotated[Path, typer.Argument(readable=False, help="An .nrff file.")],
    as_json: Json = False,
):
    """Show the header and the sections of an .nrff file with their sizes."""
    from nrff.api import info as run_info

    data = run_info(input)
    if as_json:
        print_json(data)
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


def main() -> None:
    """Console entry point."""
    app(prog_name="nrff")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
