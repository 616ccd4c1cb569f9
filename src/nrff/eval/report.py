"""Reports from a results file of ``nrff bench``: RD plots, BD tables, where the bits go.

* **RD plots**: PSNR-bpp and SSIM-bpp, one curve per method, one figure per
  clip and one averaged over clips.
* **Averaging over clips** is done at matching operating points: for each
  method and point (key-frame CRF, or CRF for an anchor), the mean bpp and the
  mean quality over the clips. This is how codec comparisons average per-QP
  results, every plotted point is a real run on every clip, and it needs no
  model of the curves. BD-style interpolation would instead need every clip's
  curves to overlap and be monotonic, and would plot points nobody measured. A
  point missing on some clip is left out of the average (and said so).
* **BD tables**: BD-rate (PSNR and SSIM as the quality axis) and BD-PSNR of
  every curve against an anchor, per clip and as the mean over clips, with
  :func:`nrff.eval.metrics.bd_rate` / :func:`nrff.eval.metrics.bd_psnr` (``bjontegaard``,
  pchip). The default anchor of a curve is x264 ``medium`` at the curve's own
  GOP length. Where a BD value is undefined (fewer than 4 points, a curve whose
  quality does not rise with the rate, curves that do not overlap) the table
  says n/a and why; where the curves overlap on less than 75 % of their union
  it says so, because the value then describes only that part.
* **Bits**: for every nrff row, how its bytes split between key frames,
  networks and container, in total and per GOP (tables and stacked bars).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nrff.eval.bench import load_rows
from nrff.errors import InputError, NrffWarning, OutputExistsError
from nrff.eval.metrics import RDPoint, bd_psnr, bd_rate
from nrff.eval.plots import curve_styles, plot_bits, plot_rd
from nrff.progress import Reporter

MIN_OVERLAP = 0.75


@dataclass(frozen=True)
class Curve:
    """The rows of one method on one clip, sorted by rate."""

    clip: str
    method: str
    kind: str
    settings: dict
    rows: tuple[dict, ...]

    @property
    def gop(self) -> int:
        return int(self.settings.get("gop", 0))

    def points(self) -> list[RDPoint]:
        return [RDPoint(r["bpp"], r["psnr"], r["ssim"], f"{self.method} {r['point']:g}") for r in self.rows]


def curves(rows: Sequence[dict]) -> list[Curve]:
    """One curve per (clip, method label). Rows of a label whose settings were later
    changed (older keys in the same file) are left out, with a warning."""
    latest: dict[tuple[str, str], str] = {}
    for r in rows:  # rows are appended in time order: the last settings win
        latest[(r["clip"], r["method"])] = json.dumps(r["settings"], sort_keys=True)
    grouped: dict[tuple[str, str], list[dict]] = {}
    stale = 0
    for r in rows:
        k = (r["clip"], r["method"])
        if json.dumps(r["settings"], sort_keys=True) != latest[k]:
            stale += 1
            continue
        grouped.setdefault(k, []).append(r)
    if stale:
        warnings.warn(f"{stale} rows with superseded settings of the same method label were left out", NrffWarning,
                      stacklevel=2)
    out = []
    for (clip, method), rs in grouped.items():
        rs = sorted(rs, key=lambda r: r["bpp"])
        out.append(Curve(clip, method, rs[0]["kind"], rs[0]["settings"], tuple(rs)))
    return out


def clips_of(cs: Sequence[Curve]) -> list[str]:
    return list(dict.fromkeys(c.clip for c in cs))


def methods_of(cs: Sequence[Curve]) -> list[str]:
    return list(dict.fromkeys(c.method for c in cs))


def average_curves(cs: Sequence[Curve]) -> tuple[dict[str, list[RDPoint]], list[str]]:
    """Per method, the mean (bpp, PSNR, SSIM) over all clips at each operating point
    measured on every clip; also notes on the points left out."""
    clips = clips_of(cs)
    out: dict[str, list[RDPoint]] = {}
    notes = []
    for method in methods_of(cs):
        by_clip = {c.clip: {r["point"]: r for r in c.rows} for c in cs if c.method == method}
        points = sorted({p for rows in by_clip.values() for p in rows})
        kept = [p for p in points if all(p in by_clip.get(clip, {}) for clip in clips)]
        if len(kept) < len(points):
            notes.append(f"{method}: point(s) {', '.join(f'{p:g}' for p in points if p not in kept)} "
                         f"missing on some clip, left out of the average")
        pts = []
        for p in kept:
            rs = [by_clip[clip][p] for clip in clips]
            pts.append(RDPoint(float(np.mean([r["bpp"] for r in rs])), float(np.mean([r["psnr"] for r in rs])),
                               float(np.mean([r["ssim"] for r in rs])), f"{method} {p:g}"))
        if pts:
            out[method] = sorted(pts, key=lambda q: q.bpp)
    return out, notes


# ----------------------------------------------------------------------------- BD tables


@dataclass
class BDEntry:
    """BD values of one curve against its anchor on one clip (None: undefined, see ``note``)."""

    clip: str
    method: str
    anchor: str | None
    bd_rate_psnr: float | None = None
    bd_rate_ssim: float | None = None
    bd_psnr: float | None = None
    notes: list[str] = field(default_factory=list)


ANCHOR_CODECS = {"x264": "medium", "x265": "medium", "svtav1": "4"}  # codec -> the preset anchors are compared at


def default_anchor(curve: Curve, candidates: Sequence[Curve], codec: str = "x264") -> Curve | None:
    """The ``codec`` anchor (x264/x265 preset medium, SVT-AV1 preset 4) at the curve's GOP length, on the same
    clip (B-frames on)."""
    for c in candidates:
        if (c.clip == curve.clip and c.kind == codec and c.settings.get("preset") == ANCHOR_CODECS[codec]
                and c.gop == curve.gop and c.settings.get("bframes", True)):
            return c
    return None


def anchor_matrix(cs: Sequence[Curve], clips: Sequence[str]) -> str:
    """BD-rate (PSNR) of every curve against each anchor codec at its GOP, per clip and averaged."""
    codecs = [k for k in ANCHOR_CODECS if any(c.kind == k for c in cs)]
    lines = ["| clip | method | " + " | ".join(f"vs {k}" for k in codecs) + " |", "|---|---|" + "---:|" * len(codecs)]
    values: dict[tuple[str, str], list[float | None]] = {}
    for c in cs:
        row = []
        for k in codecs:
            anchor = default_anchor(c, cs, k)
            row.append(None if anchor is None or anchor is c else bd_entry(c, anchor).bd_rate_psnr)
        values[(c.clip, c.method)] = row
        lines.append(f"| {c.clip} | {c.method} | " + " | ".join(_fmt(v, " %") for v in row) + " |")
    if len(clips) > 1:
        for method in methods_of(cs):
            rows = [values.get((clip, method)) for clip in clips]
            if any(r is None for r in rows):
                continue
            means = [float(np.mean(col)) if all(v is not None for v in col) else None for col in zip(*rows)]
            lines.append(f"| mean | {method} | " + " | ".join(_fmt(v, " %") for v in means) + " |")
    return "\n".join(lines)


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    lo, hi = max(min(a), min(b)), min(max(a), max(b))
    span = max(max(a), max(b)) - min(min(a), min(b))
    return max(hi - lo, 0.0) / span if span > 0 else 1.0


def _bd(fn, anchor: Sequence[RDPoint], test: Sequence[RDPoint], metric: str, what: str, notes: list[str]) -> float | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overlap is reported in the notes instead
        try:
            value = fn(anchor, test, metric=metric)
        except InputError as exc:
            notes.append(f"{what}: {exc}")
            return None
    if not np.isfinite(value):
        notes.append(f"{what}: undefined")
        return None
    return value


def bd_entry(curve: Curve, anchor: Curve | None, why_missing: str = "") -> BDEntry:
    entry = BDEntry(curve.clip, curve.method, anchor.method if anchor else None)
    if anchor is None:
        entry.notes.append(why_missing or "no anchor")
        return entry
    a, t = anchor.points(), curve.points()
    entry.bd_rate_psnr = _bd(bd_rate, a, t, "psnr", "BD-rate (PSNR)", entry.notes)
    entry.bd_rate_ssim = _bd(bd_rate, a, t, "ssim", "BD-rate (SSIM)", entry.notes)
    entry.bd_psnr = _bd(bd_psnr, a, t, "psnr", "BD-PSNR", entry.notes)
    if entry.bd_rate_psnr is not None:
        share = _overlap([p.psnr for p in a], [p.psnr for p in t])
        if share < MIN_OVERLAP:
            entry.notes.append(f"PSNR ranges overlap on {100 * share:.0f} % of their union")
    return entry


def bd_table(cs: Sequence[Curve], anchor: str | None = None) -> list[BDEntry]:
    """BD values of every curve against ``anchor`` (a method label) or the default anchor."""
    entries = []
    for c in cs:
        if anchor is None:
            a = default_anchor(c, cs)
            why = f"no x264 medium run at GOP {c.gop} on {c.clip}"
        else:
            a = next((x for x in cs if x.clip == c.clip and x.method == anchor), None)
            why = f"no {anchor} rows on {c.clip}"
        entries.append(bd_entry(c, a, why))
    return entries


def mean_over_clips(entries: Sequence[BDEntry], clips: Sequence[str]) -> list[BDEntry]:
    """Per method, the mean of each BD value over the clips (n/a unless defined on every clip)."""
    out = []
    for method in dict.fromkeys(e.method for e in entries):
        mine = {e.clip: e for e in entries if e.method == method}
        anchors = sorted({e.anchor for e in mine.values() if e.anchor})
        mean = BDEntry("mean", method, ", ".join(anchors) or None)
        for attr in ("bd_rate_psnr", "bd_rate_ssim", "bd_psnr"):
            values = [getattr(mine[c], attr) if c in mine else None for c in clips]
            if all(v is not None for v in values):
                setattr(mean, attr, float(np.mean(values)))
        missing = [c for c in clips if c not in mine or mine[c].bd_rate_psnr is None]
        if missing:
            mean.notes.append(f"not defined on {', '.join(missing)}")
        out.append(mean)
    return out


def _fmt(value: float | None, unit: str, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}{unit}"


def bd_markdown(entries: Sequence[BDEntry]) -> str:
    lines = ["| clip | method | anchor | BD-rate (PSNR) | BD-rate (SSIM) | BD-PSNR | notes |",
             "|---|---|---|---:|---:|---:|---|"]
    for e in entries:
        lines.append(f"| {e.clip} | {e.method} | {e.anchor or '-'} | {_fmt(e.bd_rate_psnr, ' %')} | "
                     f"{_fmt(e.bd_rate_ssim, ' %')} | {_fmt(e.bd_psnr, ' dB', 3)} | {'; '.join(e.notes)} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- tables of runs and bits


def runs_markdown(cs: Sequence[Curve]) -> str:
    lines = ["| clip | method | point | bytes | bpp | PSNR (dB) | SSIM | MS-SSIM | encode s | decode s | device |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in cs:
        for r in sorted(c.rows, key=lambda r: r["point"]):
            ms = "-" if r.get("ms_ssim") is None else f"{r['ms_ssim']:.4f}"
            lines.append(f"| {c.clip} | {c.method} | {r['point']:g} | {r['bytes']} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
                         f"{r['ssim']:.4f} | {ms} | {r['encode_seconds']:.2f} | {r['decode_seconds']:.2f} | {r['device']} |")
    return "\n".join(lines) + "\n"


def bits_rows(cs: Sequence[Curve]) -> list[dict]:
    """Per nrff row: bytes of key frames, networks and container (headers, GOP table, CRCs)."""
    out = []
    for c in cs:
        for r in sorted(c.rows, key=lambda r: r["point"]):
            if not r.get("gops"):
                continue
            key = sum(g["keyframe_bytes"] for g in r["gops"])
            net = sum(g["network_bytes"] for g in r["gops"])
            out.append({"clip": c.clip, "method": c.method, "point": r["point"], "bytes": r["bytes"],
                        "bpp": r["bpp"], "keyframe_bytes": key, "network_bytes": net, "container_bytes": r["bytes"] - key - net,
                        "gops": r["gops"]})
    return out


def bits_markdown(bits: Sequence[dict]) -> str:
    def pct(part: int, whole: int) -> str:
        return f"{part} ({100 * part / whole:.1f} %)"

    lines = ["| clip | method | point | bytes | key frames | networks | container |", "|---|---|---:|---:|---:|---:|---:|"]
    for b in bits:
        lines.append(f"| {b['clip']} | {b['method']} | {b['point']:g} | {b['bytes']} | {pct(b['keyframe_bytes'], b['bytes'])} | "
                     f"{pct(b['network_bytes'], b['bytes'])} | {pct(b['container_bytes'], b['bytes'])} |")
    lines += ["", "Per GOP:", "",
              "| clip | method | point | GOP | frames | key-frame bytes | network bytes | networks / key frame | PSNR (dB) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for b in bits:
        for g in b["gops"]:
            ratio = f"{g['network_bytes'] / g['keyframe_bytes']:.3f}" if g["keyframe_bytes"] else "-"
            lines.append(f"| {b['clip']} | {b['method']} | {b['point']:g} | {g['index']} | {g['frames']} | "
                         f"{g['keyframe_bytes']} | {g['network_bytes']} | {ratio} | {g['psnr']:.2f} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- plots


# ----------------------------------------------------------------------------- the report


@dataclass
class Report:
    """What :func:`write_report` wrote, and the tables it computed."""

    folder: str
    files: list[str] = field(default_factory=list)
    bd: list[BDEntry] = field(default_factory=list)
    bd_mean: list[BDEntry] = field(default_factory=list)
    bits: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    markdown: str = ""


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text)


def write_report(results: str | os.PathLike, out: str | os.PathLike, *, anchor: str | None = None,
                 force: bool = False, reporter: Reporter | None = None) -> Report:
    """Plots (PNG, and PDF beside each) and markdown tables of a results file into the folder ``out``."""
    rows = load_rows(results)
    if not rows:
        raise InputError(f"{results}: no rows (run `nrff bench run` first)")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file; give a folder for the report")
    if folder.exists() and any(folder.iterdir()) and not force:
        raise OutputExistsError(f"{folder} is not empty; pass --force to write into it")
    cs = curves(rows)
    if anchor is not None and anchor not in methods_of(cs):
        raise InputError(f"anchor {anchor!r} is not a method of {results} (methods: {', '.join(methods_of(cs))})")
    folder.mkdir(parents=True, exist_ok=True)
    total = len(clips_of(cs)) * (1 + len(methods_of(cs))) + 1
    with (reporter or Reporter(False)).task("report", total, unit="figures") as tick:
        return _write(Report(str(folder)), folder, rows, cs, Path(results).name, anchor, tick)


def _write(report: Report, folder: Path, rows: Sequence[dict], cs: Sequence[Curve], name_of_results: str,
           anchor: str | None, tick) -> Report:
    clips, methods = clips_of(cs), methods_of(cs)
    colours = curve_styles(methods)
    done = 0

    def save(name: str) -> Path:
        nonlocal done
        report.files += [str(folder / name)] + ([str((folder / name).with_suffix(".pdf"))] if name.endswith(".png") else [])
        done += name.endswith(".png")
        tick(done)
        return folder / name

    md = [f"# RD report of `{name_of_results}`", ""]
    images = []
    for clip in clips:
        name = f"rd_{_slug(clip)}.png"
        plot_rd({c.method: c.points() for c in cs if c.clip == clip}, f"{clip}", save(name), colours)
        images.append(name)
    averaged, report.notes = average_curves(cs)
    if len(clips) > 1:
        plot_rd(averaged, f"mean over {len(clips)} clips (at matching operating points)", save("rd_average.png"), colours)
        images.append("rd_average.png")
    md += ["## Rate-distortion", ""] + [f"![{n}]({n})" for n in images] + [""]
    md += [f"* {n}" for n in report.notes] + ([""] if report.notes else [])

    report.bd = bd_table(cs, anchor)
    report.bd_mean = mean_over_clips(report.bd, clips)
    anchor_text = f"`{anchor}`" if anchor else "x264 preset medium at the same GOP length"
    bd_md = bd_markdown(report.bd + (report.bd_mean if len(clips) > 1 else []))
    save("bd_rate.md").write_text(f"BD metrics against {anchor_text} (bjontegaard, pchip; negative BD-rate = fewer bits)\n\n" + bd_md)
    md += ["## BD metrics", "", f"Against {anchor_text}; `nrff.eval.metrics` (bjontegaard, pchip). "
           "Negative BD-rate = fewer bits for the same quality.", "", bd_md]
    matrix = anchor_matrix(cs, clips)
    save("bd_vs_anchors.md").write_text("BD-rate (PSNR) against each anchor at the same GOP length\n\n" + matrix + "\n")
    md += ["", "BD-rate (PSNR) against each anchor codec (x264 and x265 preset medium, SVT-AV1 preset 4) at the same "
           "GOP length:", "", matrix, ""]

    report.bits = bits_rows(cs)
    if report.bits:
        bits_md = bits_markdown(report.bits)
        save("bits.md").write_text(bits_md)
        md += ["## Where the bits go", "", bits_md]
        for clip in clips:
            for method in methods:
                mine = [b for b in report.bits if b["clip"] == clip and b["method"] == method]
                if mine:
                    name = f"bits_{_slug(clip)}_{_slug(method)}.png"
                    plot_bits(mine, f"{clip}, {method}: bytes per GOP", save(name))
                    md.append(f"![{name}]({name})")
        md.append("")
    md += ["## Runs", "", runs_markdown(cs)]
    provenance = dict.fromkeys(
        f"nrff {r.get('version')}, commit {r.get('commit')}{' (with local changes)' if r.get('dirty') else ''}, "
        f"{r.get('machine')}, device {r.get('device')}" for r in rows)
    md += ["Rows made with:", ""] + [f"* {p}" for p in provenance] + [""]
    report.markdown = "\n".join(md)
    save("report.md").write_text(report.markdown)
    return report


__all__ = ["BDEntry", "Curve", "Report", "anchor_matrix", "average_curves", "bd_table", "curves", "plot_bits", "plot_rd",
           "write_report"]
