import math

import pytest
import torch

from nrff.fields.encoding import PositionalEncoding
from nrff.fields.models import FieldModel
from nrff.methods import FieldShape, get_method
from nrff.fields.mlp import SirenField, SwishField, gop_generators


def test_encoding_size_matches_published_formula():
    # 436x1024, T=5 -> 3 + 2 (2 + 8 + 10) = 43; 1080x1920, T=15 -> 49
    assert PositionalEncoding.for_sizes(5, 436, 1024).size == 43
    assert PositionalEncoding.for_sizes(15, 1080, 1920).size == 49


def test_encoding_layout_and_fp32():
    enc = PositionalEncoding((2, 3, 4))
    t, y, x = torch.tensor([0.5]), torch.tensor([-0.25]), torch.tensor([0.75])
    full = enc.full(t, y, x)[0]
    assert full.dtype == torch.float32
    assert full[:3].tolist() == [0.5, -0.25, 0.75]
    freqs = [2.0**k for k in range(2)] + [2.0**k for k in range(3)] + [2.0**k for k in range(4)]
    coords = [0.5] * 2 + [-0.25] * 3 + [0.75] * 4
    expected = [math.cos(f * c) for f, c in zip(freqs, coords)] + [math.sin(f * c) for f, c in zip(freqs, coords)]
    assert torch.allclose(full[3:], torch.tensor(expected), atol=1e-6)
    # every feature is owned by exactly one axis
    rows = sorted(r for a in range(3) for r in enc.rows(a))
    assert rows == list(range(enc.size))


def test_separable_first_layer_equals_dense_layer():
    enc = PositionalEncoding.for_sizes(5, 48, 64)
    net = SwishField([6, 6], enc, 8, generators=gop_generators(0, [0, 1], 0))
    t, y, x = torch.rand(2, 3) * 2 - 1, torch.rand(2, 4) * 2 - 1, torch.rand(2, 5) * 2 - 1
    h = net.first_layer(t, y, x)
    for g in range(2):
        T, Y, X = torch.meshgrid(t[g], y[g], x[g], indexing="ij")
        dense = enc.full(T.reshape(-1), Y.reshape(-1), X.reshape(-1)) @ net.w_in[g] + net.b_in[g]
        assert torch.allclose(h[g].reshape(-1, 6), dense, atol=1e-5)


def test_reused_hidden_layer_is_applied_reuse_times():
    enc = PositionalEncoding.for_sizes(5, 16, 16)
    gens = gop_generators(0, [0], 0)
    net1 = SwishField([8], enc, 3, reuse=1, generators=gens)
    net3 = SwishField([8], enc, 3, reuse=3, generators=gop_generators(0, [0], 0))
    t, y, x = torch.zeros(1, 1), torch.linspace(-1, 1, 4)[None], torch.linspace(-1, 1, 4)[None]
    assert sum(p.numel() for p in net1.parameters()) == sum(p.numel() for p in net3.parameters())
    h = net1.act_in(net1.first_layer(t, y, x).reshape(1, -1, 8))
    for _ in range(3):
        h = net1.act_hidden[0](torch.baddbmm(net1.b_hidden[0], h, net1.w_hidden[0]))
    manual = torch.baddbmm(net1.b_out, h, net1.w_out)
    assert torch.allclose(net3(t, y, x), manual, atol=1e-6)
    assert not torch.allclose(net1(t, y, x), manual, atol=1e-4)


def test_swish_is_learnable_x_sigmoid():
    net = SwishField([4], PositionalEncoding((1, 1, 1)), 2)
    act = net.act_in
    with torch.no_grad():
        act.beta.fill_(2.0)
        act.bias.fill_(0.5)
    x = torch.linspace(-3, 3, 7).reshape(1, 7, 1)
    assert torch.allclose(act(x), x * torch.sigmoid(2 * x + 0.5))
    assert act.beta.requires_grad and act.bias.requires_grad


