"""Decoded key frames of a stream, decoded when first needed and kept while they are."""

from __future__ import annotations

import numpy as np

from nrff.codec.container import INTRA
from nrff.codec.keyframes import decode_keyframes
from nrff.decoder.stream import Stream


class KeyframeCache:
    """Key frames by GOP index: intra ones one by one, predicted segments whole (keeping recent ones)."""

    def __init__(self, stream: Stream):
        self.stream = stream
        self.cache: dict[int, np.ndarray] = {}

    def __call__(self, g: int) -> np.ndarray:
        if g in self.cache:
            return self.cache[g]
        h = self.stream.header
        bits = self.stream.container
        if h.keyframe_mode == INTRA:
            images = {g: decode_keyframes(bits.keyframes[g], h.keyframe_codec, 1, h.width, h.height)[0]}
        else:
            first = max(f for f in bits.segments if f <= g)
            count, data = bits.segments[first]
            decoded = decode_keyframes(data, h.keyframe_codec, count, h.width, h.height, "key-frame stream")
            images = {first + j: image for j, image in enumerate(decoded)}
        if len(self.cache) > 2 * max(h.random_access, 2):
            for old in sorted(self.cache)[: len(self.cache) - max(h.random_access, 2)]:
                if old < g:
                    del self.cache[old]
        self.cache.update(images)
        return self.cache[g]
