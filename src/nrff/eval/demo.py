"""``nrff demo``: the main job on the bundled clip, in a couple of minutes on a laptop CPU.

Encodes the 16-frame Sintel excerpt with the ``fast`` preset, decodes it from
the file, codes the same clip with x264 (medium, GOP 5, yuv420p) at the CRF
whose rate is closest, prints both, and writes a side-by-side picture.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table

from nrff.api import decode, encode
from nrff.eval.baselines import FrameList, match_bpp, run_baseline
from nrff.codec.h26x import H26xSettings
from nrff.config import EncodeConfig
from nrff.data import sample_clip
from nrff.errors import OutputExistsError
from nrff.eval.metrics import psnr
from nrff.fsutil import atomic_write_bytes, cannot_write
from nrff.outputs import check_paths
from nrff.progress import Reporter
from nrff.video import open_video
from nrff.video.writer import write_video


def _fresh_folder(output: Path | None, force: bool) -> Path:
    if output is None:
        base = Path("nrff-demo")
        output, n = base, 1
        while output.exists():
            n += 1
            output = Path(f"{base}-{n}")
    elif output.exists() and not output.is_dir():
        raise OutputExistsError(f"{output} exists and is not a folder")
    elif output.exists() and any(output.iterdir()) and not force:
        raise OutputExistsError(f"{output} is not empty; pass --force to write into it")
    check_paths({}, {}, force, folders={"-o": output})  # writable, before any work
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(output, exc) from None
    return output


def _font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib) at ``size`` pixels; PIL's default font if it is missing."""
    from matplotlib import font_manager

    try:
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except OSError:  # pragma: no cover - a matplotlib without its fonts
        return ImageFont.load_default()


def side_by_side(panels: list[tuple[str, np.ndarray]], scale: int = 2, gap: int = 8) -> Image.Image:
    """Label each frame (lines of its label above it, in a real font) and put them next to each
    other with a gap (nearest-neighbour upscaled)."""
    h, w = panels[0][1].shape[:2]
    cell = w * scale
    font = _font(max(11, min(20, cell // 18)))
    lines = max(len(label.split("\n")) for label, _ in panels)
    line_h = font.getbbox("Ag")[3] + 4
    bar = lines * line_h + 8
    canvas = Image.new("RGB", (len(panels) * (cell + gap) - gap, h * scale + bar), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, frame) in enumerate(panels):
        img = Image.fromarray(frame).resize((cell, h * scale), Image.NEAREST)
        x = i * (cell + gap)
        canvas.paste(img, (x, bar))
        for j, text in enumerate(label.split("\n")):
            draw.text((x + 4, 4 + j * line_h), text, fill="black", font=font)
    return canvas


def run_demo(output: Path | None = None, *, device: str = "auto", force: bool = False, console: Console | None = None) -> dict:
    console = console or Console()
    folder = _fresh_folder(output, force)
    clip = sample_clip()
    video = open_video(clip)
    config = EncodeConfig.from_preset("fast", device=device)
    console.print(f"nrff demo: {video.info.frames} frames of {video.info.width}x{video.info.height} "
                  f"(Sintel alley_2, (c) Blender Foundation, CC-BY 3.0) -> {folder}/")
    with Reporter() as reporter:
        result = encode(clip, folder / "clip.nrff", config, reporter=reporter, force=force)
    atomic_write_bytes(folder / "report.json", (json.dumps(result.report(), indent=2) + "\n").encode(), force=True)
    decoded = decode(folder / "clip.nrff", device=device)
    frames = list(decoded.frames())
    write_video(folder / "decoded", frames, decoded.fps, force=force)

    settings = H26xSettings(codec="x264", preset="medium", gop=config.gop, pix_fmt="yuv420p")
    anchor = match_bpp(video, settings, result.bpp)
    x264_frames: list[np.ndarray] = []
    run_baseline(video, replace(settings, crf=anchor.crf), recon_writer=FrameList(x264_frames))

    table = Table(title="bundled clip, GOP 5")
    for col in ("codec", "bytes", "bpp", "PSNR (dB)", "SSIM", "encode s"):
        table.add_column(col, justify="right")
    table.add_row("nrff (fast preset)", str(result.bytes), f"{result.bpp:.4f}", f"{result.psnr:.2f}", f"{result.ssim:.4f}", f"{result.encode_seconds:.1f}")
    table.add_row(f"x264 medium CRF {anchor.crf:g}", str(anchor.bytes), f"{anchor.bpp:.4f}", f"{anchor.psnr:.2f}", f"{anchor.ssim:.4f}", f"{anchor.encode_seconds:.1f}")
    console.print(table)

    originals = video.read_all()
    # the non-key frame (made by the network) nearest the middle
    index = min(range(len(originals)), key=lambda i: (i in {g["key"] for g in result.gops}, abs(i - len(originals) // 2)))
    picture = side_by_side([
        (f"original\nframe {index} (0-based)", originals[index]),
        (f"nrff (fast preset)\n{result.bpp:.3f} bpp, {psnr(originals[index], frames[index]):.2f} dB", frames[index]),
        (f"x264 medium CRF {anchor.crf:g}\n{anchor.bpp:.3f} bpp, {psnr(originals[index], x264_frames[index]):.2f} dB",
         x264_frames[index]),
    ])
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    atomic_write_bytes(folder / "side_by_side.png", buffer.getvalue(), force=True)
    console.print(f"wrote {folder}/clip.nrff, {folder}/decoded/, {folder}/report.json and {folder}/side_by_side.png")
    return {"nrff": result.report(), "x264": anchor.report(), "folder": str(folder)}
