"""Mutation fuzzing of the ``.nrff`` decoder over real bitstreams.

Encodes a tiny clip with every method (``nrff`` x264 4:4:4, ``nrff-single``
x264 4:2:0, ``siren``, and ``nrff`` with x265 key frames and a one-frame GOP),
then feeds mutated copies of those files to ``nrff.api.info`` and to the full
decoder (``nrff.api.decode(data, device="cpu")`` and every frame of
``.frames()``). Every input must either decode or raise ``nrff.BitstreamError``;
anything else (another exception, a wrong frame count or shape, a case slower
than ``--case-limit`` seconds, a memory peak above ``--memory-limit`` MiB) is a
failure. The mutations, drawn at random, are listed in :data:`MUTATIONS`:
bit flips and byte overwrites (CRC left broken, or recomputed so that the
parser's deeper checks run), truncations at section boundaries and at random
points, length fields set to random values (with valid CRCs), duplicated,
dropped, reordered, swapped and foreign sections, trailing garbage, header
fields set to extreme values (with a valid CRC), consistent but different
headers, special fp16 values in the weights, damaged key-frame codec headers,
key frames swapped for foreign streams (a 1024x1024 picture, 40 pictures,
the other codec), and stacks of several of these.

    python tools/fuzz.py --cases 5000 --seed 1          # or --seconds 600
    python tools/fuzz.py --cases 200 --json fuzz.json   # figures as JSON too

It prints the cases tried, the outcomes by kind (decoded / BitstreamError by
message category / other), the slowest case and the peak memory (RSS). The
exit status is 1 when any case failed. The same engine drives the bounded
hypothesis run of ``tests/test_fuzz.py``.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import math
import os
import platform
import random
import re
import resource
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- the format, from docs/bitstream.md
# (written out here rather than imported, so that the fuzzer does not share the parser's mistakes)

MAGIC = b"NRFF"
SECTION = struct.Struct("<4sI")
CRC = struct.Struct("<I")
HEAD_FIELDS = (
    ("frames", "I"), ("width", "I"), ("height", "I"), ("fps_num", "I"), ("fps_den", "I"),
    ("method", "B"), ("flags", "B"), ("gop_length", "H"), ("hidden_layers", "B"), ("reuse", "B"),
    ("freq_t", "B"), ("freq_y", "B"), ("freq_x", "B"), ("weight_format", "B"),
    ("keyframe_codec", "B"), ("keyframe_pix_fmt", "B"), ("keyframe_crf", "H"),
    ("quant_bits", "B"), ("keyframe_mode", "B"), ("random_access", "H"),  # version 2
    ("gops", "I"),
)
GOP_FIELDS = (("length", "I"), ("key", "H"), ("width", "H"))
HEAD = struct.Struct("<" + "".join(f for _, f in HEAD_FIELDS))
GOP = struct.Struct("<" + "".join(f for _, f in GOP_FIELDS))
TAGS = (b"HEAD", b"KEYF", b"KSEG", b"NETW", b"END ")

RENDER_LIMIT = 1_000_000  # frames x width x height above which a parsed file is not rendered (see run_case)


def section(tag: bytes, payload: bytes) -> bytes:
    head = SECTION.pack(tag, len(payload))
    return head + payload + CRC.pack(zlib.crc32(head + payload))


def split_sections(data: bytes) -> list[tuple[bytes, bytes]]:
    """(tag, payload) of every section of a well-formed file."""
    pos, out = 5, []
    while pos < len(data):
        tag, length = SECTION.unpack_from(data, pos)
        out.append((tag, data[pos + SECTION.size : pos + SECTION.size + length]))
        pos += SECTION.size + length + CRC.size
    return out


def section_offsets(data: bytes) -> list[int]:
    """Byte offsets of every section start of a well-formed file, then its length."""
    pos, out = 5, []
    while pos < len(data):
        out.append(pos)
        pos += SECTION.size + SECTION.unpack_from(data, pos)[1] + CRC.size
    return out + [len(data)]


def assemble(sections: list[tuple[bytes, bytes]], preamble: bytes = MAGIC + b"\x02") -> bytes:
    return preamble + b"".join(section(t, p) for t, p in sections)


def unpack_head(payload: bytes) -> tuple[dict, list[dict]]:
    values = dict(zip((n for n, _ in HEAD_FIELDS), HEAD.unpack_from(payload)))
    gops = []
    for i in range((len(payload) - HEAD.size) // GOP.size):
        gops.append(dict(zip((n for n, _ in GOP_FIELDS), GOP.unpack_from(payload, HEAD.size + i * GOP.size))))
    return values, gops


def pack_head(values: dict, gops: list[dict]) -> bytes:
    return HEAD.pack(*(values[n] for n, _ in HEAD_FIELDS)) + b"".join(
        GOP.pack(*(g[n] for n, _ in GOP_FIELDS)) for g in gops
    )


def freq(size: int) -> int:
    return int(math.floor(math.log2(size))) if size >= 1 else 0


# --------------------------------------------------------------------------- choosers


class RandomChooser:
    """Draws from a ``random.Random`` (the long run)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, seq):
        seq = list(seq)
        return seq[self.int(0, len(seq) - 1)]

    def bytes(self, n: int) -> bytes:
        return self.rng.randbytes(n)


