"""Coding the key frames of an encode, and what the fields will see of them.

The fields are fitted to warp the key frames *as decoded*, so every key frame
is decoded again right after it is coded (with the decoder's own code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nrff.codec.keyframes import KeyframeCodec, KeyframeSettings, keyframe_codec
from nrff.config import KeyframeConfig
from nrff.gop import Gop
from nrff.progress import Reporter


@dataclass(frozen=True)
class KeyframeSegment:
    """Key frames of ``count`` consecutive GOPs coded as one predicted stream (random-access picture first)."""

    first: int
    count: int
    data: bytes
    frame_bytes: tuple[int, ...]  # bytes of each key frame's packet (the first carries the stream headers)


@dataclass
class CodedKeyframes:
    """The key frames as coded: bytes (intra per GOP, or predicted segments), the
    decoded images the fields warp, and each GOP's share of the key-frame bytes."""

    intra: dict[int, bytes] = field(default_factory=dict)
    segments: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    images: dict[int, np.ndarray] = field(default_factory=dict)
    sizes: dict[int, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def settings_of(config: KeyframeConfig) -> KeyframeSettings:
    return KeyframeSettings(crf=config.crf, pix_fmt=config.pix_fmt, preset=config.preset, tune=config.tune)


def encode_segments(frames: Sequence[np.ndarray], codec: KeyframeCodec, settings: KeyframeSettings, interval: int) -> list[KeyframeSegment]:
    """Code consecutive key frames as predicted streams of ``interval`` pictures each.

    Key frames are only a GOP apart, so predicting each from the previous one
    costs far fewer bytes than coding each alone; every stream starts with a
    random-access picture, so decoding can start at any ``interval``-th GOP.
    """
    out = []
    for first in range(0, len(frames), interval):
        packets = codec.encode_stream(frames[first : first + interval], settings, interval)
        out.append(KeyframeSegment(first, len(packets), b"".join(packets), tuple(len(p) for p in packets)))
    return out


def code_keyframes(config: KeyframeConfig, originals: dict[int, np.ndarray], gops: Sequence[Gop], width: int, height: int,
                   reporter: Reporter) -> CodedKeyframes:
    """Code the key frame of every GOP (``originals``: GOP index -> RGB) as ``config`` says."""
    codec = keyframe_codec(config.codec)
    settings = settings_of(config)
    out = CodedKeyframes()
    with reporter.task("key frames", len(gops), unit="GOPs") as update:
        if config.mode == "intra":
            for i, gop in enumerate(gops):
                data = codec.encode_intra(originals[gop.index], settings)
                out.intra[gop.index] = data
                out.images[gop.index] = codec.decode(data, 1, width, height)[0]
                out.sizes[gop.index] = len(data)
                update(i + 1)
            return out
        for seg in encode_segments([originals[g.index] for g in gops], codec, settings, config.random_access):
            out.segments[seg.first] = (seg.count, seg.data)
            decoded = codec.decode(seg.data, seg.count, width, height, "key-frame stream")
            for j, image in enumerate(decoded):
                out.images[seg.first + j] = image
                # networks are sized from the segment's mean, not the first picture's or a predicted one's own bytes
                out.sizes[seg.first + j] = round(len(seg.data) / seg.count)
            update(seg.first + seg.count)
    return out
