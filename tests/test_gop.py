import pytest

from nrff.errors import InputError
from nrff.gop import gop_of_time, gops_from_lengths, neighbour_keys, single_reference, split_gops


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


def test_references():
    gops = split_gops(15, 5)
    assert neighbour_keys(gops, 0) == (0, 1)  # first GOP falls back to itself
    assert neighbour_keys(gops, 1) == (0, 2)
    assert neighbour_keys(gops, 2) == (1, 2)  # last GOP falls back to itself
    g = gops[0]  # key at local 2
    assert [single_reference(g, i) for i in (0, 1, 3, 4)] == [1, 2, 2, 3]
    with pytest.raises(ValueError):
        single_reference(g, 2)


def test_local_time_and_gop_of_time():
    gops = split_gops(10, 5)
    g = gops[0]
    assert g.local_time(0) == -1 and g.local_time(4) == 1 and g.local_time(2) == 0
    assert gop_of_time(gops, 4.5).index == 0  # in-between times belong to the earlier frame's GOP
    assert gop_of_time(gops, 5).index == 1
    assert split_gops(1, 5)[0].local_time(0) == 0
