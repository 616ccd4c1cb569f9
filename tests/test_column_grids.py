"""Weight format 2: output layers quantised on one grid per column, small tensors as fp16 (bitstream v3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nrff.api import EncodeConfig, decode, encode, info
from nrff.codec.container import read_container
from nrff.codec.weights import QUANTIZED, QUANTIZED_COLUMNS, weight_codec, weight_codec_for
from nrff.data import sample_clip
from nrff.errors import BitstreamError, InputError
from nrff.fields.encoding import PositionalEncoding
from nrff.fields.mlp import SwishField, gop_generators
from nrff.quant import stored_grid


def _tensors(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out_layer = torch.randn(18, 4, generator=g) * torch.tensor([5.0, 0.1, 0.1, 0.1])  # one column 50x the others
    return [torch.randn(37, 18, generator=g) * 0.3, torch.randn(1, 18, generator=g), torch.randn(1, 1, generator=g),
            torch.randn(18, 18, generator=g) * 0.2, out_layer, torch.randn(1, 4, generator=g)]


def test_the_grid_rules():
    assert stored_grid((1, 1), True) == stored_grid((1, 1), False) == "fp16"
    assert stored_grid((1, 4), True) == "fp16" and stored_grid((1, 4), False) == "tensor"
    assert stored_grid((18, 4), True) == "column" and stored_grid((18, 4), False) == "tensor"
    assert stored_grid((37, 18), True) == "tensor" and stored_grid((1, 18), True) == "tensor"
    assert stored_grid((37, 8), True) == "column"  # narrow networks: every layer per column


def test_column_grids_keep_small_columns_precise_for_a_few_bytes():
    tensors = _tensors()
    shapes = [tuple(t.shape) for t in tensors]
    results = {}
    for grid in ("tensor", "column"):
        codec = weight_codec_for(8, grid)
        data = codec.pack(tensors)
        decoded = weight_codec(codec.format_id, 8).unpack(data, shapes)
        assert [tuple(t.shape) for t in decoded] == shapes
        column_error = ((decoded[4] - tensors[4]).abs().amax(0) / tensors[4].abs().amax(0))
        results[grid] = (len(data), column_error, decoded)
        assert abs(codec.estimate(shapes, 7 / 8) - len(data)) < 0.1 * len(data)
    assert weight_codec_for(8, "column").format_id == QUANTIZED_COLUMNS and weight_codec_for(8).format_id == QUANTIZED
    assert results["tensor"][1][1:].min() > 0.05  # one grid: the small columns get a handful of levels
    assert results["column"][1].max() < 0.005  # a grid each: every column within half a step of 1/127
    assert torch.equal(results["column"][2][5], tensors[5].half().float())  # the output bias as fp16
    assert results["column"][0] - results["tensor"][0] < 40  # 3 more grids and a 4-value bias


def test_fake_quantisation_matches_what_the_decoder_rebuilds():
    """Training on the column grids sees exactly the weights format 2 stores (per GOP, mixed widths)."""
    enc = PositionalEncoding((3, 4, 4))
    net = SwishField([6, 12], enc, 4, generators=gop_generators(0, [0, 1], 0))  # width 6: every layer per column
    net.quant_bits, net.quant_grid = 6, "column"
    codec = weight_codec_for(6, "column")
    for g in range(2):
        stored = net.export_gop(g)
        decoded = codec.unpack(codec.pack(stored), [tuple(t.shape) for t in stored])
        for (name, index), value in zip(net.layout(net.units[g]), decoded):
            param = net.get_parameter(name)
            if value.numel() == 1 or value.numel() <= 8:
                continue  # stored as fp16, trained unquantised (like the Swish scalars)
            assert torch.allclose(net._w(param)[g][index], value, rtol=0, atol=1e-7), (g, name)


def test_an_encode_on_column_grids_is_version_3_and_decodes(tmp_path):
    config = EncodeConfig.from_preset("fast", epochs=3, crf=30, quant_bits=7, quant_grid="column", device="cpu")
    out = tmp_path / "c.nrff"
    result = encode(sample_clip(), out, config, frames="0:6", checkpoint_seconds=None)
    data = out.read_bytes()
    assert data[4] == 3 and read_container(data)[0].header.weight_format == QUANTIZED_COLUMNS
    frames = list(decode(data, device="cpu").frames())
    assert len(frames) == 6 and result.psnr > 20
    assert info(data)["frames"] == 6
    # format 2 in a version-2 file is refused: v2 readers never knew it
    with pytest.raises(BitstreamError, match="unknown weight format 2"):
        read_container(data[:4] + bytes([2]) + data[5:])
    # a per-tensor encode is still written as version 2 (older readers open it)
    plain = tmp_path / "p.nrff"
    encode(sample_clip(), plain, EncodeConfig.from_preset("fast", epochs=1, crf=30, device="cpu"), frames="0:6",
           checkpoint_seconds=None)
    assert plain.read_bytes()[4] == 2


def test_column_grids_are_refused_where_they_do_not_apply():
    with pytest.raises(InputError, match="quantisation grid"):
        EncodeConfig.from_preset("fast", quant_grid="row").validate()
    with pytest.raises(InputError, match="nerv"):
        EncodeConfig.from_preset("fast", method="nerv", target_bpp=1.0, quant_grid="column").validate()
    np.testing.assert_equal(stored_grid((2, 2, 2), True), "fp16")  # 8 elements
