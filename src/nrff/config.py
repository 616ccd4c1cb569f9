"""Typed configuration of an encode, the named presets, and the one way to build both.

A preset is a whole operating point: key-frame codec, weight format, network share
and training schedule. ``EncodeConfig.from_preset("default", crf=30, quant_bits=6)``
is how the command line, the demo, the benchmarks and the tools build a
configuration: the preset's options, then the options given by flat name.
Constructing ``EncodeConfig(preset="fast")`` applies the preset to every part not
given. ``paper`` is the published configuration (x264 yuv444p key frames, fp16
weights, networks at 0.25x the key-frame bytes, 5,000 epochs); ``default`` and
``fast`` are the measured best (see docs/results.md and docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from nrff.errors import InputError


def _method(name: str):
    from nrff.methods import get_method  # methods build on the configs: imported when needed

    return get_method(name)


@dataclass(frozen=True)
class KeyframeConfig:
    """Coding of the key frames (libx264 yuv444p CRF 20, as published). ``pix_fmt`` and ``preset``
    None: the codec's defaults (yuv444p / medium for x264 and x265, yuv420p / 4 for AV1)."""

    codec: str = "x264"
    crf: float | None = None  # None: the codec's default (20 for x264/x265, as published)
    pix_fmt: str | None = None
    preset: str | None = None
    mode: str = "intra"  # "intra": each key frame alone; "predicted": predicted streams between key frames
    random_access: int = 8  # predicted: a random-access point (decoding can start there) every so many GOPs
    tune: str | None = None  # x264/x265 only, e.g. "psnr"

    def __post_init__(self) -> None:
        from nrff.codec.keyframes import keyframe_codec

        codec = keyframe_codec(self.codec)
        if self.crf is None:
            object.__setattr__(self, "crf", codec.default_crf)
        if self.pix_fmt is None:
            object.__setattr__(self, "pix_fmt", codec.default_pix_fmt)
        if self.preset is None:
            object.__setattr__(self, "preset", codec.default_preset)
        if isinstance(self.preset, int):
            object.__setattr__(self, "preset", str(self.preset))


@dataclass(frozen=True)
class FieldConfig:
    """The networks: method, size budget and architecture."""

    method: str = "nrff"
    split: bool | None = None  # None: the method's default (on for nrff)
    ratio: float = 0.25  # fp16 network bytes / key-frame bytes, per GOP
    ratio_mode: str = "fixed"  # "probe": shift bytes between GOPs by how much each must explain
    # "motion": the share is raised from ``ratio`` to 0.5 on clips whose frames differ much from their
    # key frames (nrff.encoder.plan.measured_share); "fixed": ``ratio`` as given
    share_rule: str = "fixed"
    target_bpp: float | None = None  # siren: size the networks for this bpp
    hidden_layers: int = 1
    reuse: int = 2  # the hidden layer is applied this many times (shared weights)
    quant_bits: int | None = None  # None: fp16 weights; k: k-bit grid + entropy coding (bitstream v2)
    quant_grid: str = "tensor"  # "tensor": one grid per tensor (format 1); "column": output layers per column (format 2, v3)
    size_bits: float | None = None  # bits per parameter assumed when sizing networks (default: 16, or k - 1 with key frames, else k - 0.5)

    @property
    def bytes_per_param(self) -> float:
        if self.size_bits is not None:
            return self.size_bits / 8
        if self.quant_bits is None:
            return 2.0
        # entropy coding saves about a bit per parameter on flow/residual networks; on networks
        # that are the whole picture (siren, nerv) about 0.7 bit (measured on the bundled clip):
        # sized at k - 0.5 bits so a --target-bpp lands just under the target
        saved = 1 if _method(self.method).uses_keyframes else 0.5
        return max(self.quant_bits - saved, 1) / 8


