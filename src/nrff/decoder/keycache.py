"""Decoded key frames of a stream, decoded when first needed and kept, within a byte budget, while
they may be needed again.

Intra key frames decode one by one. A predicted stream (``KSEG``) is never decoded whole: its
pictures are taken from the codec one at a time, as the renderer asks for them (in increasing
GOP order), and only the pictures asked for are kept; a picture asked for again after it left
the cache is decoded again from the start of its stream. So memory is bounded by
:data:`CACHE_BYTES` (at least three pictures), not by the length of the stream.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from nrff.codec.container import INTRA
from nrff.codec.keyframes import decode_keyframes, iter_keyframes
from nrff.decoder.stream import Stream

CACHE_BYTES = 256 * 1024**2
MIN_PICTURES = 3  # a GOP chunk's first key frame needs its two neighbours


class KeyframeCache:
    """Key frames by GOP index (``cache(g)`` -> uint8 ``[H, W, 3]``)."""

    def __init__(self, stream: Stream, budget_bytes: int = CACHE_BYTES):
        self.stream = stream
        h = stream.header
        self.limit = max(MIN_PICTURES, budget_bytes // max(h.width * h.height * 3, 1))
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._segment: int | None = None  # first GOP of the stream being decoded
        self._pictures: Iterator[np.ndarray] | None = None
        self._next = 0  # GOP index of the next picture of that stream
        self.decoded = 0  # pictures decoded so far (for tests and figures)

    def __call__(self, g: int) -> np.ndarray:
        if g in self.cache:
            self.cache.move_to_end(g)
            return self.cache[g]
        h = self.stream.header
        bits = self.stream.container
        if h.keyframe_mode == INTRA:
            image = decode_keyframes(bits.keyframes[g], h.keyframe_codec, 1, h.width, h.height)[0]
            self.decoded += 1
        else:
            image = self._from_segment(g)
        self._keep(g, image)
        return image

    def _keep(self, g: int, image: np.ndarray) -> None:
        self.cache[g] = image
        while len(self.cache) > self.limit:
            self.cache.popitem(last=False)

    def _from_segment(self, g: int) -> np.ndarray:
        h = self.stream.header
        bits = self.stream.container
        first = max(f for f in bits.segments if f <= g)
        if self._segment != first or self._next > g:  # another stream, or a picture already passed: (re)start
            count, data = bits.segments[first]
            self._pictures = iter_keyframes(data, h.keyframe_codec, count, h.width, h.height, "key-frame stream")
            self._segment, self._next = first, first
        count = bits.segments[first][0]
        image = None
        while self._next <= g:
            image = next(self._pictures)
            self.decoded += 1
            self._next += 1
        if self._next == first + count:  # the stream's last picture: let the codec check its end
            for _ in self._pictures:  # pragma: no cover - iter_decode raises on a longer stream
                pass
            self._pictures, self._segment = None, None
        return image
