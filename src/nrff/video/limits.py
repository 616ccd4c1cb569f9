"""The limits on frames every reader and writer applies: size per side and per frame (what
the bitstream can hold) and frame rate."""

from __future__ import annotations

import math
from fractions import Fraction

from nrff.errors import InputError

MAX_DIMENSION = 16384  # larger frames are refused before anything is allocated
MAX_PIXELS = MAX_DIMENSION * MAX_DIMENSION // 4  # 67 MP per frame, as the bitstream allows
MIN_FPS = Fraction(1, 1000)  # frame rates the bitstream and the containers carry
MAX_FPS = Fraction(1000)


def check_dimensions(width: int, height: int, what: str) -> None:
    if width < 1 or height < 1:
        raise InputError(f"{what}: width and height must be at least 1 (got {width}x{height})")
    if width > MAX_DIMENSION or height > MAX_DIMENSION:
        raise InputError(f"{what}: {width}x{height} exceeds the supported maximum of {MAX_DIMENSION} pixels per side")
    if width * height > MAX_PIXELS:
        raise InputError(f"{what}: {width}x{height} has {width * height / 1e6:.0f} M pixels, more than the supported "
                         f"maximum of {MAX_PIXELS / 1e6:.0f} M pixels per frame ({MAX_PIXELS} pixels)")


def check_fps(rate, what: str) -> Fraction:
    """A frame rate as a Fraction (at most 6 decimal digits of denominator), refused outside 1/1000 to 1000 fps."""
    try:
        value = float(rate)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        raise InputError(f"{what}: frame rate {rate!r} is not a number") from None
    if not math.isfinite(value) or not float(MIN_FPS) <= value <= float(MAX_FPS):
        raise InputError(f"{what}: frame rate {value:g} fps is outside the supported range "
                         f"({float(MIN_FPS):g} to {float(MAX_FPS):g} fps)")
    return Fraction(rate).limit_denominator(1001000)


__all__ = ["MAX_DIMENSION", "MAX_FPS", "MAX_PIXELS", "MIN_FPS", "check_dimensions", "check_fps"]
