"""The ``.nrff`` container: sections, CRCs, the header, limits (versions 1 to 3; docs/bitstream.md).

A file is ``b"NRFF"``, a version byte, then sections. A section is a 4-byte
ASCII tag, a little-endian u32 payload length, the payload, and a CRC-32 of
tag + length + payload::

    HEAD            global header (below)
    KEYF  (per GOP) u32 GOP index, then the key frame's raw codec bytes
    KSEG            (v2, predicted key frames) u32 first GOP, u32 count, then one
                    codec stream holding the key frames of ``count`` GOPs, which
                    starts with a random-access picture
    NETW  (per GOP) u32 GOP index, then the GOP's weights (see codec.weights)
    END             empty; its presence proves the file is complete

This module knows bytes only: framing, checksums, the header's fields and
ranges, which sections a header requires and in which order. It holds ids,
not components: what a method id means, how weights or key frames decode,
is resolved by the decoder through the registries (:mod:`nrff.methods`,
:mod:`nrff.codec.weights`, :mod:`nrff.codec.keyframes`). Parsing is
defensive: every count and size is checked against the header and fixed
limits before anything is allocated, so a malformed or hostile file raises
:class:`~nrff.errors.BitstreamError` naming the problem, and nothing in it
is ever executed (no pickle).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

from nrff.codec.keyframes import KEYFRAME_CODEC_IDS, PIX_FMT_IDS
from nrff.codec.weights import FP16, QUANTIZED_COLUMNS, WEIGHT_CODECS
from nrff.errors import BitstreamError
from nrff.quant import MAX_BITS, MIN_BITS

MAGIC = b"NRFF"
VERSION = 3  # the newest; a file is written with the lowest version that holds it (see file_version)
SUPPORTED_VERSIONS = (1, 2, 3)
INTRA, PREDICTED = 0, 1  # key-frame modes
KEYFRAME_MODES = {"intra": INTRA, "predicted": PREDICTED}

# Limits checked before allocating anything.
MAX_SIDE = 16384
MAX_PIXELS = 16384 * 16384 // 4  # 67 MP per frame
MAX_FRAMES = 10_000_000
MAX_GOP_LENGTH = 1000
MAX_UNITS = 4096  # network width (hidden units)
MAX_HIDDEN = 8
MAX_REUSE = 16
MAX_FPS = 1000

_HEAD_V1 = struct.Struct("<5I BBHBB BBBB BBH I")
_HEAD = struct.Struct("<5I BBHBB BBBB BBH BBH I")
_HEADS = {1: _HEAD_V1, 2: _HEAD, 3: _HEAD}  # v3: weight format 2 (column grids); same header layout
_GOP = struct.Struct("<IHH")
_SECTION = struct.Struct("<4sI")
_CRC = struct.Struct("<I")
_GOP_TAGS = (b"KEYF", b"KSEG", b"NETW")

KEYFRAME_CODEC_NAMES = {v: k for k, v in KEYFRAME_CODEC_IDS.items()}
PIX_FMT_NAMES = {v: k for k, v in PIX_FMT_IDS.items()}


@dataclass(frozen=True)
class GopEntry:
    length: int
    key: int
    units: int  # network width (0: no network)


@dataclass(frozen=True)
class Header:
    frames: int
    width: int  # frame size in pixels
    height: int
    fps: Fraction
    method_id: int  # resolved by nrff.methods
    split: bool
    gop_length: int
    hidden_layers: int
    reuse: int
    frequencies: tuple[int, int, int]  # positional-encoding frequencies for t, y, x
    weight_format: int
    keyframe_codec: str | None
    keyframe_pix_fmt: str | None
    keyframe_crf: float
    gops: tuple[GopEntry, ...]
    quant_bits: int = 0  # weight format 1: bits of the quantisation grid
    keyframe_mode: int = INTRA  # INTRA: one KEYF per GOP; PREDICTED: KSEG streams
    random_access: int = 1  # PREDICTED: GOPs per KSEG stream (a random-access point every so many key frames)

    @property
    def has_keyframes(self) -> bool:
        return self.keyframe_codec is not None

    @property
    def segment_bounds(self) -> list[tuple[int, int]]:
        """PREDICTED mode: (first GOP, count) of each key-frame stream."""
        n = len(self.gops)
        return [(g, min(self.random_access, n - g)) for g in range(0, n, self.random_access)]

    def pack(self) -> bytes:
        head = _HEAD.pack(
            self.frames, self.width, self.height, self.fps.numerator, self.fps.denominator,
            self.method_id, 1 if self.split else 0, self.gop_length, self.hidden_layers, self.reuse,
            *self.frequencies, self.weight_format,
            KEYFRAME_CODEC_IDS[self.keyframe_codec] if self.keyframe_codec else 0,
            PIX_FMT_IDS[self.keyframe_pix_fmt] if self.keyframe_pix_fmt else 0,
            int(round(self.keyframe_crf * 100)),
            self.quant_bits, self.keyframe_mode, self.random_access,
            len(self.gops),
        )
        return head + b"".join(_GOP.pack(g.length, g.key, g.units) for g in self.gops)


@dataclass
class Bitstream:
    """A whole file: the header and the payloads of its per-GOP sections."""

    header: Header
    keyframes: dict[int, bytes] = field(default_factory=dict)  # GOP index -> codec bytes (intra mode)
    weights: dict[int, bytes] = field(default_factory=dict)  # GOP index -> packed weights
    segments: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # first GOP -> (GOPs, stream)

    def to_bytes(self) -> bytes:
        parts = [MAGIC, bytes([file_version(self.header)]), section(b"HEAD", self.header.pack())]
        for g in range(len(self.header.gops)):
            if g in self.keyframes:
                parts.append(section(b"KEYF", struct.pack("<I", g) + self.keyframes[g]))
            if g in self.segments:
                count, data = self.segments[g]
                parts.append(section(b"KSEG", struct.pack("<II", g, count) + data))
            if g in self.weights:
                parts.append(section(b"NETW", struct.pack("<I", g) + self.weights[g]))
        parts.append(section(b"END ", b""))
        return b"".join(parts)


def file_version(header: Header) -> int:
    """The lowest version that holds a file: 3 for weight format 2, else 2 (older readers then
    still open every file that needs nothing new)."""
    return 3 if header.weight_format == QUANTIZED_COLUMNS else 2


@dataclass(frozen=True)
class SectionInfo:
    tag: str
    offset: int
    size: int  # whole section: tag + length + payload + CRC
    gop: int | None


def section(tag: bytes, payload: bytes) -> bytes:
    """One framed section: tag, length, payload, CRC-32."""
    head = _SECTION.pack(tag, len(payload))
    return head + payload + _CRC.pack(zlib.crc32(head + payload))


def overhead_bytes(gops: int, keyframes: str | None, random_access: int = 1) -> int:
    """Bytes of the container itself for ``gops`` GOPs, each with a network: preamble, header,
    section framing. ``keyframes``: None (no key frames), ``"intra"`` or ``"predicted"``."""
    framing = _SECTION.size + _CRC.size
    total = len(MAGIC) + 1 + framing + _HEAD.size + gops * _GOP.size + framing  # preamble, HEAD, END
    total += gops * (framing + 4)  # NETW
    if keyframes == "intra":
        total += gops * (framing + 4)
    elif keyframes == "predicted":
        total += -(-gops // random_access) * (framing + 8)
    return total


def _fail(msg: str):
    raise BitstreamError(msg)


def _unpack_head(payload: bytes, version: int) -> tuple:
    head = _HEADS[version]
    if len(payload) < head.size:
        _fail(f"HEAD section is {len(payload)} bytes, shorter than the {head.size} a header needs")
    values = head.unpack_from(payload)
    if version == 1:  # no quant_bits, keyframe_mode, random_access
        values = values[:17] + (0, INTRA, 1) + values[17:]
    return values


def _check_frame(frames: int, width: int, height: int, fps_num: int, fps_den: int) -> None:
    if not 1 <= width <= MAX_SIDE or not 1 <= height <= MAX_SIDE or width * height > MAX_PIXELS:
        _fail(f"declared frame size {width}x{height} is outside the supported range (at most {MAX_SIDE} per side)")
    if not 1 <= frames <= MAX_FRAMES:
        _fail(f"declared frame count {frames} is outside 1..{MAX_FRAMES}")
    if fps_num == 0 or fps_den == 0 or fps_num / fps_den > MAX_FPS:
        _fail(f"declared frame rate {fps_num}/{fps_den} is invalid")


def _check_coding(version, weight_format, quant_bits, kf_codec, kf_pix, kf_mode, random_access) -> None:
    if (weight_format not in WEIGHT_CODECS or (version == 1 and weight_format != FP16)
            or (version < 3 and weight_format == QUANTIZED_COLUMNS)):
        _fail(f"unknown weight format {weight_format}")
    if weight_format != FP16 and not MIN_BITS <= quant_bits <= MAX_BITS:
        _fail(f"quantisation to {quant_bits} bits is outside {MIN_BITS}..{MAX_BITS}")
    if weight_format == FP16 and quant_bits:
        _fail("fp16 weights declare quantisation bits")
    if kf_mode not in (INTRA, PREDICTED) or (kf_mode == PREDICTED and not kf_codec):
        _fail(f"unknown key-frame mode {kf_mode}")
    if not 1 <= random_access <= MAX_FRAMES:
        _fail(f"random-access interval {random_access} is invalid")
    if kf_codec or kf_pix:
        if kf_codec not in KEYFRAME_CODEC_NAMES:
            _fail(f"unknown key-frame codec id {kf_codec}")
        if kf_pix not in PIX_FMT_NAMES:
            _fail(f"unknown key-frame pixel format id {kf_pix}")


def parse_header(payload: bytes, version: int = VERSION) -> Header:
    """The header of a HEAD payload, with every field range-checked."""
    (frames, width, height, fps_num, fps_den, method_id, flags, gop_length, hidden, reuse,
     ft, fy, fx, weight_format, kf_codec, kf_pix, kf_crf, quant_bits, kf_mode, random_access,
     n_gops) = _unpack_head(payload, version)
    _check_frame(frames, width, height, fps_num, fps_den)
    if flags & ~1:
        _fail(f"unknown header flags 0x{flags:02x}")
    if not 1 <= gop_length <= MAX_GOP_LENGTH:
        _fail(f"declared GOP length {gop_length} is outside 1..{MAX_GOP_LENGTH}")
    if not 1 <= hidden <= MAX_HIDDEN or not 1 <= reuse <= MAX_REUSE:
        _fail(f"declared network depth (hidden {hidden}, reuse {reuse}) is outside the supported range")
    _check_coding(version, weight_format, quant_bits, kf_codec, kf_pix, kf_mode, random_access)
    if not 1 <= n_gops <= frames:
        _fail(f"declared GOP count {n_gops} is outside 1..{frames}")
    start = _HEADS[version].size
    if len(payload) != start + n_gops * _GOP.size:
        _fail(f"HEAD section is {len(payload)} bytes but {n_gops} GOPs need {start + n_gops * _GOP.size}")
    gops, total = [], 0
    for i in range(n_gops):
        length, key, units = _GOP.unpack_from(payload, start + i * _GOP.size)
        if not 1 <= length <= MAX_GOP_LENGTH:
            _fail(f"GOP {i} declares {length} frames (1..{MAX_GOP_LENGTH} allowed)")
        if key >= length:
            _fail(f"GOP {i} declares key frame {key} but has only {length} frames")
        if units > MAX_UNITS:
            _fail(f"GOP {i} declares network width {units} (at most {MAX_UNITS})")
        total += length
        gops.append(GopEntry(length, key, units))
    if total != frames:
        _fail(f"GOP lengths add up to {total} frames, the header declares {frames}")
    return Header(
        frames=frames, width=width, height=height, fps=Fraction(fps_num, fps_den), method_id=method_id,
        split=bool(flags & 1), gop_length=gop_length, hidden_layers=hidden, reuse=reuse, frequencies=(ft, fy, fx),
        weight_format=weight_format, keyframe_codec=KEYFRAME_CODEC_NAMES.get(kf_codec),
        keyframe_pix_fmt=PIX_FMT_NAMES.get(kf_pix), keyframe_crf=kf_crf / 100, gops=tuple(gops),
        quant_bits=quant_bits, keyframe_mode=kf_mode, random_access=random_access,
    )


def iter_sections(data: bytes) -> Iterator[tuple[bytes, bytes, SectionInfo]]:
    """Yield (tag, payload, SectionInfo) after checking framing and CRC of each section."""
    if len(data) < 5:
        _fail(f"file is {len(data)} bytes, too short to be an nrff bitstream")
    if data[:4] != MAGIC:
        _fail("not an nrff bitstream (bad magic bytes)")
    version = data[4]
    if version not in SUPPORTED_VERSIONS:
        _fail(f"unsupported bitstream version {version} (this nrff reads {', '.join(map(str, SUPPORTED_VERSIONS))})")
    pos = 5
    while pos < len(data):
        if len(data) - pos < _SECTION.size + _CRC.size:
            _fail(f"truncated section header at byte {pos}")
        tag, length = _SECTION.unpack_from(data, pos)
        end = pos + _SECTION.size + length + _CRC.size
        if end > len(data):
            _fail(f"section {tag!r} at byte {pos} declares {length} bytes but the file ends first (truncated)")
        payload = data[pos + _SECTION.size : pos + _SECTION.size + length]
        (crc,) = _CRC.unpack_from(data, end - _CRC.size)
        if zlib.crc32(data[pos : pos + _SECTION.size + length]) != crc:
            _fail(f"checksum mismatch in section {tag!r} at byte {pos} (corrupt file)")
        try:
            name = tag.decode("ascii")
        except UnicodeDecodeError:
            name = repr(tag)
        gop = struct.unpack_from("<I", payload)[0] if tag in _GOP_TAGS and length >= 4 else None
        yield tag, payload, SectionInfo(name, pos, end - pos, gop)
        pos = end


class _Assembler:
    """Collects the per-GOP sections of a file in order, refusing what the header does not allow."""

    def __init__(self, header: Header, version: int):
        self.stream = Bitstream(header)
        self.version = version
        self.last_gop = -1
        self.next_segment = 0

    def add(self, tag: bytes, payload: bytes, info: SectionInfo) -> None:
        header, stream = self.stream.header, self.stream
        if tag not in _GOP_TAGS or (tag == b"KSEG" and self.version < 2):
            _fail(f"unknown section {info.tag!r} at byte {info.offset}")
        if len(payload) < 4:
            _fail(f"{info.tag} section too short")
        g = info.gop
        if g >= len(header.gops):
            _fail(f"{info.tag} section for GOP {g}, but the header declares {len(header.gops)} GOPs")
        if g < self.last_gop:
            _fail(f"{info.tag} section for GOP {g} is out of order")
        self.last_gop = g
        if tag == b"KSEG":
            self._segment(payload, g)
        elif tag == b"KEYF":
            if not header.has_keyframes or header.keyframe_mode != INTRA:
                _fail("a KEYF section in a file without intra key frames")
            if g in stream.keyframes:
                _fail(f"duplicate key frame for GOP {g}")
            if len(payload) == 4:
                _fail(f"empty key frame for GOP {g}")
            stream.keyframes[g] = payload[4:]
        else:
            if g in stream.weights:
                _fail(f"duplicate network for GOP {g}")
            if header.gops[g].units == 0:
                _fail(f"GOP {g} declares no network but the file holds one")
            stream.weights[g] = payload[4:]

    def _segment(self, payload: bytes, g: int) -> None:
        header = self.stream.header
        if header.keyframe_mode != PREDICTED:
            _fail("a key-frame stream section in a file with intra key frames")
        if len(payload) < 9:
            _fail("KSEG section too short")
        count = struct.unpack_from("<I", payload, 4)[0]
        if g != self.next_segment:
            _fail(f"key-frame stream starts at GOP {g}, expected GOP {self.next_segment}")
        if not 1 <= count <= header.random_access or g + count > len(header.gops):
            _fail(f"key-frame stream of GOPs {g}..{g + count - 1} does not fit the header")
        self.stream.segments[g] = (count, payload[8:])
        self.next_segment = g + count

    def finish(self) -> Bitstream:
        header, stream = self.stream.header, self.stream
        if header.has_keyframes and header.keyframe_mode == PREDICTED and self.next_segment != len(header.gops):
            _fail(f"key-frame streams cover {self.next_segment} of {len(header.gops)} GOPs")
        for g, entry in enumerate(header.gops):
            if header.has_keyframes and header.keyframe_mode == INTRA and g not in stream.keyframes:
                _fail(f"GOP {g} has no key frame")
            if entry.units > 0 and g not in stream.weights:
                _fail(f"GOP {g} has no network section")
        return stream


def read_container(data: bytes) -> tuple[Bitstream, list[SectionInfo]]:
    """Parse a whole file and check its structure. Raises BitstreamError on any defect."""
    assembler: _Assembler | None = None
    infos: list[SectionInfo] = []
    ended = False
    for tag, payload, info in iter_sections(data):
        infos.append(info)
        if ended:
            _fail(f"data after the END section at byte {info.offset}")
        if assembler is None:
            if tag != b"HEAD":
                _fail(f"the first section is {info.tag!r}, expected HEAD")
            assembler = _Assembler(parse_header(payload, data[4]), data[4])
        elif tag == b"HEAD":
            _fail("duplicate HEAD section")
        elif tag == b"END ":
            if payload:
                _fail("END section is not empty")
            ended = True
        else:
            assembler.add(tag, payload, info)
    if assembler is None:
        _fail("the file has no sections")
    if not ended:
        _fail("the file ends without an END section (truncated)")
    return assembler.finish(), infos
