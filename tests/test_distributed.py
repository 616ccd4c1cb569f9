"""Scale-out: torchrun ranks each train a shard of the GOPs; rank 0 writes the same bytes as one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import write_clip

NRFF = str(Path(sys.executable).with_name("nrff"))


@pytest.mark.slow
def test_two_gloo_ranks_write_the_bytes_of_a_single_process(tmp_path):
    clip = tmp_path / "clip"
    write_clip(clip, frames=16, size=(48, 32))  # 3 GOPs: rank 0 trains 1-2 of them, rank 1 the rest
    common = ["encode", str(clip), "--preset", "fast", "--epochs", "4", "--device", "cpu", "-q", "--seed", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([NRFF, *common, "-o", str(tmp_path / "single.nrff")], capture_output=True, text=True, env=env)
    assert single.returncode == 0, single.stderr
    ranks = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", NRFF, *common,
         "-o", str(tmp_path / "ranks.nrff"), "--report", str(tmp_path / "ranks.json")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert ranks.returncode == 0, ranks.stderr[-2000:]
    report = json.loads((tmp_path / "ranks.json").read_text())
    assert report["device"].endswith("x 2 ranks")  # rank 0 reports, and says it had company
    assert (tmp_path / "ranks.nrff").read_bytes() == (tmp_path / "single.nrff").read_bytes()


def test_shards_cover_every_gop_once():
    from nrff.encoder.distributed import Distributed
    from nrff.gop import split_gops

    for frames, world in ((16, 2), (50, 3), (7, 4), (100, 8)):
        gops = split_gops(frames, 5)
        shards = [Distributed(rank, world, rank).shard(gops) for rank in range(world)]
        assert [g.index for s in shards for g in s] == [g.index for g in gops]
