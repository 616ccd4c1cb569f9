"""Reading a .y4m header ourselves, strictly, before FFmpeg sees the file: every field is
checked, and the frames are counted from their FRAME markers, so a hostile header or a last
frame cut short is a one-line error naming the defect."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from nrff.errors import InputError
from nrff.video.limits import check_dimensions, check_fps

Y4M_MAGIC = b"YUV4MPEG2"
Y4M_MAX_LINE = 1024  # longer header lines are refused, not searched for an end
# colour spaces of FFmpeg's .y4m reader: samples per pixel of the chroma planes (w, h divisors) and bytes per sample
Y4M_COLOURS = {
    "420jpeg": (2, 2, 1), "420paldv": (2, 2, 1), "420mpeg2": (2, 2, 1), "420": (2, 2, 1), "411": (4, 1, 1),
    "422": (2, 1, 1), "444": (1, 1, 1), "mono": (0, 0, 1), "420p9": (2, 2, 2), "420p10": (2, 2, 2),
    "420p12": (2, 2, 2), "420p14": (2, 2, 2), "420p16": (2, 2, 2), "422p9": (2, 1, 2), "422p10": (2, 1, 2),
    "422p12": (2, 1, 2), "422p14": (2, 1, 2), "422p16": (2, 1, 2), "444p9": (1, 1, 2), "444p10": (1, 1, 2),
    "444p12": (1, 1, 2), "444p14": (1, 1, 2), "444p16": (1, 1, 2), "mono9": (0, 0, 2), "mono10": (0, 0, 2),
    "mono12": (0, 0, 2), "mono16": (0, 0, 2),
}


@dataclass(frozen=True)
class Y4mHeader:
    """What a .y4m stream header declares, checked, and its frames counted."""

    width: int
    height: int
    fps: Fraction
    colour: str
    frame_bytes: int  # of the picture, after each FRAME line
    frames: int


def _y4m_int(token: str, what: str, path: Path) -> int:
    if not re.fullmatch(r"\d{1,9}", token):
        raise InputError(f"{path}: bad .y4m header: {what} {token!r} is not a positive whole number")
    return int(token)


def read_y4m_header(path: Path) -> Y4mHeader | None:
    """Parse and check a .y4m header (None if the file is not a .y4m stream), and walk the
    frames to count them: a frame cut short or a missing FRAME marker is an error."""
    with open(path, "rb") as f:
        head = f.read(Y4M_MAX_LINE + 1)
        if not head.startswith(Y4M_MAGIC):
            if path.suffix.lower() == ".y4m":
                raise InputError(f"{path}: not a .y4m stream (it does not start with YUV4MPEG2)")
            return None
        end = head.find(b"\n")
        if end < 0:
            raise InputError(f"{path}: bad .y4m header: no end of line in the first {Y4M_MAX_LINE} bytes")
        fields = _fields(head[:end], path)
        width, height, fps, colour = _check(fields, path)
        sx, sy, depth = Y4M_COLOURS[colour]
        chroma = 0 if sx == 0 else 2 * (-(-width // sx)) * (-(-height // sy))
        frame_bytes = (width * height + chroma) * depth
        count = _count_frames(f, end + 1, frame_bytes, path)
    return Y4mHeader(width, height, fps, colour, frame_bytes, count)


def _fields(header: bytes, path: Path) -> dict[str, str]:
    try:
        line = header.decode("ascii")
    except UnicodeDecodeError:
        raise InputError(f"{path}: bad .y4m header: not ASCII text") from None
    tokens = line.split(" ")
    if tokens[0] != "YUV4MPEG2":
        raise InputError(f"{path}: bad .y4m header: expected 'YUV4MPEG2 ' at the start")
    fields: dict[str, str] = {}
    for token in tokens[1:]:
        if not token:
            raise InputError(f"{path}: bad .y4m header: two spaces in a row")
        key, value = token[0], token[1:]
        if key not in "WHFIACX":
            raise InputError(f"{path}: bad .y4m header: unknown field {token[:20]!r}")
        if key != "X" and key in fields:
            raise InputError(f"{path}: bad .y4m header: {key} given twice")
        fields.setdefault(key, value)
    return fields


def _check(fields: dict[str, str], path: Path) -> tuple[int, int, Fraction, str]:
    for key in "WH":
        if key not in fields:
            raise InputError(f"{path}: bad .y4m header: no {'width (W)' if key == 'W' else 'height (H)'}")
    width = _y4m_int(fields["W"], "width", path)
    height = _y4m_int(fields["H"], "height", path)
    check_dimensions(width, height, str(path))
    fps = Fraction(25)
    if "F" in fields:
        m = re.fullmatch(r"(\d{1,10}):(\d{1,10})", fields["F"])
        if not m or int(m.group(2)) == 0:
            raise InputError(f"{path}: bad .y4m header: frame rate {fields['F']!r} is not N:D with D > 0")
        fps = check_fps(Fraction(int(m.group(1)), int(m.group(2))), f"{path} (give --fps to override)")
    if fields.get("I", "p") not in ("p", "?", "t", "b", "m"):
        raise InputError(f"{path}: bad .y4m header: interlacing {fields['I']!r} is not p, t, b, m or ?")
    if "A" in fields and not re.fullmatch(r"\d{1,10}:\d{1,10}", fields["A"]):
        raise InputError(f"{path}: bad .y4m header: aspect ratio {fields['A']!r} is not N:D")
    colour = fields.get("C", "420jpeg")
    if colour not in Y4M_COLOURS:
        raise InputError(f"{path}: unsupported .y4m colour space {colour[:20]!r} "
                         f"(supported: {', '.join(sorted(Y4M_COLOURS))})")
    return width, height, fps, colour


def _count_frames(f, offset: int, frame_bytes: int, path: Path) -> int:
    size = os.fstat(f.fileno()).st_size
    count = 0
    while offset < size:
        f.seek(offset)
        marker = f.read(Y4M_MAX_LINE + 1)
        stop = marker.find(b"\n")
        if not marker.startswith(b"FRAME") or stop < 0 or (stop > 5 and marker[5:6] != b" "):
            raise InputError(f"{path}: frame {count} has no FRAME marker at byte {offset}; not a .y4m stream "
                             "of the declared size")
        have = size - (offset + stop + 1)
        if have < frame_bytes:
            raise InputError(f"{path}: frame {count} is truncated ({have} of {frame_bytes} bytes); "
                             "the file is cut short")
        offset += stop + 1 + frame_bytes
        count += 1
    if count == 0:
        raise InputError(f"{path}: the .y4m stream has no frames")
    return count