class HypothesisChooser(RandomChooser):
    """Draws from hypothesis' ``st.data()`` (the bounded CI run; failures shrink)."""

    def __init__(self, data):
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def bytes(self, n: int) -> bytes:
        return self.data.draw(self.st.binary(min_size=n, max_size=n))


def extreme(ch, fmt: str) -> int:
    top = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF}[fmt]
    candidates = [0, 1, 2, 3, top, top - 1, (top + 1) // 2, (top + 1) // 2 - 1, 7, 8, 9, 16, 17, 255, 256,
                  1000, 1001, 4096, 4097, 16384, 16385, 65535, 65536, 100000, 10_000_000, 10_000_001]
    if ch.int(0, 4) == 0:
        return ch.int(0, top)
    return ch.choice([c for c in candidates if c <= top])


# --------------------------------------------------------------------------- mutations
# Each takes (data, corpus, chooser) and returns the mutated bytes. ``data`` is a
# well-formed file from ``corpus`` (name -> bytes) unless mutations are stacked.


def _sections_or_raw(data: bytes):
    try:
        secs = split_sections(data)
        if secs and assemble(secs, data[:5]) == data:
            return secs
    except struct.error:
        pass
    return None


def bit_flip(data, corpus, ch):
    if not data:
        return corpus[ch.choice(sorted(corpus))][: ch.int(0, 8)]
    out = bytearray(data)
    for _ in range(ch.int(1, 8)):
        pos = ch.int(0, len(out) - 1)
        out[pos] ^= 1 << ch.int(0, 7)
    return bytes(out)


def byte_overwrite(data, corpus, ch):
    if not data:
        return ch.bytes(ch.int(1, 16))
    out = bytearray(data)
    for _ in range(ch.int(1, 16)):
        out[ch.int(0, len(out) - 1)] = ch.choice([0x00, 0xFF, 0x7F, 0x80, ch.int(0, 255)])
    return bytes(out)


def _pick_section(secs, ch, tags=None, nonempty=False):
    idx = [i for i, (t, p) in enumerate(secs) if (tags is None or t in tags) and (p or not nonempty)]
    return ch.choice(idx) if idx else None


def _edit_payload(data, corpus, ch, fallback, edit):
    """Apply ``edit(bytearray, ch)`` to one non-empty section's payload and recompute its CRC
    (``fallback`` when the file has no parsable non-empty section)."""
    secs = _sections_or_raw(data)
    if secs is None:
        return fallback(data, corpus, ch)
    i = _pick_section(secs, ch, nonempty=True)
    if i is None:
        return fallback(data, corpus, ch)
    tag, payload = secs[i]
    secs[i] = (tag, bytes(edit(bytearray(payload), ch)))
    return assemble(secs, data[:5])


def _flip_bits(out, ch):
    for _ in range(ch.int(1, 8)):
        out[ch.int(0, len(out) - 1)] ^= 1 << ch.int(0, 7)
    return out


def _overwrite_run(out, ch):
    start = ch.int(0, len(out) - 1)
    n = min(ch.int(1, 32), len(out) - start)
    fill = ch.choice(["random", "zero", "ff"])
    out[start : start + n] = ch.bytes(n) if fill == "random" else (b"\x00" if fill == "zero" else b"\xff") * n
    return out


def payload_flip_crc(data, corpus, ch):
    """Flip bits inside one section's payload and recompute its CRC."""
    return _edit_payload(data, corpus, ch, bit_flip, _flip_bits)


def payload_overwrite_crc(data, corpus, ch):
    """Overwrite a run of payload bytes with random or extreme bytes; recompute the CRC."""
    return _edit_payload(data, corpus, ch, byte_overwrite, _overwrite_run)


def truncate(data, corpus, ch):
    return data[: ch.int(0, max(len(data) - 1, 0))]


