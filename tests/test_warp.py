import torch

from nrff.warp import gather_sampler, multi_reference_roles, pixel_positions, resize_bicubic, sample_bicubic, sample_slots, slot_sampler


def _grid_points(h, w, dx=0.0, dy=0.0):
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack((xs + dx, ys + dy), -1).reshape(1, -1, 2)


def test_zero_flow_reproduces_the_image_and_integer_flow_shifts_it():
    img = torch.rand(1, 3, 12, 16)
    same = sample_bicubic(img, _grid_points(12, 16)).reshape(1, 3, 12, 16)
    assert torch.allclose(same, img, atol=1e-5)
    shifted = sample_bicubic(img, _grid_points(12, 16, dx=2, dy=1)).reshape(1, 3, 12, 16)
    assert torch.allclose(shifted[..., :-1, :-2], img[..., 1:, 2:], atol=1e-5)


def test_reflection_padding_outside_the_frame():
    img = torch.rand(1, 3, 8, 8)
    pts = torch.tensor([[[-1.0, 0.0], [8.0, 0.0]]])  # one pixel left of column 0, one right of column 7
    out = sample_bicubic(img, pts)
    assert torch.allclose(out[0, :, 0], img[0, :, 0, 1], atol=1e-5)
    assert torch.allclose(out[0, :, 1], img[0, :, 0, 6], atol=1e-5)


def test_resize_is_bicubic_on_a_denser_grid():
    img = torch.rand(1, 3, 10, 14)
    big = resize_bicubic(img, 19, 27)  # (n - 1) * 2 + 1: every other output pixel is an input pixel
    assert big.shape == (1, 3, 19, 27)
    assert torch.allclose(big[..., ::2, ::2], img, atol=1e-5)
    # in between: the cubic kernel, not bilinear
    lin = 0.5 * (img[..., :, :-1] + img[..., :, 1:])
    assert not torch.allclose(big[..., ::2, 1::2], lin, atol=1e-3)
    assert torch.equal(resize_bicubic(img, 10, 14), img)


def test_pixel_positions_map_corners_to_corners():
    coords = torch.tensor([-1.0, 0.0, 1.0])
    assert pixel_positions(coords, 101).tolist() == [0.0, 50.0, 100.0]


def test_slot_sampling_equals_sampling_each_image():
    images = torch.rand(4, 3, 9, 11)
    pts = torch.rand(5, 30, 2) * torch.tensor([10.0, 8.0])
    image_index = torch.tensor([0, 2, 2, 3, 0])
    slot_index = torch.tensor([0, 0, 1, 0, 1])
    pts.requires_grad_(True)
    out = sample_slots(images, image_index, slot_index, 2, pts)
    expected = torch.stack([sample_bicubic(images[i : i + 1], pts[q : q + 1].detach())[0] for q, i in enumerate(image_index.tolist())])
    assert torch.allclose(out, expected, atol=1e-6)
    out.sum().backward()
    assert pts.grad.abs().sum() > 0


def test_multi_reference_roles_pick_previous_own_and_next_keys():
    before = torch.tensor([[True, False], [False, True], [True, True]])
    images, slots, counts = multi_reference_roles(before, 2)
    assert images[0].tolist() == [[0, 2], [3, 1], [2, 2]]  # previous = g, next = g + 2
    assert images[1].tolist() == [[1, 1], [2, 2], [3, 3]]  # own key = g + 1
    # each (image, slot) pair belongs to one query only
    for role in range(2):
        pairs = list(zip(images[role].flatten().tolist(), slots[role].flatten().tolist()))
        assert len(set(pairs)) == len(pairs) and max(slots[role].flatten()) < counts[role]


def test_slot_and_gather_samplers_agree():
    keys = torch.rand(5, 3, 10, 12)
    before = torch.tensor([[True, False], [False, False], [True, True]])
    images, slots, counts = multi_reference_roles(before, 2)
    base_x = pixel_positions(torch.linspace(-1, 1, 6), 12)[None].expand(3, -1)
    base_y = pixel_positions(torch.linspace(-1, 1, 4), 10)[None].expand(3, -1)
    flow = torch.randn(3, 2, 4, 6, 2)
    a = slot_sampler(keys, base_x, base_y, images, slots, counts)
    b = gather_sampler(keys, base_x, base_y, images)
    for role in range(2):
        assert torch.allclose(a(role, flow), b(role, flow), atol=1e-6)
