"""Hostile ``.nrff`` files that pass every CRC, built from the documented format.

Each file is written by the container's own writer (``Bitstream.to_bytes``: sections, lengths and
CRC-32s as docs/bitstream.md gives them) around header values chosen to hurt a decoder: networks
wider, deeper or reused more than the encoder makes them, long predicted key-frame streams,
key frames coded far larger than the declared frame, single-reference GOPs too large to hold,
entropy-coded weights that are random bytes. Shared by ``tests/test_hostile.py`` and the
structure-aware fuzzer.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from nrff.codec.container import INTRA, PREDICTED, Bitstream, GopEntry, Header
from nrff.codec.h26x import H26xSettings, encode_frames
from nrff.codec.weights import FP16, QUANTIZED, weight_codec
from nrff.fields.encoding import PositionalEncoding, frequency_count
from nrff.methods import get_method
from nrff.methods.base import FieldShape


def black_stream(width: int, height: int, count: int = 1, codec: str = "x264", crop_from: tuple[int, int] | None = None,
                 pix_fmt: str = "yuv420p") -> bytes:
    """``count`` black pictures as one low-delay Annex-B stream (an IDR, then P pictures); with
    ``crop_from`` (W, H) the pictures are *coded* at that size and cropped to ``width`` x ``height``."""
    import av

    from nrff.video.colour import rgb_to_frame

    if crop_from is None:
        settings = H26xSettings(codec=codec, crf=51, preset="ultrafast", pix_fmt=pix_fmt,
                                gop=None if count == 1 else 10**6, bframes=False)
        return b"".join(encode_frames([np.zeros((height, width, 3), np.uint8)] * count, settings, width, height))
    coded_w, coded_h = crop_from
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt = coded_w, coded_h, pix_fmt
    cc.time_base = Fraction(1, 25)
    cc.options = {"crf": "51", "preset": "ultrafast", "x264-params": f"crop-rect=0,0,{coded_w - width},{coded_h - height}:bframes=0"}
    out = []
    for i in range(count):
        frame = rgb_to_frame(np.zeros((coded_h, coded_w, 3), np.uint8), pix_fmt)
        frame.pts = i
        out += [bytes(p) for p in cc.encode(frame)]
    out += [bytes(p) for p in cc.encode(None)]
    return b"".join(out)


def weights(method: str, units: int, split: bool, hidden: int, reuse: int, gop_length: int, height: int, width: int,
            quant_bits: int | None = None, value: float = 0.0) -> bytes:
    """A GOP's network of width ``units``, every weight ``value``."""
    m = get_method(method)
    shape = FieldShape(m, split, PositionalEncoding.for_sizes(gop_length, height, width), hidden, reuse, height, width)
    codec = weight_codec(FP16 if quant_bits is None else QUANTIZED, quant_bits or 0)
    return codec.pack([torch.full(s, value) for s in shape.shapes(units)])