def truncate_boundary(data, corpus, ch):
    """Cut at a section boundary, or a few bytes either side of one."""
    offsets = section_offsets(data) if _sections_or_raw(data) is not None else [0, 4, 5, len(data)]
    cut = ch.choice(offsets) + ch.choice([0, 0, 0, -1, 1, -4, 4, 8, 11, 12])
    return data[: max(0, min(cut, len(data) - 1))]


def length_resize(data, corpus, ch):
    """A section's payload (and so its length field) cut or grown, with a valid CRC."""
    secs = _sections_or_raw(data)
    if secs is None:
        return truncate(data, corpus, ch)
    i = _pick_section(secs, ch)
    tag, payload = secs[i]
    new = ch.choice([0, 1, 2, 3, 4, 5, len(payload) - 1, len(payload) + 1, len(payload) - 2, len(payload) + 2,
                     ch.int(0, 2 * len(payload) + 64)])
    new = max(new, 0)
    payload = payload[:new] + ch.bytes(max(0, new - len(payload)))
    secs[i] = (tag, payload)
    return assemble(secs, data[:5])


def length_lie(data, corpus, ch):
    """A section's length field set to a random value, the CRC recomputed over what that length covers."""
    if _sections_or_raw(data) is None:
        return byte_overwrite(data, corpus, ch)
    offsets = section_offsets(data)[:-1]
    pos = ch.choice(offsets)
    tag, old = SECTION.unpack_from(data, pos)
    new = ch.choice([0, 1, 3, 4, old - 1, old + 1, old + 4, old + 12, old * 2, 0xFFFFFFFF, 0x7FFFFFFF,
                     ch.int(0, 0xFFFFFFFF), ch.int(0, len(data))])
    new = max(0, min(new, 0xFFFFFFFF))
    out = bytearray(data)
    SECTION.pack_into(out, pos, tag, new)
    end = pos + SECTION.size + new
    if end <= len(out):
        crc = CRC.pack(zlib.crc32(bytes(out[pos:end])))
        out[end : end + CRC.size] = crc  # may grow the file by up to 4 bytes
    return bytes(out)


def duplicate_section(data, corpus, ch):
    secs = _sections_or_raw(data)
    if secs is None:
        return data + data[5:]
    i = _pick_section(secs, ch)
    j = ch.int(0, len(secs))
    return assemble(secs[:j] + [secs[i]] + secs[j:], data[:5])


def drop_section(data, corpus, ch):
    secs = _sections_or_raw(data)
    if secs is None:
        return truncate(data, corpus, ch)
    i = _pick_section(secs, ch)
    return assemble(secs[:i] + secs[i + 1 :], data[:5])


def reorder_sections(data, corpus, ch):
    secs = _sections_or_raw(data)
    if secs is None or len(secs) < 2:
        return bit_flip(data, corpus, ch)
    how = ch.choice(["swap", "move", "reverse", "shuffle"])
    if how == "swap":
        i, j = ch.int(0, len(secs) - 1), ch.int(0, len(secs) - 1)
        secs[i], secs[j] = secs[j], secs[i]
    elif how == "move":
        s = secs.pop(ch.int(0, len(secs) - 1))
        secs.insert(ch.int(0, len(secs)), s)
    elif how == "reverse":
        secs.reverse()
    else:
        for k in range(len(secs) - 1, 0, -1):
            j = ch.int(0, k)
            secs[k], secs[j] = secs[j], secs[k]
    return assemble(secs, data[:5])


def foreign_section(data, corpus, ch):
    """A section of another corpus file put in place of (or beside) one of this file's."""
    secs = _sections_or_raw(data)
    other = split_sections(corpus[ch.choice(sorted(corpus))])
    s = other[ch.int(0, len(other) - 1)]
    if secs is None:
        return data + section(*s)
    i = ch.int(0, len(secs) - 1)
    if ch.int(0, 1):
        secs[i] = s
    else:
        secs.insert(i, s)
    return assemble(secs, data[:5])


def unknown_section(data, corpus, ch):
    secs = _sections_or_raw(data)
    tag = ch.choice([b"ZZZZ", b"\x00\x00\x00\x00", b"\xff\xfe\xfd\xfc", b"head", b"END\x00", b"KEY", ch.bytes(4)])
    tag = (tag + b"    ")[:4]
    payload = ch.bytes(ch.int(0, 16))
    if secs is None:
        return data + section(tag, payload)
    secs.insert(ch.int(0, len(secs)), (tag, payload))
    return assemble(secs, data[:5])


def trailing_garbage(data, corpus, ch):
    how = ch.choice(["bytes", "section", "file", "end", "zeros"])
    if how == "bytes":
        return data + ch.bytes(ch.int(1, 64))
    if how == "section":
        return data + section(ch.choice(TAGS), ch.bytes(ch.int(0, 16)))
    if how == "file":
        return data + corpus[ch.choice(sorted(corpus))]
    if how == "end":
        return data + section(b"END ", b"")
    return data + b"\x00" * ch.int(1, 16)


