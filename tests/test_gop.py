import numpy as np
import pytest
import torch

from nrff.decoder.render import reference_stack
from nrff.errors import InputError
from nrff.gop import gops_from_lengths, split_gops, time_coords


def test_split_matches_published_rule():
    gops = split_gops(20, 5)
    assert [(g.start, g.length, g.key) for g in gops] == [(0, 5, 2), (5, 5, 2), (10, 5, 2), (15, 5, 2)]
    # balanced: 16 frames at T=5 are 5 + 6 + 5, key = middle frame (start + stop) // 2
    gops = split_gops(16, 5)
    assert [g.length for g in gops] == [5, 6, 5]
    assert [g.key_frame for g in gops] == [2, 8, 13]


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 7, 11, 50, 101])
@pytest.mark.parametrize("length", [1, 2, 5, 15])
def test_split_covers_every_frame_once(frames, length):
    gops = split_gops(frames, length)
    covered = [f for g in gops for f in range(g.start, g.stop)]
    assert covered == list(range(frames))
    for g in gops:
        assert 0 <= g.key < g.length
        assert g.key_frame == (g.start + g.stop) // 2
    assert gops_from_lengths([g.length for g in gops], [g.key for g in gops]) == gops


def test_split_rejects_bad_arguments():
    with pytest.raises(InputError):
        split_gops(10, 0)
    with pytest.raises(InputError):
        split_gops(0, 5)


def test_references_of_a_run_of_gops():
    """GOP g's previous, own and next key frames are images g, g+1, g+2; the clip's ends fall back to their own."""
    keys = {g: np.full((2, 3, 3), 10 * (g + 1), dtype=np.uint8) for g in range(4)}
    stack = reference_stack(keys, 0, 3, 4, "cpu")
    assert [round(float(v) * 255) for v in stack[:, 0, 0, 0]] == [10, 10, 20, 30, 40, 40]
    middle = reference_stack(keys, 1, 2, 4, "cpu")
    assert [round(float(v) * 255) for v in middle[:, 0, 0, 0]] == [10, 20, 30, 40]


def test_time_coordinates():
    t = time_coords(torch.tensor([[0.0, 2.0, 4.0, 4.5], [0.0, 0.0, 0.0, 0.0]]), torch.tensor([5, 1]))
    assert t[0].tolist() == [-1.0, 0.0, 1.0, 1.25]  # endpoints included; in-between times continue the line
    assert t[1].tolist() == [0.0] * 4  # a one-frame GOP sits at 0
