"""The figures' look, in one place: one matplotlib style, curves told apart by colour, marker
and line style, and every figure saved as PNG with a vector PDF beside it.

Used by :mod:`nrff.eval.report` (RD curves, bytes per GOP) and :mod:`nrff.eval.pictures`
(panels of a frame).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nrff.eval.metrics import RDPoint

STYLE = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs on every machine
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # TrueType in the PDF, editable and searchable
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
LINES = ("-", "--", "-.", ":")


def pyplot():
    """matplotlib's pyplot on the Agg backend, with :data:`STYLE` applied."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def curve_styles(methods: Sequence[str]) -> dict[str, dict]:
    """Colour, marker and line style per method: each pair of curves differs in all three
    until ten, and in colour or marker beyond (readable in grey print too)."""
    cmap = pyplot().get_cmap("tab10")
    return {m: {"color": cmap(i % 10), "marker": MARKERS[i % len(MARKERS)], "linestyle": LINES[i % len(LINES)]}
            for i, m in enumerate(methods)}


def save(fig, path: str | os.PathLike) -> list[str]:
    """Save ``fig`` to ``path`` (PNG) and a PDF beside it; return both paths."""
    path = Path(path)
    pdf = path.with_suffix(".pdf")
    fig.savefig(path)
    fig.savefig(pdf)
    return [str(path), str(pdf)]


def plot_rd(curves_by_method: dict[str, Sequence[RDPoint]], title: str, path: str | os.PathLike,
            styles: dict[str, dict] | None = None):
    """PSNR-bpp and SSIM-bpp side by side, one curve per method, one legend below both;
    saved as PNG and PDF; returns the figure."""
    plt = pyplot()
    styles = styles or curve_styles(list(curves_by_method))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharex=True)
    for method, pts in curves_by_method.items():
        pts = sorted(pts, key=lambda p: p.bpp)
        x = [p.bpp for p in pts]
        look = {"markersize": 4.5, "linewidth": 1.4, **styles.get(method, {})}
        axes[0].plot(x, [p.psnr for p in pts], label=method, **look)
        axes[1].plot(x, [p.ssim for p in pts], label=method, **look)
    for ax, ylabel in zip(axes, ("PSNR (dB, RGB)", "SSIM (RGB)")):
        ax.set_xlabel("rate (bits per pixel)")
        ax.set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3) or 1, frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06 + 0.045 * ((len(labels) + 2) // 3), 1, 1))
    save(fig, path)
    plt.close(fig)
    return fig


def plot_bits(bits: Sequence[dict], title: str, path: str | os.PathLike):
    """Stacked bars per GOP (key frame, networks), one panel per operating point on a shared
    bytes axis; saved as PNG and PDF; returns the figure."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(bits), figsize=(max(3.2 * len(bits), 4.2), 3.6), squeeze=False, sharey=True)
    for ax, b in zip(axes[0], bits):
        idx = [g["index"] for g in b["gops"]]
        key = np.array([g["keyframe_bytes"] for g in b["gops"]])
        net = np.array([g["network_bytes"] for g in b["gops"]])
        if key.any():  # a method without key frames gets no "key frame" entry
            ax.bar(idx, key, color="#4c72b0", label="key frame")
        ax.bar(idx, net, bottom=key, color="#dd8452", hatch="//", edgecolor="white", linewidth=0, label="networks")
        point = f"CRF {b['point']:g}" if key.any() else f"point {b['point']:g}"
        ax.set_title(f"{point}: {b['bytes']} B, {b.get('bpp', 0):.3f} bpp", fontsize="small")
        ax.set_xlabel("GOP (0-based)")
        ax.set_xticks(idx)
        ax.grid(False, axis="x")
    axes[0][0].set_ylabel("bytes")
    source = next((ax for ax in axes[0] if ax.get_legend_handles_labels()[1][:1] == ["key frame"]), axes[0][0])
    handles, labels = source.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=2, frameon=False)
    fig.suptitle(title, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    save(fig, path)
    plt.close(fig)
    return fig


__all__ = ["STYLE", "curve_styles", "plot_bits", "plot_rd", "pyplot", "save"]
