"""Rate-distortion sweeps: clips x methods x operating points, one results row per run.

A sweep is a small TOML (or JSON) file (see docs/evaluation.md)::

    device = "auto"
    points = [17, 22, 27, 32]          # default operating points: CRFs

    [[clips]]
    path = "/data/sintel_alley_2"      # relative paths are relative to this file
    frames = "0:20"

    [[methods]]
    label = "nrff-split"
    method = "nrff"                    # nrff | nrff-single | siren | nerv | x264 | x265
    split = true
    preset = "paper"

    [[methods]]
    label = "siren"
    method = "siren"
    match = "nrff-split"               # target bpp = that method's bpp at the same clip and CRF

Every run writes its real bitstream into ``<results stem>-streams/`` next to the
results file and appends one JSON line to the results file as soon as it
finishes, so a killed sweep keeps what it finished. A row is identified by its
key (clip, frame range, method label, the method's resolved settings, point):
running the sweep again computes only the rows whose key is missing, and a
changed setting makes new rows instead of silently reusing old ones.

The operating point of an nrff method is its key-frame CRF, of an anchor its
CRF; a SIREN run is sized to the bpp of the matched nrff row at the same CRF,
so the two are compared at equal file size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from nrff.errors import InputError
from nrff.codec.keyframes import keyframe_codec
from nrff.methods import METHODS
from nrff.video.reader import FrameRange

NRFF_METHODS = tuple(METHODS)
MATCHED = tuple(name for name, m in METHODS.items() if not m.uses_keyframes)  # sized to the bpp of a matched nrff run
ANCHORS = ("x264", "x265", "svtav1")
KINDS = NRFF_METHODS + ANCHORS
STREAM_SUFFIX = {"x264": ".264", "x265": ".265", "svtav1": ".obu"}


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ClipSpec:
    """A clip of the sweep: a video path, an optional frame range, a short name for tables."""

    path: str
    name: str
    frames: str | None = None  # START:END, 0-based, END exclusive


@dataclass(frozen=True)
class MethodSpec:
    """One curve of the sweep. ``preset`` is the training schedule (paper | fast) for the
    nrff methods and the encoder preset (medium, slow, ...) for the anchors."""

    label: str
    method: str
    gop: int = 5
    points: tuple[float, ...] | None = None  # None: the sweep's points
    preset: str | None = None  # None: "paper" for nrff methods (paper, default or fast), "medium" for anchors
    # nrff methods
    split: bool | None = None
    epochs: int | None = None
    ratio: float | None = None  # None: the preset's
    seed: int = 0
    lr: float | None = None
    keyframe_codec: str | None = None  # None: the preset's (x264 for paper, av1 for default and fast)
    keyframe_pix_fmt: str | None = None  # None: the codec's default
    keyframe_preset: str | None = None
    keyframe_tune: str | None = None
    keyframe_mode: str = "intra"  # or "predicted" (P-frame key-frame streams)
    random_access: int = 8
    quant_bits: int | None = None  # None: the preset's (fp16 for paper, 8 for default and fast); 0: fp16
    zero_output: bool | None = None  # None: the preset's
    ratio_mode: str = "fixed"
    match: str | None = None  # siren / nerv: the label whose bpp it is sized to
    # anchors
    pix_fmt: str = "yuv420p"
    bframes: bool = True

    @property
    def is_anchor(self) -> bool:
        return self.method in ANCHORS

    def resolved_preset(self) -> str:
        from nrff.eval.baselines import DEFAULT_PRESETS

        return self.preset or (DEFAULT_PRESETS[self.method] if self.is_anchor else "paper")

    def encode_config(self, crf: float, device: str, target_bpp: float | None = None):
        """The :class:`~nrff.config.EncodeConfig` of an nrff method at key-frame CRF ``crf``."""
        from nrff.config import EncodeConfig

        return EncodeConfig.from_preset(
            self.resolved_preset(), gop=self.gop, device=device, method=self.method, split=self.split, ratio=self.ratio,
            target_bpp=target_bpp, quant_bits=self.quant_bits, ratio_mode=self.ratio_mode, epochs=self.epochs,
            seed=self.seed, lr=self.lr, zero_output=self.zero_output, crf=float(crf), keyframe_codec=self.keyframe_codec,
            keyframe_pix_fmt=self.keyframe_pix_fmt, keyframe_preset=self.keyframe_preset, keyframe_tune=self.keyframe_tune,
            keyframe_mode=self.keyframe_mode, random_access=self.random_access,
        )

    def anchor_settings(self, crf: float):
        from nrff.eval.baselines import anchor_settings

        return anchor_settings(self.method, float(crf), self.resolved_preset(), self.gop, self.pix_fmt, self.bframes)

    def settings(self) -> dict:
        """The resolved settings that make a run what it is (part of the row key)."""
        if self.is_anchor:
            return {"codec": self.method, "preset": self.resolved_preset(), "gop": self.gop,
                    "pix_fmt": self.pix_fmt, "bframes": self.bframes}
        config = self.encode_config(20.0, "cpu", target_bpp=1.0 if self.method in MATCHED else None)
        out = {"method": self.method, "split": config.split, "preset": self.resolved_preset(), "gop": self.gop,
               "epochs": config.train.epochs, "seed": self.seed, "lr": config.lr}
        if config.field.quant_bits is not None:
            out["quant_bits"] = config.field.quant_bits
        if config.train.zero_output:
            out["zero_output"] = True
        if self.ratio_mode != "fixed":
            out["ratio_mode"] = self.ratio_mode
        if self.method in MATCHED:
            out["match"] = self.match
        else:
            out.update(ratio=config.field.ratio, keyframe_codec=config.keyframes.codec,
                       keyframe_pix_fmt=config.keyframes.pix_fmt, keyframe_preset=config.keyframes.preset)
            if self.keyframe_tune is not None:
                out["keyframe_tune"] = self.keyframe_tune
            if self.keyframe_mode != "intra":
                out.update(keyframe_mode=self.keyframe_mode, random_access=self.random_access)
        return out


_CLIP_KEYS = {f.name for f in dataclasses.fields(ClipSpec)}
_METHOD_KEYS = {f.name for f in dataclasses.fields(MethodSpec)}
_METHOD_TYPES = {"gop": int, "epochs": int, "seed": int, "ratio": (int, float), "lr": (int, float),
                 "split": bool, "bframes": bool, "random_access": int, "quant_bits": int, "zero_output": bool}  # every other setting but points is a string
_SWEEP_KEYS = {"name", "device", "points", "clips", "methods"}


@dataclass(frozen=True)
class SweepConfig:
    """Clips x methods x operating points."""

    clips: tuple[ClipSpec, ...]
    methods: tuple[MethodSpec, ...]
    points: tuple[float, ...] = (17.0, 22.0, 27.0, 32.0)
    device: str = "auto"
    name: str = "sweep"

    @classmethod
    def load(cls, path: str | os.PathLike) -> SweepConfig:
        """Read a ``.toml`` or ``.json`` sweep; relative clip paths are relative to the file."""
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such sweep file")
        text = p.read_text()
        try:
            data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"{p}: not a valid {'JSON' if p.suffix == '.json' else 'TOML'} sweep: {exc}") from None
        return cls.from_dict(data, base=p.parent, source=str(p))

    @classmethod
    def from_dict(cls, data: dict, base: Path = Path("."), source: str = "sweep") -> SweepConfig:
        _unknown(data, _SWEEP_KEYS, source)
        clips = []
        for i, c in enumerate(_list(data, "clips", source)):
            _unknown(c, _CLIP_KEYS, f"{source}: clip {i + 1}")
            if "path" not in c:
                raise InputError(f"{source}: clip {i + 1} has no path")
            path = Path(os.path.expanduser(str(c["path"])))
            path = (path if path.is_absolute() else base / path).resolve()
            frames = c.get("frames")
            if frames is not None:
                frames = str(FrameRange.parse(str(frames)))
            clips.append(ClipSpec(path=str(path), name=str(c.get("name") or path.stem), frames=frames))
        methods = []
        for i, m in enumerate(_list(data, "methods", source)):
            _unknown(m, _METHOD_KEYS, f"{source}: method {i + 1}")
            if "method" not in m:
                raise InputError(f"{source}: method {i + 1} has no 'method' ({' | '.join(KINDS)})")
            m = dict(m)
            m.setdefault("label", m["method"])
            _check_types(m, f"{source}: method {m['label']}")
            if "points" in m:
                m["points"] = _points(m["points"], f"{source}: method {m['label']}")
            methods.append(MethodSpec(**m))
        config = cls(
            clips=tuple(clips), methods=tuple(methods),
            points=_points(data.get("points", cls.points), source),
            device=str(data.get("device", "auto")), name=str(data.get("name", "sweep")),
        )
        config.validate(source)
        return config

    def validate(self, source: str = "sweep") -> None:
        for kind, names in (("clip", [c.name for c in self.clips]), ("method", [m.label for m in self.methods])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise InputError(f"{source}: {kind} names must be unique; {', '.join(dupes)} appears twice")
        labels = {m.label: m for m in self.methods}
        for m in self.methods:
            if m.method not in KINDS:
                raise InputError(f"{source}: method {m.label!r}: unknown method {m.method!r}; choose one of {', '.join(KINDS)}")
            if m.method in MATCHED:
                target = labels.get(m.match or "")
                if target is None or target.method not in ("nrff", "nrff-single"):
                    raise InputError(f"{source}: {m.method} method {m.label!r} needs match = the label of an nrff or "
                                     "nrff-single method of this sweep (it is sized to that method's bpp)")
                if m.points is not None:
                    raise InputError(f"{source}: {m.method} method {m.label!r} takes the points of {m.match!r}; remove 'points'")
            elif m.match is not None:
                raise InputError(f"{source}: method {m.label!r}: only siren and nerv take 'match'")
            for point in (self.points_of(m) if m.match is None else (20.0,)):
                if m.is_anchor:
                    m.anchor_settings(point).validate(16, 16)
                else:
                    config = m.encode_config(point, self.device, target_bpp=1.0 if m.method in MATCHED else None)
                    config.validate()
                    low, high = keyframe_codec(config.keyframes.codec).crf_range
                    if not low <= point <= high:
                        raise InputError(f"{source}: method {m.label!r}: point {point:g} is outside the "
                                         f"{config.keyframes.codec} CRF range {low:g}..{high:g}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise InputError(f"{source}: unknown device {self.device!r}; use auto, cpu or cuda")

    def points_of(self, method: MethodSpec) -> tuple[float, ...]:
        if method.match is not None:
            return self.points_of(next(m for m in self.methods if m.label == method.match))
        return method.points if method.points is not None else self.points

    def runs(self) -> list[Run]:
        """Every run, in order: per clip, the methods that others match first."""
        ordered = [m for m in self.methods if m.match is None] + [m for m in self.methods if m.match is not None]
        by_label = {m.label: m for m in self.methods}
        return [Run(clip, method, point, by_label.get(method.match or ""))
                for clip in self.clips for method in ordered for point in self.points_of(method)]


def _unknown(data: dict, allowed: set[str], where: str) -> None:
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a table of settings")
    extra = sorted(set(data) - allowed)
    if extra:
        raise InputError(f"{where}: unknown setting {extra[0]!r} (known: {', '.join(sorted(allowed))})")


def _check_types(method: dict, where: str) -> None:
    for key, value in method.items():
        if key == "points":
            continue
        expected = _METHOD_TYPES.get(key, str)
        # bool is an int in Python: a 'gop = true' must not pass as 1
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
            raise InputError(f"{where}: {key} must be {names} (got {value!r})")


def _list(data: dict, key: str, source: str) -> list:
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise InputError(f"{source}: needs at least one entry in [[{key}]]")
    return value


def _points(values, where: str) -> tuple[float, ...]:
    try:
        points = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"{where}: points must be a list of numbers (CRFs)") from None
    if not points or any(not 0 <= p <= 63 for p in points):
        raise InputError(f"{where}: points must be CRFs between 0 and 51 (63 for AV1)")
    return points


# ----------------------------------------------------------------------------- runs and rows


@dataclass(frozen=True)
class Run:
    clip: ClipSpec
    method: MethodSpec
    point: float
    matched: MethodSpec | None = None  # siren / nerv: the method whose bpp it takes

    @property
    def settings(self) -> dict:
        """The method's settings; a SIREN run's include those of the method it is sized to,
        so that changing that method also makes new SIREN rows."""
        settings = self.method.settings()
        if self.matched is not None:
            settings["match"] = {"label": self.matched.label, **self.matched.settings()}
        return settings

    @property
    def key(self) -> str:
        return row_key({"clip": self.clip.name, "frame_range": self.clip.frames, "method": self.method.label,
                        "settings": self.settings, "point": self.point})

    @property
    def label(self) -> str:
        return f"{self.clip.name} {self.method.label} {self.point:g}"

    def stream_name(self) -> str:
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:8]
        suffix = STREAM_SUFFIX.get(self.method.method, ".nrff")
        return f"{_safe(self.clip.name)}_{_safe(self.method.label)}_{self.point:g}_{digest}{suffix}"


def row_key(row: dict) -> str:
    """The identity of a row: clip, frame range, method label, settings, point."""
    return json.dumps({k: row[k] for k in ("clip", "frame_range", "method", "settings", "point")}, sort_keys=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name)