def preamble(data, corpus, ch):
    out = bytearray(data.ljust(5, b"\x00"))
    i = ch.int(0, 4)
    out[i] = ch.choice([0, 1, 2, 255, ch.int(0, 255)]) if i == 4 else ch.int(0, 255)
    return bytes(out)


def _head(data):
    secs = _sections_or_raw(data)
    if secs is None:
        return None, None, None, None
    for i, (tag, payload) in enumerate(secs):
        if tag == b"HEAD" and len(payload) >= HEAD.size and (len(payload) - HEAD.size) % GOP.size == 0:
            values, gops = unpack_head(payload)
            return secs, i, values, gops
    return None, None, None, None


def header_field(data, corpus, ch):
    """One or a few header or GOP-table fields set to extreme values; valid CRC."""
    secs, i, values, gops = _head(data)
    if secs is None:
        return byte_overwrite(data, corpus, ch)
    for _ in range(ch.choice([1, 1, 1, 2, 3])):
        if gops and ch.int(0, 2) == 0:
            g = gops[ch.int(0, len(gops) - 1)]
            name, fmt = ch.choice(GOP_FIELDS)
            g[name] = extreme(ch, fmt)
        else:
            name, fmt = ch.choice(HEAD_FIELDS)
            values[name] = extreme(ch, fmt)
    secs[i] = (b"HEAD", pack_head(values, gops))
    return assemble(secs, data[:5])


def header_consistent(data, corpus, ch):
    """A different but self-consistent header (frequencies and frame count follow the sizes);
    the sections are left as they are, so weights or key frames no longer match, or do."""
    secs, i, values, gops = _head(data)
    if secs is None:
        return byte_overwrite(data, corpus, ch)
    how = ch.choice(["size", "gops", "lengths", "gop_length", "count"])
    if how == "size":
        for axis, f in (("width", "freq_x"), ("height", "freq_y")):
            if ch.int(0, 1):
                v = ch.choice([1, 2, 3, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 127, 128, 255, 4096, 16384, 16385,
                               ch.int(1, 300)])
                values[axis], values[f] = v, freq(v)
    elif how == "gops":
        n = ch.choice([1, 2, 3, len(gops) + 1, max(len(gops) - 1, 1), ch.int(1, 8)])
        gops = []
        for _ in range(n):
            length = ch.choice([1, 2, 3, 4, 5, ch.int(1, 40), 1000])
            gops.append({"length": length, "key": ch.int(0, length - 1), "width": ch.choice([0, 2, 4, 8, ch.int(0, 64)])})
        values["gops"], values["frames"] = n, sum(g["length"] for g in gops)
    elif how == "lengths":
        for g in gops:
            if ch.int(0, 1):
                g["length"] = ch.choice([1, 2, g["length"] + 1, max(g["length"] - 1, 1), ch.int(1, 1000)])
                g["key"] = min(g["key"], g["length"] - 1) if ch.int(0, 1) else ch.int(0, g["length"] - 1)
        values["frames"] = sum(g["length"] for g in gops)
    elif how == "gop_length":
        v = ch.choice([1, 2, 3, 4, 7, 8, 1000, ch.int(1, 1000)])
        values["gop_length"], values["freq_t"] = v, freq(v)
    else:
        values["gops"] = ch.choice([0, len(gops) + 1, max(len(gops) - 1, 0), 0xFFFFFFFF])
    secs[i] = (b"HEAD", pack_head(values, gops))
    return assemble(secs, data[:5])


def gop_index(data, corpus, ch):
    """The GOP index of a KEYF, KSEG or NETW set to another value; valid CRC."""
    secs = _sections_or_raw(data)
    if secs is None:
        return byte_overwrite(data, corpus, ch)
    i = _pick_section(secs, ch, [b"KEYF", b"KSEG", b"NETW"])
    if i is None:
        return header_field(data, corpus, ch)
    tag, payload = secs[i]
    g = struct.unpack_from("<I", payload)[0] if len(payload) >= 4 else 0
    new = ch.choice([g + 1, g - 1 if g else 0xFFFFFFFF, 0, 2, 0xFFFFFFFF, 0x80000000, ch.int(0, 0xFFFFFFFF)])
    secs[i] = (tag, struct.pack("<I", new) + payload[4:])
    return assemble(secs, data[:5])


