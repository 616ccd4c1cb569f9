"""Reading a file: the container's structure, then what its ids mean.

:func:`read_stream` parses the container (:mod:`nrff.codec.container`), resolves
the header's method and weight format through their registries, and lets the
method refuse a header it could not have written; every network's size is
checked against its declared shapes before anything is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch

from nrff.codec.container import Bitstream, Header, SectionInfo, read_container
from nrff.codec.weights import WeightCodec, weight_codec
from nrff.errors import BitstreamError
from nrff.fields.encoding import PositionalEncoding, frequency_count
from nrff.gop import Gop, gops_from_lengths
from nrff.methods import method_by_id
from nrff.methods.base import FieldShape, Method


@dataclass
class Stream:
    """A validated file: its container and the components its header names."""

    container: Bitstream
    sections: list[SectionInfo]
    version: int
    method: Method
    shape: FieldShape
    weight_codec: WeightCodec

    @property
    def header(self) -> Header:
        return self.container.header

    @property
    def fps(self) -> Fraction:
        return self.header.fps

    def gops(self) -> list[Gop]:
        h = self.header
        return gops_from_lengths([g.length for g in h.gops], [g.key for g in h.gops])

    def gop_weights(self, g: int) -> list[torch.Tensor]:
        """The tensors of GOP ``g``'s networks, as the file stores them."""
        shapes = self.shape.shapes(self.header.gops[g].units)
        return self.weight_codec.unpack(self.container.weights[g], shapes)


def read_stream(data: bytes) -> Stream:
    """Parse and validate a whole file. Raises :class:`~nrff.errors.BitstreamError` on any defect."""
    container, sections = read_container(data)
    h = container.header
    method = method_by_id(h.method_id)
    method.check_header(h)
    expected = (frequency_count(h.gop_length), frequency_count(h.height), frequency_count(h.width))
    if h.frequencies != expected:
        raise BitstreamError(f"encoding frequencies {h.frequencies} do not match the declared sizes (expected {expected})")
    shape = FieldShape(method, h.split, PositionalEncoding(h.frequencies), h.hidden_layers, h.reuse, h.height, h.width)
    codec = weight_codec(h.weight_format, h.quant_bits)
    for g, body in container.weights.items():
        units = h.gops[g].units
        codec.check(body, shape.shapes(units), f"network of GOP {g}", units)
    return Stream(container, sections, data[4], method, shape, codec)