@dataclass(frozen=True)
class TrainConfig:
    """The fitting schedule. An epoch visits each non-key frame twice."""

    epochs: int = 5000
    lr: float | None = None  # None: the method's learning rate from the paper
    warmup: float = 0.2  # fraction of steps with a linear warm-up
    final_lr: float = 0.0  # cosine decay ends at this fraction of lr
    grad_clip: float = 0.1  # per-GOP gradient-norm clip
    batch_frames: int = 1  # frames per GOP per step
    pixel_stride: int = 8  # each step sees a random 1/stride of the rows and of the columns
    # coarse to fine: from ``fine_from`` x the steps on, steps see 1/``fine_stride`` of the rows and columns
    fine_stride: int | None = None
    fine_from: float = 0.75
    amp: bool = True  # bf16 autocast on CUDA (never on CPU)
    log_every: int = 50  # steps between host syncs (progress, divergence checks)
    refresh_every: int = 50  # nrff-single: steps between re-renders of the reference chain
    seed: int = 0
    guard: bool = True  # detect divergence per GOP and roll back with a lower lr
    qat_start: float = 0.8  # with quantised weights: fraction of steps before fake quantisation starts
    zero_output: bool = False  # start the output layers at zero: zero flow, even mix, no residual (not in the paper)
    # The published code zeroes gradients once per epoch, so they accumulate (and are clipped
    # in place) over the epoch's steps. Off by default (each step its own gradient); on, it
    # reproduces that code (a resumed run then restarts the epoch's accumulation).
    accumulate: bool = False
    # off (eager), on (torch.compile fuses the networks' part of the step) or graphs (also CUDA
    # graphs on CUDA); compiled steps give other bytes than eager ones (same for a given mode)
    compile: str = "off"


# preset -> the options it sets by flat name (everything else keeps the paper's value); the
# training schedule of each preset belongs to the method (``Method.schedule``). Key-frame options
# other than the codec apply only while the key frames use the preset's codec.
PRESET_OPTIONS: dict[str, dict[str, object]] = {
    "paper": {},
    "default": {"keyframe_codec": "av1", "keyframe_preset": "2", "quant_bits": 8, "ratio": 0.25, "share_rule": "motion"},
    "fast": {"keyframe_codec": "av1", "quant_bits": 8, "ratio": 0.25, "share_rule": "motion"},
}
PRESETS = tuple(PRESET_OPTIONS)
KEYFRAME_DETAILS = ("keyframe_pix_fmt", "keyframe_preset", "keyframe_tune")


def preset_options(preset: str, given: dict[str, object]) -> dict[str, object]:
    """The flat options of ``preset`` overridden by ``given`` (whose None values are dropped);
    ``quant_bits=0`` asks for fp16 weights."""
    if preset not in PRESET_OPTIONS:
        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    given = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - set(OPTION_NAMES))
    if unknown:
        raise InputError(f"unknown encode option {unknown[0]!r}")
    merged = dict(PRESET_OPTIONS[preset])
    if given.get("keyframe_codec", merged.get("keyframe_codec")) != merged.get("keyframe_codec"):
        merged = {k: v for k, v in merged.items() if k not in KEYFRAME_DETAILS}
    merged.update(given)
    if "ratio" in given and "share_rule" not in given:  # a share asked for is the share used
        merged["share_rule"] = "fixed"
    if merged.get("quant_bits") == 0:
        merged["quant_bits"] = None
    return merged


def _parts(options: dict[str, object]) -> dict[str, dict]:
    parts: dict[str, dict] = {"": {}, "field": {}, "train": {}, "keyframes": {}}
    for name, value in options.items():
        part, attr = OPTION_NAMES[name]
        parts[part][attr] = value
    return parts