SPECIAL_FP16 = [np.float16(v) for v in (np.inf, -np.inf, np.nan, 65504.0, -65504.0, 6e-8, -0.0, 1000.0)]


def weight_values(data, corpus, ch):
    """Special fp16 values (inf, nan, the largest finite, subnormal, ...) written into a network; valid CRC."""
    secs = _sections_or_raw(data)
    if secs is None:
        return byte_overwrite(data, corpus, ch)
    i = _pick_section(secs, ch, [b"NETW"])
    if i is None or len(secs[i][1]) < 6 or len(secs[i][1]) % 2:
        return payload_overwrite_crc(data, corpus, ch)
    tag, payload = secs[i]
    weights = np.frombuffer(payload[4:], dtype="<f2").copy()
    value = ch.choice(SPECIAL_FP16)
    if ch.int(0, 3) == 0:
        weights[:] = value
    else:
        for _ in range(ch.int(1, 8)):
            weights[ch.int(0, len(weights) - 1)] = value
    secs[i] = (tag, payload[:4] + weights.astype("<f2").tobytes())
    return assemble(secs, data[:5])


def keyframe_header(data, corpus, ch):
    """Damage the start of a key frame's codec bytes (parameter sets: sizes, profile); valid CRC.
    Also swaps in the other codec id or pixel format in the header."""
    secs = _sections_or_raw(data)
    if secs is None:
        return byte_overwrite(data, corpus, ch)
    i = _pick_section(secs, ch, [b"KEYF", b"KSEG"])
    if i is None:
        return payload_flip_crc(data, corpus, ch)
    if ch.int(0, 4) == 0 and _head(data)[0] is not None:
        _, h, values, gops = _head(data)
        values["keyframe_codec" if ch.int(0, 1) else "keyframe_pix_fmt"] ^= 3  # 1 <-> 2
        secs[h] = (b"HEAD", pack_head(values, gops))
        return assemble(secs, data[:5])
    tag, payload = secs[i]
    out = bytearray(payload)
    start = 8 if tag == b"KSEG" else 4  # the codec bytes begin after the GOP index (and count)
    limit = min(len(out) - 1, start + 48)
    for _ in range(ch.int(1, 4)):
        pos = ch.int(start, max(limit, start))
        if pos < len(out):
            out[pos] = ch.choice([0x00, 0xFF, out[pos] ^ (1 << ch.int(0, 7)), ch.int(0, 255)])
    if ch.int(0, 3) == 0 and len(out) > start + 1:  # cut the codec bytes short
        out = out[: ch.int(start + 1, len(out))]
    secs[i] = (tag, bytes(out))
    return assemble(secs, data[:5])


KEYFRAME_POOL: list[tuple[str, bytes]] = []  # filled by build_corpus: foreign key-frame streams


def keyframe_swap(data, corpus, ch):
    """A key frame's codec bytes replaced by another stream (valid CRC): a much larger picture,
    many pictures, the other codec, 10-bit, or a stream cut short."""
    secs = _sections_or_raw(data)
    i = None if secs is None else _pick_section(secs, ch, [b"KEYF", b"KSEG"])
    if i is None or not KEYFRAME_POOL:
        return keyframe_header(data, corpus, ch)
    _, stream = ch.choice(KEYFRAME_POOL)
    if ch.int(0, 3) == 0:
        stream = stream[: ch.int(1, len(stream))]
    tag, payload = secs[i]
    secs[i] = (tag, payload[: 8 if tag == b"KSEG" else 4] + stream)
    return assemble(secs, data[:5])


def random_file(data, corpus, ch):
    """Random sections after a valid preamble, or random bytes."""
    if ch.int(0, 2) == 0:
        return ch.bytes(ch.int(0, 64))
    secs = [(ch.choice(TAGS), ch.bytes(ch.int(0, 80))) for _ in range(ch.int(1, 5))]
    return assemble(secs)


def stacked(data, corpus, ch):
    """Two or three other mutations in a row."""
    for _ in range(ch.int(2, 3)):
        name = ch.choice([n for n in MUTATIONS if n != "stacked"])
        data = MUTATIONS[name](data, corpus, ch) or MAGIC
    return data


MUTATIONS: dict[str, Callable] = {
    f.__name__: f
    for f in (
        bit_flip, byte_overwrite, payload_flip_crc, payload_overwrite_crc, truncate, truncate_boundary,
        length_resize, length_lie, duplicate_section, drop_section, reorder_sections, foreign_section,
        unknown_section, trailing_garbage, preamble, header_field, header_consistent, gop_index,
        weight_values, keyframe_header, keyframe_swap, random_file, stacked,
    )
}


# --------------------------------------------------------------------------- the corpus