@pytest.mark.parametrize("method,split", [("nrff", True), ("nrff", False), ("nrff-single", False), ("nrff-single", True), ("siren", False)])
def test_export_import_round_trip_and_shapes(method, split):
    shape = FieldShape(get_method(method), split, PositionalEncoding.for_sizes(5, 48, 64), 1, 2)
    model = FieldModel(shape, [10, 6, 8], [0, 1, 2], seed=3)
    clone = FieldModel(shape, [10, 6, 8])
    for g in range(3):
        tensors = model.export_gop(g)
        assert [tuple(t.shape) for t in tensors] == shape.shapes(model.units[g])
        assert sum(t.numel() for t in tensors) == shape.param_count(model.units[g])
        clone.import_gop(g, tensors)
    t, y, x = torch.rand(3, 2), torch.rand(3, 5), torch.rand(3, 6)
    assert torch.equal(model(t, y, x), clone(t, y, x))
    assert model(t, y, x).shape == (3, 2, 5, 6, sum(get_method(method).network_outputs(split)))


def test_narrow_gops_are_masked_and_get_no_gradient():
    shape = FieldShape(get_method("nrff"), True, PositionalEncoding.for_sizes(5, 32, 32), 1, 2)
    model = FieldModel(shape, [8, 4], [0, 1], seed=0)
    t, y, x = torch.rand(2, 1), torch.rand(2, 4), torch.rand(2, 4)
    model(t, y, x).pow(2).sum().backward()
    net = model.nets[0]
    assert torch.all(net.w_in.grad[1, :, 4:] == 0)
    assert torch.all(net.w_hidden[0].grad[1, 4:, :] == 0) and torch.all(net.w_hidden[0].grad[1, :, 4:] == 0)
    assert torch.all(net.w_out.grad[1, 4:] == 0)
    assert net.w_in.grad[1, :, :4].abs().sum() > 0
    # a narrow GOP equals the same network built alone at its width
    alone = FieldModel(shape, [4])
    alone.import_gop(0, model.export_gop(1))
    assert torch.allclose(alone(t[1:], y[1:], x[1:]), model(t, y, x)[1:], atol=1e-6)


def test_initialisation_is_per_gop_and_independent_of_batch():
    shape = FieldShape(get_method("nrff"), True, PositionalEncoding.for_sizes(5, 32, 32), 1, 2)
    both = FieldModel(shape, [6, 6], [4, 5], seed=1)
    second = FieldModel(shape, [6], [5], seed=1)
    for a, b in zip(both.export_gop(1), second.export_gop(0)):
        assert torch.equal(a, b)
    other_seed = FieldModel(shape, [6], [5], seed=2)
    assert not torch.equal(second.export_gop(0)[0], other_seed.export_gop(0)[0])


def test_default_linear_and_siren_init_bounds():
    enc = PositionalEncoding.for_sizes(5, 64, 64)
    net = SwishField([16], enc, 8, generators=gop_generators(0, [0], 0))
    assert net.w_in.abs().max() <= 1 / math.sqrt(enc.size) + 1e-6
    assert net.w_hidden[0].abs().max() <= 1 / math.sqrt(16) + 1e-6
    siren = SirenField([32], generators=gop_generators(0, [0], 0))
    assert siren.w_in.abs().max() <= 1 / 3 + 1e-6
    assert siren.w_hidden[0].abs().max() <= math.sqrt(6 / 32) / 30 + 1e-6
    assert siren.w_hidden[0].abs().max() > 0.5 * math.sqrt(6 / 32) / 30


def test_width_budget():
    shape = FieldShape(get_method("nrff"), True, PositionalEncoding.for_sizes(5, 436, 1024), 1, 2)
    # paper example: a key frame of 10,000 bytes at ratio 0.25 -> about 1,250 fp16 parameters
    w = shape.units_for_bytes(0.25 * 10000)
    assert w % 2 == 0
    assert abs(shape.param_count(w) - 1250) < 0.25 * 1250
    for budget in (800, 3000, 12000, 50000):
        w = shape.units_for_bytes(budget)
        best = min(range(2, 400, 2), key=lambda v: abs(2 * shape.param_count(v) - budget))
        assert w == best