def build(method: str = "nrff", *, width: int = 64, height: int = 48, gops: list[tuple[int, int, int]],
          hidden: int = 1, reuse: int = 2, split: bool | None = None, quant_bits: int | None = None,
          keyframe_codec: str | None = "x264", mode: int = INTRA, random_access: int = 1,
          keyframes: dict[int, bytes] | None = None, segments: dict[int, tuple[int, bytes]] | None = None,
          networks: dict[int, bytes] | None = None, gop_length: int | None = None) -> bytes:
    """A whole file. ``gops``: (length, key, units) per GOP; key frames default to one black picture
    per GOP (intra) and networks to zero weights; ``networks`` replaces some payloads."""
    m = get_method(method)
    split = m.default_split if split is None else split
    if not m.uses_keyframes:
        keyframe_codec = None
    gop_length = gop_length or max(n for n, _, _ in gops)
    header = Header(
        frames=sum(n for n, _, _ in gops), width=width, height=height, fps=Fraction(25), method_id=m.id, split=split,
        gop_length=gop_length, hidden_layers=hidden, reuse=reuse,
        frequencies=(frequency_count(gop_length), frequency_count(height), frequency_count(width)),
        weight_format=FP16 if quant_bits is None else QUANTIZED, keyframe_codec=keyframe_codec,
        keyframe_pix_fmt="yuv420p" if keyframe_codec else None, keyframe_crf=51.0 if keyframe_codec else 0.0,
        gops=tuple(GopEntry(n, k, u) for n, k, u in gops), quant_bits=quant_bits or 0,
        keyframe_mode=mode, random_access=random_access,
    )
    bits = Bitstream(header)
    if keyframe_codec and mode == INTRA:
        picture = black_stream(width, height, 1, keyframe_codec)
        bits.keyframes = {g: picture for g in range(len(gops))} | (keyframes or {})
    if mode == PREDICTED:
        bits.segments = dict(segments or {})
    cache: dict[int, bytes] = {}
    for g, (_, _, units) in enumerate(gops):
        if units:
            if units not in cache:
                cache[units] = weights(method, units, split, hidden, reuse, gop_length, height, width, quant_bits)
            bits.weights[g] = cache[units]
    bits.weights.update(networks or {})
    return bits.to_bytes()


# ----------------------------------------------------------------------------- the cases of the robustness docs


def wide_reused(frames: int = 2000, units: int = 1024, reuse: int = 16, hidden: int = 1) -> bytes:
    """64x48, GOPs of 1000 frames, networks ``units`` wide whose hidden layer runs ``reuse`` times."""
    lengths = [1000] * (frames // 1000) + ([frames % 1000] if frames % 1000 else [])
    return build("nrff", gops=[(n, 0, units) for n in lengths], hidden=hidden, reuse=reuse)


def long_predicted_stream(pictures: int = 1000, width: int = 1280, height: int = 720) -> bytes:
    """``pictures`` one-frame GOPs whose key frames are one predicted stream (a few kB of black 720p)."""
    stream = black_stream(width, height, pictures)
    return build("nrff", width=width, height=height, gops=[(1, 0, 0)] * pictures, mode=PREDICTED,
                 random_access=pictures, segments={0: (pictures, stream)}, gop_length=5)


def cropped_keyframes(coded: tuple[int, int] = (2048, 2048), frames: int = 5) -> bytes:
    """Key frames coded at ``coded`` and cropped to the declared 64x48."""
    picture = black_stream(64, 48, 1, crop_from=coded)
    return build("nrff", gops=[(frames, 0, 8)], keyframes={0: picture})


def huge_single_gop(frames: int = 1000, width: int = 1920, height: int = 1080, key: int = 0) -> bytes:
    """nrff-single, one GOP of ``frames`` frames of ``width`` x ``height`` (tiny networks)."""
    return build("nrff-single", width=width, height=height, gops=[(frames, key, 8)])


def random_entropy_coded(units: int = 256, words: int = 32 * 1024, seed: int = 0) -> bytes:
    """Quantised weights whose side information is valid (steps 1, Laplace scales 0.5) and whose
    ANS words are random bytes: fewer than the declared weights need, so the coder runs out."""
    from nrff.codec.weights import quantized_side_bytes

    m = get_method("nrff")
    gop_length = 5
    shape = FieldShape(m, True, PositionalEncoding.for_sizes(gop_length, 48, 64), 1, 2, 48, 64)
    side = b"".join(np.array([1.0], "<f2").tobytes() if np.prod(s) == 1 else np.array([1.0, 0.5], "<f2").tobytes()
                    for s in shape.shapes(units))
    assert len(side) == quantized_side_bytes(shape.shapes(units))
    payload = side + np.random.default_rng(seed).bytes(4 * words)
    return build("nrff", gops=[(gop_length, 0, units)], quant_bits=8, networks={0: payload})