CORPUS_SPECS = {
    # name: (frames, width, height, method, gop, key-frame codec, key-frame pixel format, other options)
    "nrff": (7, 32, 16, "nrff", 3, "x264", "yuv444p", {}),
    "nrff-single": (7, 32, 16, "nrff-single", 3, "x264", "yuv420p", {}),
    "siren": (7, 32, 16, "siren", 3, "x264", "yuv444p", {}),
    "nrff-x265": (3, 24, 16, "nrff", 2, "x265", "yuv444p", {}),  # GOPs of 2 + 1 frames: one without a network
    # version-2 features: entropy-coded weights and predicted key-frame streams (KSEG), NeRV
    "nrff-qpred": (7, 32, 16, "nrff", 2, "x264", "yuv444p", {"quant_bits": 6, "keyframe_mode": "predicted", "random_access": 2}),
    "nerv-q": (4, 32, 16, "nerv", 4, "x264", "yuv444p", {"quant_bits": 8}),
    # version 3: weights on column grids (weight format 2)
    "nrff-qcol": (7, 32, 16, "nrff", 3, "x264", "yuv444p", {"quant_bits": 7, "quant_grid": "column"}),
}


def build_corpus(folder: str | os.PathLike) -> dict[str, bytes]:
    """Encode the tiny clips (1-2 epochs each, well under a second) and return the files' bytes."""
    import warnings

    from PIL import Image

    from nrff.api import EncodeConfig, encode
    from nrff.data import sample_clip

    folder = Path(folder)
    sources = sorted(sample_clip().glob("*.png"))
    corpus = {}
    for name, (frames, width, height, method, gop, codec, pix_fmt, extra) in CORPUS_SPECS.items():
        clip = folder / f"{name}-clip"
        clip.mkdir(parents=True, exist_ok=True)
        for i in range(frames):
            with Image.open(sources[i]) as im:
                im.convert("RGB").resize((width, height), Image.Resampling.LANCZOS).save(clip / f"frame_{i + 1:04d}.png")
        config = EncodeConfig.from_preset(
            "paper", gop=gop, method=method, target_bpp={"siren": 2.0, "nerv": 40.0}.get(method),
            quant_bits=extra.get("quant_bits"), quant_grid=extra.get("quant_grid", "tensor"), epochs=2, pixel_stride=4, batch_frames=4 if method == "nrff-single" else 1,
            log_every=4, zero_output=False, warmup=0.2, keyframe_codec=codec, crf=30, keyframe_pix_fmt=pix_fmt,
            keyframe_mode=extra.get("keyframe_mode", "intra"), random_access=extra.get("random_access", 8), device="cpu",
        )
        out = folder / f"{name}.nrff"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encode(clip, out, config, force=True, checkpoint_seconds=None)
        corpus[name] = out.read_bytes()
    if not KEYFRAME_POOL:
        KEYFRAME_POOL.extend(keyframe_pool())
    return corpus


def keyframe_pool() -> list[tuple[str, bytes]]:
    """Key-frame streams that do not fit the corpus files (a few tenths of a second to make)."""
    from nrff.codec.h26x import H26xSettings, encode_frames

    def stream(codec, width, height, count=1, pix_fmt="yuv420p"):
        settings = H26xSettings(codec=codec, crf=40, preset="ultrafast", pix_fmt=pix_fmt,
                                gop=None if count == 1 else 10**6)
        rng = np.random.default_rng(count)
        frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) // 64 * 64 for _ in range(count)]
        return b"".join(encode_frames(frames, settings, width, height))

    return [
        ("x264 1024x1024", stream("x264", 1024, 1024)),
        ("x265 512x512", stream("x265", 512, 512)),
        ("x264 32x16 x 40 pictures", stream("x264", 32, 16, 40)),
        ("x265 32x16", stream("x265", 32, 16)),
        ("x264 32x16 yuv444p", stream("x264", 32, 16, pix_fmt="yuv444p")),
        ("x264 24x16", stream("x264", 24, 16)),
        ("x265 24x16 x 3 pictures", stream("x265", 24, 16, 3)),
    ]


# --------------------------------------------------------------------------- running a case


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_mib() -> float:
    kib = _status_kib("VmRSS")
    return (kib or 0) / 1024


