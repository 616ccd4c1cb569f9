"""The parts a coordinate-field frame is made of (flows, warped references, mixing weight,
residual), for figures and debugging."""

from __future__ import annotations

import math

import numpy as np
import torch

from nrff.decoder.keycache import KeyframeCache
from nrff.warp import resize_bicubic


def field_parts(video, method, frame: float) -> dict[str, np.ndarray]:
    """Each part ``[H, W, k]`` float32 at the video's output size; a key frame has only ``frame``."""
    gop = next(g for g in video.stream.gops() if g.start <= math.floor(frame) < g.stop)
    local = frame - gop.start
    keys = KeyframeCache(video.stream)
    if method.uses_keyframes and local == gop.key:
        key = torch.from_numpy(keys(gop.index)).permute(2, 0, 1)[None].float() / 255
        return {"frame": resize_bicubic(key, video.height, video.width)[0].permute(1, 2, 0).numpy()}
    from nrff.decoder.video import chunk_renderer

    renderer, _, chain = chunk_renderer(video, method, [gop], keys)
    times = torch.tensor([[float(local)]], device=video.device)
    parts = renderer.render_parts(times, video.height, video.width, chain=chain)
    return {name: value[0, 0].permute(1, 2, 0).cpu().numpy() for name, value in parts.items()}
