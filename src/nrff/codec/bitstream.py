"""The ``.nrff`` container (format versions 1 and 2; see docs/bitstream.md).

A file is ``b"NRFF"``, a version byte, then sections. A section is a 4-byte
ASCII tag, a little-endian u32 payload length, the payload, and a CRC-32 of
tag + length + payload::

    HEAD            global header (below)
    KEYF  (per GOP) u32 GOP index, then the key frame's raw codec bytes
    KSEG            (v2, predicted key frames) u32 first GOP, u32 count, then one
                    codec stream holding the key frames of ``count`` GOPs, which
                    starts with an IDR picture: a random-access point
    NETW  (per GOP) u32 GOP index, then the GOP's weights (see codec.weights)
    END             empty; its presence proves the file is complete

Key-frame and network sections come GOP by GOP in order; GOPs without a key
frame (siren) or without a network (a one-frame GOP) have no such section.
HEAD holds::

    u32 frames  u32 width  u32 height  u32 fps_num  u32 fps_den
    u8 method  u8 flags(bit 0: split)  u16 gop_length  u8 hidden_layers  u8 reuse
    u8 freq_t  u8 freq_y  u8 freq_x  u8 weight_format
    u8 keyframe_codec  u8 keyframe_pix_fmt  u16 keyframe_crf*100
    (v2 only) u8 quant_bits  u8 keyframe_mode  u16 random_access
    u32 gops, then per GOP: u32 length  u16 key  u16 width

Parsing is defensive: every count, size and shape is checked against the
header and against fixed limits before anything is allocated, so a malformed
or hostile file raises :class:`~nrff.errors.BitstreamError` with a message
naming the problem, and nothing in it is ever executed (no pickle).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from nrff.codec.keyframes import KEYFRAME_CODEC_IDS, PIX_FMT_IDS
from nrff.codec.weights import FP16, QUANTIZED, WEIGHT_FORMATS, fp16_bytes, quantized_side_bytes
from nrff.errors import BitstreamError
from nrff.fields.encoding import PositionalEncoding, frequency_count
from nrff.fields.models import METHOD_BY_ID, METHODS, FieldShape
from nrff.quant import MAX_BITS, MIN_BITS

MAGIC = b"NRFF"
VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
INTRA, PREDICTED = 0, 1  # key-frame modes

# Limits checked before allocating anything.
MAX_SIDE = 16384
MAX_PIXELS = 16384 * 16384 // 4  # 67 MP per frame
MAX_FRAMES = 10_000_000
MAX_GOP_LENGTH = 1000
MAX_WIDTH = 4096  # network width
MAX_NERV_CHANNELS = 512
MAX_HIDDEN = 8
MAX_REUSE = 16
MAX_FPS = 1000

_HEAD_V1 = struct.Struct("<5I BBHBB BBBB BBH I")
_HEAD = struct.Struct("<5I BBHBB BBBB BBH BBH I")
_HEADS = {1: _HEAD_V1, 2: _HEAD}
_GOP = struct.Struct("<IHH")
_SECTION = struct.Struct("<4sI")
_CRC = struct.Struct("<I")

KEYFRAME_CODEC_NAMES = {v: k for k, v in KEYFRAME_CODEC_IDS.items()}
PIX_FMT_NAMES = {v: k for k, v in PIX_FMT_IDS.items()}


@dataclass(frozen=True)
class GopEntry:
    length: int
    key: int
    width: int  # network width (0: no network)


@dataclass(frozen=True)
class Header:
    frames: int
    width: int
    height: int
    fps: Fraction
    method: str
    split: bool
    gop_length: int
    hidden_layers: int
    reuse: int
    encoding: PositionalEncoding
    weight_format: int
    keyframe_codec: str | None
    keyframe_pix_fmt: str | None
    keyframe_crf: float
    gops: tuple[GopEntry, ...]
    quant_bits: int = 0  # weight format 1: bits of the quantisation grid
    keyframe_mode: int = INTRA  # INTRA: one KEYF per GOP; PREDICTED: KSEG streams
    random_access: int = 1  # PREDICTED: GOPs per KSEG stream (IDR every so many key frames)

    @property
    def field_shape(self) -> FieldShape:
        return FieldShape(self.method, self.split, self.encoding, self.hidden_layers, self.reuse, self.height, self.width)

    @property
    def segment_bounds(self) -> list[tuple[int, int]]:
        """PREDICTED mode: (first GOP, count) of each key-frame stream."""
        n = len(self.gops)
        return [(g, min(self.random_access, n - g)) for g in range(0, n, self.random_access)]

    def pack(self) -> bytes:
        flags = 1 if self.split else 0
        head = _HEAD.pack(
            self.frames, self.width, self.height, self.fps.numerator, self.fps.denominator,
            METHODS[self.method].id, flags, self.gop_length, self.hidden_layers, self.reuse,
            *self.encoding.counts, self.weight_format,
            KEYFRAME_CODEC_IDS.get(self.keyframe_codec, 0) if self.keyframe_codec else 0,
            PIX_FMT_IDS.get(self.keyframe_pix_fmt, 0) if self.keyframe_pix_fmt else 0,
            int(round(self.keyframe_crf * 100)),
            self.quant_bits, self.keyframe_mode, self.random_access,
            len(self.gops),
        )
        return head + b"".join(_GOP.pack(g.length, g.key, g.width) for g in self.gops)


@dataclass
class Bitstream:
    header: Header
    keyframes: dict[int, bytes] = field(default_factory=dict)  # GOP index -> codec bytes (intra mode)
    weights: dict[int, bytes] = field(default_factory=dict)  # GOP index -> packed weights
    segments: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # first GOP -> (GOPs, stream)

    def to_bytes(self) -> bytes:
        parts = [MAGIC, bytes([VERSION]), _section(b"HEAD", self.header.pack())]
        for g in range(len(self.header.gops)):
            if g in self.keyframes:
                parts.append(_section(b"KEYF", struct.pack("<I", g) + self.keyframes[g]))
            if g in self.segments:
                count, data = self.segments[g]
                parts.append(_section(b"KSEG", struct.pack("<II", g, count) + data))
            if g in self.weights:
                parts.append(_section(b"NETW", struct.pack("<I", g) + self.weights[g]))
        parts.append(_section(b"END ", b""))
        return b"".join(parts)


@dataclass(frozen=True)
class SectionInfo:
    tag: str
    offset: int
    size: int  # whole section: tag + length + payload + CRC
    gop: int | None


def _section(tag: bytes, payload: bytes) -> bytes:
    head = _SECTION.pack(tag, len(payload))
    return head + payload + _CRC.pack(zlib.crc32(head + payload))


def _fail(msg: str):
    raise BitstreamError(msg)


def parse_header(payload: bytes, version: int = VERSION) -> Header:
    head = _HEADS[version]
    if len(payload) < head.size:
        _fail(f"HEAD section is {len(payload)} bytes, shorter than the {head.size} a header needs")
    if version == 1:
        (frames, width, height, fps_num, fps_den, method_id, flags, gop_length, hidden, reuse,
         ft, fy, fx, weight_format, kf_codec, kf_pix, kf_crf, n_gops) = head.unpack_from(payload)
        quant_bits, kf_mode, random_access = 0, INTRA, 1
    else:
        (frames, width, height, fps_num, fps_den, method_id, flags, gop_length, hidden, reuse,
         ft, fy, fx, weight_format, kf_codec, kf_pix, kf_crf, quant_bits, kf_mode, random_access,
         n_gops) = head.unpack_from(payload)
    if not 1 <= width <= MAX_SIDE or not 1 <= height <= MAX_SIDE or width * height > MAX_PIXELS:
        _fail(f"declared frame size {width}x{height} is outside the supported range (at most {MAX_SIDE} per side)")
    if not 1 <= frames <= MAX_FRAMES:
        _fail(f"declared frame count {frames} is outside 1..{MAX_FRAMES}")
    if fps_num == 0 or fps_den == 0 or fps_num / fps_den > MAX_FPS:
        _fail(f"declared frame rate {fps_num}/{fps_den} is invalid")
    if method_id not in METHOD_BY_ID:
        _fail(f"unknown method id {method_id}")
    method = METHOD_BY_ID[method_id]
    if flags & ~1:
        _fail(f"unknown header flags 0x{flags:02x}")
    split = bool(flags & 1)
    if split and method.split_outputs is None:
        _fail(f"method {method.name} cannot be split")
    if not 1 <= gop_length <= MAX_GOP_LENGTH:
        _fail(f"declared GOP length {gop_length} is outside 1..{MAX_GOP_LENGTH}")
    if not 1 <= hidden <= MAX_HIDDEN or not 1 <= reuse <= MAX_REUSE:
        _fail(f"declared network depth (hidden {hidden}, reuse {reuse}) is outside the supported range")
    expected_freqs = (frequency_count(gop_length), frequency_count(height), frequency_count(width))
    if (ft, fy, fx) != expected_freqs:
        _fail(f"encoding frequencies {(ft, fy, fx)} do not match the declared sizes (expected {expected_freqs})")
    if weight_format not in WEIGHT_FORMATS or (version == 1 and weight_format != FP16):
        _fail(f"unknown weight format {weight_format}")
    if weight_format == QUANTIZED and not MIN_BITS <= quant_bits <= MAX_BITS:
        _fail(f"quantisation to {quant_bits} bits is outside {MIN_BITS}..{MAX_BITS}")
    if weight_format == FP16 and quant_bits:
        _fail("fp16 weights declare quantisation bits")
    if kf_mode not in (INTRA, PREDICTED) or (kf_mode == PREDICTED and not method.uses_keyframes):
        _fail(f"unknown key-frame mode {kf_mode}")
    if not 1 <= random_access <= MAX_FRAMES:
        _fail(f"random-access interval {random_access} is invalid")
    if method.uses_keyframes:
        if kf_codec not in KEYFRAME_CODEC_NAMES:
            _fail(f"unknown key-frame codec id {kf_codec}")
        if kf_pix not in PIX_FMT_NAMES:
            _fail(f"unknown key-frame pixel format id {kf_pix}")
    elif kf_codec or kf_pix:
        _fail(f"method {method.name} has no key frames but the header names a key-frame codec")
    if not 1 <= n_gops <= frames:
        _fail(f"declared GOP count {n_gops} is outside 1..{frames}")
    expected_len = head.size + n_gops * _GOP.size
    if len(payload) != expected_len:
        _fail(f"HEAD section is {len(payload)} bytes but {n_gops} GOPs need {expected_len}")
    gops = []
    total = 0
    for i in range(n_gops):
        length, key, net_width = _GOP.unpack_from(payload, head.size + i * _GOP.size)
        if not 1 <= length <= MAX_GOP_LENGTH:
            _fail(f"GOP {i} declares {length} frames (1..{MAX_GOP_LENGTH} allowed)")
        if key >= length:
            _fail(f"GOP {i} declares key frame {key} but has only {length} frames")
        if net_width > MAX_WIDTH or (method.kind == "nerv" and net_width > MAX_NERV_CHANNELS):
            _fail(f"GOP {i} declares network width {net_width} (at most {MAX_WIDTH}, {MAX_NERV_CHANNELS} for NeRV)")
        if method.kind == "nerv" and n_gops != 1:
            _fail("a NeRV file holds one network for the whole clip")
        needs_net = length > 1 if method.uses_keyframes else True
        if needs_net and net_width == 0:
            _fail(f"GOP {i} has frames to reconstruct but no network")
        if not needs_net and net_width != 0:
            _fail(f"GOP {i} has nothing to reconstruct but declares a network")
        total += length
        gops.append(GopEntry(length, key, net_width))
    if total != frames:
        _fail(f"GOP lengths add up to {total} frames, the header declares {frames}")
    return Header(
        frames=frames, width=width, height=height, fps=Fraction(fps_num, fps_den), method=method.name,
        split=split, gop_length=gop_length, hidden_layers=hidden, reuse=reuse,
        encoding=PositionalEncoding((ft, fy, fx)), weight_format=weight_format,
        keyframe_codec=KEYFRAME_CODEC_NAMES.get(kf_codec) if method.uses_keyframes else None,
        keyframe_pix_fmt=PIX_FMT_NAMES.get(kf_pix) if method.uses_keyframes else None,
        keyframe_crf=kf_crf / 100, gops=tuple(gops), quant_bits=quant_bits, keyframe_mode=kf_mode,
        random_access=random_access,
    )


def iter_sections(data: bytes):
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
        gop = struct.unpack_from("<I", payload)[0] if tag in (b"KEYF", b"KSEG", b"NETW") and length >= 4 else None
        yield tag, payload, SectionInfo(name, pos, end - pos, gop)
        pos = end


def read_bitstream(data: bytes) -> tuple[Bitstream, list[SectionInfo]]:
    """Parse and validate a whole file. Raises BitstreamError on any defect."""

    sections = iter_sections(data)
    header: Header | None = None
    stream: Bitstream | None = None
    infos: list[SectionInfo] = []
    ended = False
    last_gop = -1
    for tag, payload, info in sections:
        infos.append(info)
        if ended:
            _fail(f"data after the END section at byte {info.offset}")
        if header is None:
            if tag != b"HEAD":
                _fail(f"the first section is {info.tag!r}, expected HEAD")
            header = parse_header(payload, data[4])
            stream = Bitstream(header)
            next_segment = 0
            continue
        if tag == b"HEAD":
            _fail("duplicate HEAD section")
        if tag == b"END ":
            if payload:
                _fail("END section is not empty")
            ended = True
            continue
        if tag not in (b"KEYF", b"KSEG", b"NETW") or (tag == b"KSEG" and data[4] < 2):
            _fail(f"unknown section {info.tag!r} at byte {info.offset}")
        if len(payload) < 4:
            _fail(f"{info.tag} section too short")
        g = info.gop
        if g >= len(header.gops):
            _fail(f"{info.tag} section for GOP {g}, but the header declares {len(header.gops)} GOPs")
        if g < last_gop:
            _fail(f"{info.tag} section for GOP {g} is out of order")
        last_gop = g
        body = payload[4:]
        if tag == b"KSEG":
            if header.keyframe_mode != PREDICTED:
                _fail("a key-frame stream section in a file with intra key frames")
            if len(payload) < 9:
                _fail("KSEG section too short")
            count = struct.unpack_from("<I", payload, 4)[0]
            if g != next_segment:
                _fail(f"key-frame stream starts at GOP {g}, expected GOP {next_segment}")
            if not 1 <= count <= header.random_access or g + count > len(header.gops):
                _fail(f"key-frame stream of GOPs {g}..{g + count - 1} does not fit the header")
            stream.segments[g] = (count, payload[8:])
            next_segment = g + count
            continue
        if tag == b"KEYF":
            if not METHODS[header.method].uses_keyframes or header.keyframe_mode != INTRA:
                _fail(f"a KEYF section in a {header.method} file without intra key frames")
            if g in stream.keyframes:
                _fail(f"duplicate key frame for GOP {g}")
            if not body:
                _fail(f"empty key frame for GOP {g}")
            stream.keyframes[g] = body
        else:
            if g in stream.weights:
                _fail(f"duplicate network for GOP {g}")
            width = header.gops[g].width
            shapes = header.field_shape.shapes(width)
            if header.weight_format == FP16 and len(body) != fp16_bytes(shapes):
                _fail(f"network of GOP {g} holds {len(body)} bytes, width {width} needs {fp16_bytes(shapes)}")
            if header.weight_format == FP16 and not np.isfinite(np.frombuffer(body, dtype="<f2")).all():
                _fail(f"network of GOP {g} contains non-finite weights")
            if header.weight_format == QUANTIZED:
                side = quantized_side_bytes(shapes)
                if len(body) < side or (len(body) - side) % 4:
                    _fail(f"network of GOP {g} holds {len(body)} bytes, which does not fit width {width}")
            stream.weights[g] = body
    if header is None:
        _fail("the file has no sections")
    if not ended:
        _fail("the file ends without an END section (truncated)")
    uses_keyframes = METHODS[header.method].uses_keyframes
    if uses_keyframes and header.keyframe_mode == PREDICTED and next_segment != len(header.gops):
        _fail(f"key-frame streams cover {next_segment} of {len(header.gops)} GOPs")
    for g, entry in enumerate(header.gops):
        if uses_keyframes and header.keyframe_mode == INTRA and g not in stream.keyframes:
            _fail(f"GOP {g} has no key frame")
        if entry.width > 0 and g not in stream.weights:
            _fail(f"GOP {g} has no network section")
        if entry.width == 0 and g in stream.weights:
            _fail(f"GOP {g} declares no network but the file holds one")
    return stream, infos