@dataclass(frozen=True)
class EncodeConfig:
    """Everything an encode is set to: GOP length, the field (method, widths, quantisation),
    the training schedule, the key frames, the device and the preset.

    Build one with ``EncodeConfig.from_preset("default", crf=30, quant_bits=6)`` (the preset's
    options, then options by flat name). A part left as None (``field``, ``train``,
    ``keyframes``) is the preset's: its networks and weight format, its schedule for the
    method, its key frames; so ``EncodeConfig(preset="fast")`` is the whole fast preset.
    """

    gop: int = 5
    field: FieldConfig | None = None
    train: TrainConfig | None = None
    keyframes: KeyframeConfig | None = None
    device: str = "auto"
    preset: str = "default"

    def __post_init__(self) -> None:
        parts = _parts(preset_options(self.preset, {}))
        if self.field is None:
            object.__setattr__(self, "field", FieldConfig(**parts["field"]))
        if self.keyframes is None:
            object.__setattr__(self, "keyframes", KeyframeConfig(**parts["keyframes"]))
        if self.train is None:
            object.__setattr__(self, "train", replace(_method(self.field.method).schedule(self.preset), **parts["train"]))

    @classmethod
    def from_preset(cls, preset: str = "default", **options) -> EncodeConfig:
        """A preset with options by flat name (``crf``, ``epochs``, ``quant_bits``, ``keyframe_codec``,
        ...; see :data:`OPTION_NAMES`); an option given as None keeps the preset's value,
        ``quant_bits=0`` asks for fp16 weights."""
        parts = _parts(preset_options(preset, options))
        field_config = FieldConfig(**parts["field"])
        train = replace(_method(field_config.method).schedule(preset), **parts["train"])
        return cls(field=field_config, train=train, keyframes=KeyframeConfig(**parts["keyframes"]), preset=preset,
                   **parts[""])

    def validate(self) -> None:
        spec = _method(self.field.method)
        spec.resolve_split(self.field.split)
        if self.gop < 1:
            raise InputError(f"GOP length must be at least 1 (got {self.gop})")
        if self.gop > 1000:
            raise InputError(f"GOP length {self.gop} is too long (at most 1000)")
        if not 0 < self.field.ratio <= 100:
            raise InputError(f"--ratio must be in (0, 100] (got {self.field.ratio:g})")
        if self.field.target_bpp is not None and not 0 < self.field.target_bpp <= 48:
            raise InputError(f"--target-bpp must be in (0, 48] (got {self.field.target_bpp:g})")
        if not spec.uses_keyframes and self.field.target_bpp is None:
            raise InputError(f"{spec.name} has no key frames to size its networks from: give --target-bpp")
        if not 0 <= self.train.seed <= 2**63 - 1:
            raise InputError(f"--seed must be a whole number from 0 to 2**63 - 1 (got {self.train.seed})")
        if self.train.epochs < 1:
            raise InputError(f"--epochs must be at least 1 (got {self.train.epochs})")
        if self.train.pixel_stride < 1 or self.train.batch_frames < 1 or (self.train.fine_stride or 1) < 1:
            raise InputError("pixel stride and batch size must be at least 1")
        if not 0 <= self.train.fine_from <= 1:
            raise InputError("fine_from must be in [0, 1]")
        if self.field.share_rule not in ("fixed", "motion"):
            raise InputError(f"unknown share rule {self.field.share_rule!r}; use fixed or motion")
        if self.field.ratio_mode not in ("fixed", "probe"):
            raise InputError(f"unknown ratio mode {self.field.ratio_mode!r}; use fixed or probe")
        if self.keyframes.mode not in ("intra", "predicted"):
            raise InputError(f"unknown key-frame mode {self.keyframes.mode!r}; use intra or predicted")
        if not 1 <= self.keyframes.random_access <= 10000:
            raise InputError("--random-access must be between 1 and 10000 GOPs")
        if self.field.quant_bits is not None and not 2 <= self.field.quant_bits <= 16:
            raise InputError(f"--quant-bits must be between 2 and 16 (got {self.field.quant_bits})")
        if self.field.quant_grid not in ("tensor", "column"):
            raise InputError(f"unknown quantisation grid {self.field.quant_grid!r}; use tensor or column")
        if self.field.quant_grid == "column" and not spec.column_grids:
            raise InputError(f"--quant-grid column is for coordinate fields (nrff, nrff-single, siren), not {spec.name}")
        if not 1 <= self.field.hidden_layers <= 4 or not 1 <= self.field.reuse <= 4:
            # the decode budget's limits (nrff.decoder.budget): files beyond them need an override to decode
            raise InputError(f"hidden_layers and reuse must be 1..4 (got {self.field.hidden_layers} and {self.field.reuse})")
        if self.field.size_bits is not None and not 0.5 <= self.field.size_bits <= 32:
            raise InputError(f"size bits must be between 0.5 and 32 (got {self.field.size_bits:g})")
        if not 0 <= self.train.qat_start <= 1:
            raise InputError("qat_start must be in [0, 1]")
        from nrff.encoder.fit.compiled import check_compile_mode

        check_compile_mode(self.train.compile)
        from nrff.devices import check_device_name

        check_device_name(self.device)

    @property
    def method(self):
        """The registered method object of ``field.method``."""
        return _method(self.field.method)

    @property
    def split(self) -> bool:
        return self.method.resolve_split(self.field.split)

    @property
    def lr(self) -> float:
        return self.train.lr if self.train.lr is not None else self.method.lr


def _option_names() -> dict[str, tuple[str, str]]:
    names = {"gop": ("", "gop"), "device": ("", "device")}
    names.update({f.name: ("field", f.name) for f in fields(FieldConfig)})
    names.update({f.name: ("train", f.name) for f in fields(TrainConfig)})
    names.update({"crf": ("keyframes", "crf"), "keyframe_codec": ("keyframes", "codec"),
                  "keyframe_pix_fmt": ("keyframes", "pix_fmt"), "keyframe_preset": ("keyframes", "preset"),
                  "keyframe_mode": ("keyframes", "mode"), "random_access": ("keyframes", "random_access"),
                  "keyframe_tune": ("keyframes", "tune")})
    return names


# flat option name -> (part of EncodeConfig, attribute)
OPTION_NAMES = _option_names()
