"""Pictures of what a decoded frame is made of (the paper's Figs. 3-4 and 9).

* :func:`frame_panels`: ground truth, SIREN (optional), nrff, the decoded
  flows (Middlebury colour coding), the warped references, the mixing weight,
  the residual and the absolute-error maps, for one frame.
* :func:`sr_panels`: a crop sampled at twice the resolution by the field
  (``decode(scale=2)``) next to bicubic upscaling of the native decode.
* :func:`interpolation_panels`: the in-between frame the field renders at
  t + 1/2 (``decode(fps_factor=2)``) next to the blend of its two neighbours.

Every nrff/SIREN image is what the decoder renders from the file; the parts
come from :meth:`nrff.decoder.video.DecodedVideo.parts` (same model, same references).
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from nrff.errors import InputError
from nrff.fsutil import check_output
from nrff.eval.metrics import psnr

# ----------------------------------------------------------------------------- flow colour coding

# Baker et al., "A Database and Evaluation Methodology for Optical Flow" (IJCV 2011):
# a hue circle in six segments (red-yellow, yellow-green, green-cyan, cyan-blue,
# blue-magenta, magenta-red) with more steps where the eye tells hues apart better.
_SEGMENTS = (15, 6, 4, 11, 13, 6)


def colour_wheel() -> np.ndarray:
    """The 55 hues of the Middlebury colour circle, ``[55, 3]`` float in [0, 1]."""
    ramps = []
    for segment, n in enumerate(_SEGMENTS):
        up = np.floor(255 * np.arange(n) / n) / 255
        down = 1 - up
        ones, zeros = np.ones(n), np.zeros(n)
        ramps.append({
            0: (ones, up, zeros),     # red -> yellow: green rises
            1: (down, ones, zeros),   # yellow -> green: red falls
            2: (zeros, ones, up),     # green -> cyan: blue rises
            3: (zeros, down, ones),   # cyan -> blue: green falls
            4: (up, zeros, ones),     # blue -> magenta: red rises
            5: (ones, zeros, down),   # magenta -> red: blue falls
        }[segment])
    return np.concatenate([np.stack(r, axis=1) for r in ramps])


def flow_to_colour(flow: np.ndarray, max_radius: float | None = None) -> np.ndarray:
    """Colour-code a flow ``[H, W, 2]`` (x, y in pixels, y down): hue = direction,
    saturation = magnitude relative to ``max_radius`` (default: the largest in the
    flow); magnitudes beyond it are darkened. Returns ``[H, W, 3]`` uint8."""
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    radius = np.hypot(u, v)
    if max_radius is None:
        max_radius = float(radius.max())
    scale = 1.0 / max(max_radius, 1e-9)
    u, v, radius = u * scale, v * scale, radius * scale
    wheel = colour_wheel()
    n = len(wheel)
    angle = np.arctan2(-v, -u) / math.pi  # in [-1, 1]
    position = (angle + 1) / 2 * (n - 1)
    k0 = np.floor(position).astype(int)
    k1 = (k0 + 1) % n
    f = (position - k0)[..., None]
    colour = (1 - f) * wheel[k0] + f * wheel[k1]
    inside = (radius <= 1)[..., None]
    colour = np.where(inside, 1 - radius[..., None] * (1 - colour), colour * 0.75)
    return np.clip(np.round(colour * 255), 0, 255).astype(np.uint8)


def colour_key(size: int = 65) -> np.ndarray:
    """The colour key: the coding of flows up to ``max_radius`` on a disc (white outside)."""
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    flow = np.stack([(x - c) / c, (y - c) / c], axis=-1)
    image = flow_to_colour(flow, max_radius=1.0)
    image[np.hypot(flow[..., 0], flow[..., 1]) > 1] = 255
    return image


# ----------------------------------------------------------------------------- panels


@dataclass
class Panel:
    """One image of a figure: RGB uint8, or a scalar map drawn with ``cmap`` and a colour bar."""

    title: str
    image: np.ndarray
    cmap: str | None = None
    vmin: float = 0.0
    vmax: float = 1.0
    colorbar_label: str = ""
    inset: np.ndarray | None = None  # e.g. the flow colour key


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 255), 0, 255).astype(np.uint8)


def _decoded(data: bytes, index: int, device: str, **kwargs) -> np.ndarray:
    """Frame ``index`` of what the decoder renders (with ``scale``/``fps_factor``)."""
    from nrff.api import decode

    video = decode(data, device=device, **kwargs)
    if not 0 <= index < video.count:
        raise InputError(f"frame {index} is outside 0..{video.count - 1}")
    return next(itertools.islice(video.frames(), index, None))


def _header(data: bytes):
    from nrff.decoder.stream import read_stream

    return read_stream(data).header


def _method(data: bytes):
    from nrff.decoder.stream import read_stream

    return read_stream(data).method


def reference_frame(path: str | os.PathLike, index: int, frames: str | None = None) -> np.ndarray:
    """Frame ``index`` of a clip (within the frame range ``frames`` the file was encoded from)."""
    from nrff.video import open_video

    video = open_video(path, frames=frames)
    if not 0 <= index < video.info.frames:
        raise InputError(f"frame {index} is outside the reference's 0..{video.info.frames - 1}")
    return next(itertools.islice(iter(video), index, None))


def _error_map(reference: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    return np.abs(reference.astype(np.float64) - decoded.astype(np.float64)).mean(axis=-1)


def _bpp(data: bytes) -> float:
    h = _header(data)
    return 8 * len(data) / (h.frames * h.width * h.height)


def frame_panels(data: bytes, index: int, reference: np.ndarray, *, siren: bytes | None = None,
                 device: str = "auto") -> list[Panel]:
    """The parts of frame ``index`` of an nrff file, with the ground truth, SIREN and error maps."""
    from nrff.api import decode

    header, method = _header(data), _method(data)
    if not method.uses_keyframes:
        raise InputError(f"the file is a {method.name} encode; give the nrff file first and the SIREN one with --siren")
    if reference.shape != (header.height, header.width, 3):
        raise InputError(f"the reference frame is {reference.shape[1]}x{reference.shape[0]} but the file is "
                         f"{header.width}x{header.height}")
    parts = decode(data, device=device).parts(index)
    if "residual" not in parts:
        starts = np.cumsum([0] + [g.length for g in header.gops])
        made = [int(s + k) for s, g in zip(starts, header.gops) for k in range(g.length) if k != g.key]
        raise InputError(f"frame {index} is a key frame (coded by {header.keyframe_codec}); choose a frame the "
                         f"networks make, e.g. {', '.join(map(str, made[:6]))}")
    decoded = _decoded(data, index, device)
    panels = [Panel(f"ground truth, frame {index}", reference)]
    errors = []
    if siren is not None:
        sh = _header(siren)
        if (sh.frames, sh.width, sh.height) != (header.frames, header.width, header.height):
            raise InputError("the SIREN file has another size or length than the nrff file")
        siren_frame = _decoded(siren, index, device)
        panels.append(Panel(f"SIREN {_bpp(siren):.3f} bpp, {psnr(reference, siren_frame):.2f} dB", siren_frame))
        errors.append(("SIREN", _error_map(reference, siren_frame)))
    panels.append(Panel(f"nrff {_bpp(data):.3f} bpp, {psnr(reference, decoded):.2f} dB", decoded))
    errors.append(("nrff", _error_map(reference, decoded)))

    flows = [k for k in ("flow0", "flow1") if k in parts]
    radius = max(float(np.hypot(parts[k][..., 0], parts[k][..., 1]).max()) for k in flows)
    names = method.reference_names
    for k in flows:
        panels.append(Panel(f"flow to the {names[k]} (max {radius:.1f} px)", flow_to_colour(parts[k], radius)))
    key = colour_key(max(33, min(header.width, header.height) | 1))
    panels.append(Panel(f"flow colour key (hue: direction,\nsaturation: length up to {radius:.1f} px)", key))
    for k, what in ((f"warped{k[-1]}", names[k]) for k in names):
        if k in parts:
            panels.append(Panel(f"{what}, warped", _to_uint8(parts[k])))
    if "alpha" in parts:
        panels.append(Panel("α: weight of the neighbouring key frame", parts["alpha"][..., 0], cmap="gray",
                            colorbar_label="α"))
    panels.append(Panel("residual (grey = 0)", _to_uint8(0.5 + parts["residual"])))
    vmax = max(float(np.percentile(e, 99.5)) for _, e in errors) or 1.0
    for name, e in errors:
        panels.append(Panel(f"|error| {name} (mean {e.mean():.2f})", e, cmap="inferno", vmax=vmax,
                            colorbar_label="8-bit levels"))
    return panels


def default_crop(width: int, height: int) -> tuple[int, int, int, int]:
    """A centred box a quarter of the frame wide and high (at least 16 pixels)."""
    w, h = min(width, max(16, width // 4)), min(height, max(16, height // 4))
    return (width - w) // 2, (height - h) // 2, w, h


def _check_crop(crop: tuple[int, int, int, int], width: int, height: int) -> None:
    x, y, w, h = crop
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise InputError(f"crop {x},{y},{w},{h} does not fit in {width}x{height}")


def sr_panels(data: bytes, index: int, reference: np.ndarray | None = None, *,
              crop: tuple[int, int, int, int] | None = None, device: str = "auto") -> list[Panel]:
    """A crop at 2x: the field sampled at twice the resolution vs bicubic upscaling (PIL) of
    the native decode; the native crops (decode and ground truth) for comparison."""
    header = _header(data)
    crop = crop or default_crop(header.width, header.height)
    _check_crop(crop, header.width, header.height)
    x, y, w, h = crop
    native = _decoded(data, index, device)
    field2 = _decoded(data, index, device, scale=2)
    bicubic = np.asarray(Image.fromarray(native).resize((2 * header.width, 2 * header.height), Image.BICUBIC))
    panels = []
    if reference is not None:
        panels.append(Panel(f"ground truth, frame {index} (native)", reference[y : y + h, x : x + w]))
    panels += [
        Panel("nrff decode (native)", native[y : y + h, x : x + w]),
        Panel("bicubic 2x of the decode", bicubic[2 * y : 2 * (y + h), 2 * x : 2 * (x + w)]),
        Panel("nrff sampled at 2x", field2[2 * y : 2 * (y + h), 2 * x : 2 * (x + w)]),
    ]
    return panels


def interpolation_panels(data: bytes, index: int, *, device: str = "auto") -> list[Panel]:
    """Frames ``index`` and ``index + 1``, the field's in-between frame, and their blend."""
    header = _header(data)
    if not 0 <= index < header.frames - 1:
        raise InputError(f"an in-between frame needs frames {index} and {index + 1}; the file has 0..{header.frames - 1}")
    from nrff.api import decode

    video = decode(data, device=device, fps_factor=2)
    before, middle, after = itertools.islice(video.frames(), 2 * index, 2 * index + 3)
    blend = ((before.astype(np.uint16) + after.astype(np.uint16) + 1) // 2).astype(np.uint8)
    return [
        Panel(f"frame {index}", before),
        Panel(f"nrff at t = {index}.5", middle),
        Panel(f"blend of frames {index} and {index + 1}", blend),
        Panel(f"frame {index + 1}", after),
    ]


# ----------------------------------------------------------------------------- figures


def figure(panels: list[Panel], title: str, path: str | os.PathLike | None = None, columns: int = 4):
    """Lay out panels on a grid (``columns`` wide); save to ``path``; return the figure."""
    from nrff.eval.plots import pyplot, save

    plt = pyplot()
    cols = min(columns, len(panels))
    rows = math.ceil(len(panels) / cols)
    h, w = panels[0].image.shape[:2]
    cell_w = 3.6
    cell_h = cell_w * h / w + 0.5
    fig, axes = plt.subplots(rows, cols, figsize=(cell_w * cols, cell_h * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        if panel.cmap is None:
            ax.imshow(panel.image, interpolation="nearest")
        else:
            im = ax.imshow(panel.image, cmap=panel.cmap, vmin=panel.vmin, vmax=panel.vmax, interpolation="nearest")
            bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            bar.set_label(panel.colorbar_label, fontsize="x-small")
            bar.ax.tick_params(labelsize="x-small")
        if panel.inset is not None:
            inset = ax.inset_axes([0.80, 0.0, 0.2, 0.2 * w / h])
            inset.imshow(panel.inset)
            inset.axis("off")
        ax.set_title(panel.title, fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        save(fig, path)
    plt.close(fig)
    return fig


def _interval_within_gop(header, index: int) -> int:
    """``index`` if frames ``index`` and ``index + 1`` share a GOP (its field is trained
    between them), else ``index - 1`` when that pair does; else ``index`` (or the last pair)."""
    gop_of = np.repeat(np.arange(len(header.gops)), [g.length for g in header.gops])
    last = header.frames - 2
    if last < 0:
        raise InputError("a one-frame file has no in-between frame")
    for i in (index, index - 1):
        if 0 <= i <= last and gop_of[i] == gop_of[i + 1]:
            return i
    return min(max(index, 0), last)


@dataclass
class Pictures:
    """The figures written and their panels (by figure file)."""

    files: list[str] = field(default_factory=list)
    panels: dict[str, list[Panel]] = field(default_factory=dict)


def sibling(path: Path, tag: str) -> Path:
    return path.with_name(f"{path.stem}-{tag}{path.suffix}")


def write_pictures(
    nrff_file: str | os.PathLike,
    reference: str | os.PathLike,
    index: int,
    output: str | os.PathLike,
    *,
    siren_file: str | os.PathLike | None = None,
    frames: str | None = None,
    crop: tuple[int, int, int, int] | None = None,
    device: str = "auto",
    force: bool = False,
    reporter=None,
) -> Pictures:
    """Write OUT (the parts of frame ``index``), OUT-sr (2x crops) and OUT-interp (t + 1/2), each as
    PNG with a PDF beside it."""
    from nrff.api import load
    from nrff.progress import Reporter

    with (reporter or Reporter(False)).task("pictures", 3, unit="figures") as tick:
        return _write_pictures(load, nrff_file, reference, index, output, siren_file, frames, crop, device, force, tick)


def _write_pictures(load, nrff_file, reference, index, output, siren_file, frames, crop, device, force, tick) -> Pictures:

    out = Path(output)
    targets = {"parts": out, "sr": sibling(out, "sr"), "interp": sibling(out, "interp")}
    for p in targets.values():
        check_output(p, force)
        check_output(p.with_suffix(".pdf"), force)
    data = load(nrff_file)
    siren = load(siren_file) if siren_file is not None else None
    ref = reference_frame(reference, index, frames)
    h = _header(data)
    name = f"{_method(data).name}, {h.frames} frames {h.width}x{h.height}, {_bpp(data):.3f} bpp"
    result = Pictures()
    panels = frame_panels(data, index, ref, siren=siren, device=device)
    figure(panels, f"{name}: frame {index} (0-based) and its parts", targets["parts"])
    result.panels[str(targets["parts"])] = panels
    tick(1)
    panels = sr_panels(data, index, ref, crop=crop, device=device)
    figure(panels, f"{name}: frame {index}, 2x super-resolution of a crop", targets["sr"])
    result.panels[str(targets["sr"])] = panels
    tick(2)
    between = _interval_within_gop(h, index)
    panels = interpolation_panels(data, between, device=device)
    figure(panels, f"{name}: in-between frame at t = {between}.5", targets["interp"], columns=4)
    result.panels[str(targets["interp"])] = panels
    tick(3)
    result.files = [str(p) for p in targets.values()]
    return result


__all__ = ["Panel", "Pictures", "colour_key", "colour_wheel", "figure", "flow_to_colour", "frame_panels",
           "interpolation_panels", "sr_panels", "write_pictures"]
