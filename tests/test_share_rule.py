"""The share rule of the default and fast presets: more bytes to the networks on fast-moving clips."""

from __future__ import annotations

import numpy as np

from nrff.config import EncodeConfig
from nrff.encoder.plan import HARD_MOTION_SHARE, measured_share
from nrff.gop import split_gops
from nrff.methods import get_method
from nrff.video.reader import open_video


def _clip(shift: int, frames: int = 10) -> np.ndarray:
    """A textured picture panned by ``shift`` pixels per frame."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 64 + shift * frames, 3), dtype=np.uint8)
    base = ((base.astype(np.float32) + np.roll(base, 1, 1) + np.roll(base, 1, 0)) / 3).astype(np.uint8)  # some smoothness
    return np.stack([base[:, i * shift : i * shift + 64] for i in range(frames)])


def _share(config: EncodeConfig, clip: np.ndarray) -> tuple[float, object]:
    video = open_video(clip)
    chosen, difficulty = measured_share(config, get_method(config.field.method), video, split_gops(len(clip), 5))
    return chosen.field.ratio, difficulty


def test_fast_motion_gets_the_larger_share_and_a_still_clip_keeps_the_default():
    config = EncodeConfig.from_preset("default")
    assert config.field.share_rule == "motion" and config.field.ratio == 0.25
    assert _share(config, _clip(6)) == (HARD_MOTION_SHARE, None)  # a fast pan: frames far from their key frame
    assert _share(config, _clip(0))[0] == 0.25  # a still picture
    assert EncodeConfig.from_preset("fast").field.share_rule == "motion"


def test_a_share_asked_for_is_used_and_the_paper_preset_has_no_rule():
    assert EncodeConfig.from_preset("default", ratio=0.3).field.share_rule == "fixed"
    assert _share(EncodeConfig.from_preset("default", ratio=0.3), _clip(6))[0] == 0.3
    assert _share(EncodeConfig.from_preset("paper"), _clip(6))[0] == 0.25
    explicit = EncodeConfig.from_preset("default", ratio=0.1, share_rule="motion")  # both given: the rule applies
    assert _share(explicit, _clip(6))[0] == HARD_MOTION_SHARE


def test_the_difficulty_probe_still_comes_back_for_ratio_mode_probe():
    ratio, difficulty = _share(EncodeConfig.from_preset("default", ratio_mode="probe"), _clip(6))
    assert ratio == HARD_MOTION_SHARE and set(difficulty) == {0, 1}
