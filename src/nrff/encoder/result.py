"""What an encode measured: the figures of ``--report``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from nrff import __version__


@dataclass
class EncodeResult:
    """What ``encode`` measured on the file it wrote; ``report()`` is the JSON of ``--report``.

    ``bytes`` is the file's size and ``bpp`` = 8 x bytes / (frames x width x height), headers
    included; ``psnr``/``ssim``/``ms_ssim`` are measured on what the file decodes to (None with
    ``verify=False``). ``gops`` holds per-GOP key-frame and network bytes, widths and PSNR.
    """

    path: str
    bytes: int
    bpp: float
    psnr: float | None
    ssim: float | None
    ms_ssim: float | None
    frames: int
    width: int
    height: int
    fps: float
    encode_seconds: float
    train_seconds: float
    verify_seconds: float
    method: str
    split: bool
    gop: int
    preset: str
    epochs: int
    steps: int
    device: str
    seed: int
    ratio: float | None
    target_bpp: float | None
    keyframes: dict | None
    version: str = __version__
    gops: list[dict] = field(default_factory=list)
    sections: list[dict] = field(default_factory=list)
    recoveries: list[dict] = field(default_factory=list)
    psnr_per_frame: list[float] = field(default_factory=list)

    def report(self) -> dict:
        return asdict(self)