def peak_rss_mib() -> float:
    """The process's RSS high-water mark (since the last reset) in MiB."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def category(message: str) -> str:
    """A message with its numbers and quoted names blanked: the kind of defect it reports."""
    quoted = r"b?'(?:\\.|[^'\\])*'" + "|" + r'b?"(?:\\.|[^"\\])*"'
    text = re.sub(quoted, "'…'", message)
    text = re.sub(r"flags 0x[0-9a-fA-F]+", "flags <hex>", text)
    text = re.sub(r"\b\d+x\d+\b", "WxH", text)
    text = re.sub(r"\(\d+(, \d+)*\)", "(N)", text)
    text = re.sub(r"(?<![A-Za-z\d])\d+(\.\d+)?", "N", text).replace("<hex>", "0xNN")
    text = text.split(": ", 1)[0] if text.startswith("key frame does not decode") else text
    return text[:90]


@dataclass
class Outcome:
    kind: str  # "decoded", "parsed only", "BitstreamError" or "other"
    detail: str  # message category (BitstreamError), "Type: message" (other)
    seconds: float
    peak_mib: float  # RSS high-water mark during the case (absolute, MiB)
    rss_before_mib: float = 0.0  # RSS when the case started
    frames: int = 0
    message: str = ""

    @property
    def growth_mib(self) -> float:
        """How far the RSS peak of the case rose above the RSS it started with."""
        return self.peak_mib - self.rss_before_mib

    @property
    def ok(self) -> bool:
        return self.kind != "other"


def run_case(data: bytes, render_limit: int = RENDER_LIMIT) -> Outcome:
    """Feed ``data`` to ``info`` and the full decoder; classify what happened.

    A file that parses but declares more than ``render_limit`` frame pixels
    (frames x width x height, after a header mutation that kept it consistent)
    is not rendered: decoding work grows with the declared video by design, and
    such a file is counted as "parsed only" (its header and sections passed
    every check and ``decode`` returned without rendering).
    """
    from nrff.api import decode, info
    from nrff.errors import BitstreamError

    _reset_peak()
    before = peak_rss_mib()  # the current RSS where the reset works, the process's peak so far where not
    started = time.perf_counter()
    frames = 0
    try:
        info_error = None
        try:
            desc = info(data)
        except BitstreamError as exc:
            info_error = exc
        try:
            video = decode(data, device="cpu")
        except BitstreamError as exc:
            if info_error is None and "over the decode budget" not in str(exc):  # info reads, it does not render
                raise AssertionError(f"info accepted the file but decode refused it: {exc}") from None
            raise
        if info_error is not None:
            raise AssertionError(f"decode accepted a file that info refused: {info_error}")
        h = video.header
        assert (desc["frames"], desc["width"], desc["height"]) == (h.frames, h.width, h.height)
        if h.frames * h.width * h.height > render_limit:
            kind = "parsed only"
        else:
            for frame in video.frames():
                if frame.shape != (h.height, h.width, 3) or frame.dtype != np.uint8:
                    raise AssertionError(f"frame {frames} is {frame.shape} {frame.dtype}")
                frames += 1
            if frames != video.count:
                raise AssertionError(f"decoded {frames} frames, the header declares {video.count}")
            kind = "decoded"
        detail, message = "", ""
    except BitstreamError as exc:
        kind, detail, message = "BitstreamError", category(str(exc)), str(exc)
    except Exception as exc:  # noqa: BLE001 - that is what the fuzzer looks for
        kind, detail, message = "other", f"{type(exc).__name__}: {str(exc)[:200]}", repr(exc)
    seconds = time.perf_counter() - started
    return Outcome(kind, detail, seconds, peak_rss_mib(), before, frames, message)


def make_case(corpus: dict[str, bytes], ch) -> tuple[str, str, bytes]:
    name = ch.choice(sorted(corpus))
    mutation = ch.choice(sorted(MUTATIONS))
    return name, mutation, MUTATIONS[mutation](corpus[name], corpus, ch)


# --------------------------------------------------------------------------- the long run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000, help="cases to try (default 5000)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds instead")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--case-limit", type=float, default=5.0, help="a case slower than this (s) fails")
    parser.add_argument("--memory-limit", type=float, default=512.0,
                        help="a case whose RSS peak rises above its starting RSS by more than this (MiB) fails")
    parser.add_argument("--hang", type=float, default=120.0, help="abort with a traceback if one case runs this long")
    parser.add_argument("--save-failures", type=Path, default=None, help="write failing inputs into this folder")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    import torch

    from nrff.machine import describe_cpu

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="nrff-fuzz-") as tmp:
        t0 = time.perf_counter()
        corpus = build_corpus(tmp)
        print(f"corpus: {', '.join(f'{k} ({len(v)} bytes)' for k, v in corpus.items())} in {time.perf_counter() - t0:.1f} s")
    for data in corpus.values():  # warm up (first decode loads codecs) before measuring
        run_case(data)
    baseline = rss_mib()
    rng = random.Random(args.seed)
    ch = RandomChooser(rng)
    counts: Counter = Counter()
    by_mutation: Counter = Counter()
    failures = []
    slowest = (0.0, "", "", "")
    times: list[float] = []
    peak, growth = 0.0, (-1.0, "", "", "", 0)
    started = time.perf_counter()
    n = 0
    while (args.seconds is None and n < args.cases) or (args.seconds is not None and time.perf_counter() - started < args.seconds):
        name, mutation, data = make_case(corpus, ch)
        faulthandler.dump_traceback_later(args.hang, exit=True)
        outcome = run_case(data)
        faulthandler.cancel_dump_traceback_later()
        n += 1
        key = outcome.kind if outcome.kind not in ("BitstreamError", "other") else f"{outcome.kind}: {outcome.detail}"
        counts[key] += 1
        by_mutation[(mutation, outcome.kind)] += 1
        times.append(outcome.seconds)
        if outcome.seconds > slowest[0]:
            slowest = (outcome.seconds, name, mutation, outcome.kind + (f" ({outcome.detail})" if outcome.detail else ""))
        peak = max(peak, outcome.peak_mib)
        if outcome.growth_mib > growth[0]:
            growth = (outcome.growth_mib, name, mutation, outcome.kind, outcome.frames)
        problem = None
        if not outcome.ok:
            problem = outcome.detail
        elif outcome.seconds > args.case_limit:
            problem = f"slow: {outcome.seconds:.1f} s"
        elif outcome.growth_mib > args.memory_limit:
            problem = f"memory: RSS rose by {outcome.growth_mib:.0f} MiB"
        if problem:
            failures.append({"case": n, "file": name, "mutation": mutation, "problem": problem, "message": outcome.message})
            if args.save_failures:
                args.save_failures.mkdir(parents=True, exist_ok=True)
                (args.save_failures / f"case{n:06d}-{name}-{mutation}.nrff").write_bytes(data)
        if n % 500 == 0:
            print(f"  {n} cases, {time.perf_counter() - started:.0f} s, {len(failures)} failures", flush=True)
    elapsed = time.perf_counter() - started

    kinds = Counter()
    for key, c in counts.items():
        kinds[key.split(":", 1)[0]] += c
    print(f"\nmachine: {describe_cpu()}; torch {torch.__version__}, Python {platform.python_version()}")
    print(f"cases tried: {n} in {elapsed:.0f} s (seed {args.seed}); RSS before the run {baseline:.0f} MiB")
    print("outcomes by kind:")
    for key, c in kinds.most_common():
        print(f"  {c:7d}  {key}")
    print("BitstreamError by message category:")
    for key, c in counts.most_common():
        if key.startswith("BitstreamError"):
            print(f"  {c:7d}  {key.split(': ', 1)[1]}")
    print("outcomes by mutation (decoded / parsed only / BitstreamError / other):")
    for mutation in sorted(MUTATIONS):
        row = [by_mutation[(mutation, k)] for k in ("decoded", "parsed only", "BitstreamError", "other")]
        print(f"  {mutation:22s} {row[0]:6d} {row[1]:6d} {row[2]:6d} {row[3]:6d}")
    print(f"slowest case: {slowest[0] * 1000:.0f} ms ({slowest[1]}, {slowest[2]}, {slowest[3]}); "
          f"median {np.median(times) * 1000:.1f} ms, 99th percentile {np.percentile(times, 99) * 1000:.1f} ms")
    print(f"peak memory: RSS high-water mark {peak:.0f} MiB (RSS before the run {baseline:.0f} MiB); "
          f"largest rise within one case {growth[0]:.1f} MiB ({growth[1]}, {growth[2]}, {growth[3]}, {growth[4]} frames)")
    print(f"failures: {len(failures)}")
    for f in failures[:20]:
        print(f"  case {f['case']} {f['file']} {f['mutation']}: {f['problem']}")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": describe_cpu(), "torch": torch.__version__, "seed": args.seed, "cases": n, "seconds": elapsed,
            "kinds": dict(kinds), "outcomes": dict(counts),
            "by_mutation": {f"{m}/{k}": c for (m, k), c in by_mutation.items()},
            "slowest": {"seconds": slowest[0], "file": slowest[1], "mutation": slowest[2], "outcome": slowest[3]},
            "median_seconds": float(np.median(times)), "p99_seconds": float(np.percentile(times, 99)),
            "peak_rss_mib": peak, "rss_before_mib": baseline, "largest_case_rise": {"mib": growth[0], "file": growth[1], "mutation": growth[2], "outcome": growth[3],
                                  "frames": growth[4]}, "failures": failures,
        }, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
