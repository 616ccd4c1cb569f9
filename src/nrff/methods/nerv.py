"""``nerv``: NeRV (Chen et al., NeurIPS 2021) as a baseline, one network for the whole clip.

The network (:mod:`nrff.fields.nerv`) maps a frame index to a frame; it samples
time only, so other output sizes are bicubic resizes of the native frames. Its
weights go into the same container as nrff's, as the one "GOP" of the file.
"""

from __future__ import annotations

import torch

from nrff.config import TrainConfig
from nrff.errors import BitstreamError, InputError
from nrff.fields.nerv import FREQUENCIES, Nerv, NervLayout, channels_for_bytes, frame_time
from nrff.methods.base import Method

MAX_FRAMES = 1000
MAX_CHANNELS = 512


class NervMethod(Method):
    name, id, lr = "nerv", 3, 5e-4
    uses_keyframes = False
    outputs = (3,)
    max_units = MAX_CHANNELS

    def stored_shapes(self, shape, units):
        return NervLayout(shape.frame_height, shape.frame_width, units).shapes()

    def macs_per_pixel(self, shape, units):
        """The convolutions dominate: block i runs at 1/4^(blocks - i) of the output pixels."""
        layout = NervLayout(shape.frame_height, shape.frame_width, units)
        h0, w0 = layout.start
        ch = layout.block_channels()
        per_frame = layout.stem * 2 * FREQUENCIES + ch[0] * h0 * w0 * layout.stem
        for i in range(layout.blocks):
            per_frame += h0 * w0 * 4**i * 9 * ch[i] * 4 * ch[i + 1]
        per_frame += h0 * w0 * 4**layout.blocks * 3 * ch[-1]
        return per_frame / (shape.frame_height * shape.frame_width)

    def frame_render_bytes(self, shape, units, out_width, out_height):
        """NeRV renders whole frames: the largest block output (before and after its pixel shuffle)."""
        layout = NervLayout(shape.frame_height, shape.frame_width, units)
        h0, w0 = layout.start
        ch = layout.block_channels()
        peak = max((2 * 4 * ch[i + 1] * h0 * w0 * 4**i * 4 for i in range(layout.blocks)), default=0)
        return float(peak + 3 * 4 * (shape.frame_height * shape.frame_width + out_width * out_height))

    def schedule(self, preset):
        """The NRFF paper ran NeRV for 1,500 epochs."""
        return TrainConfig(epochs=1500 if preset in ("paper", "default") else 150, warmup=0.2, log_every=25)

    def gop_length(self, requested, frames):
        if frames > MAX_FRAMES:
            raise InputError(f"nerv holds one network per clip, for at most {MAX_FRAMES} frames; use --frames")
        return frames

    def plan_units(self, inputs):
        budget = inputs.target_bytes
        smallest = inputs.size_of(4)
        if budget < smallest:
            raise InputError(f"--target-bpp {inputs.target_bpp:g} leaves no room for the smallest NeRV ({smallest} bytes)")
        shape = inputs.shape
        return [channels_for_bytes(shape.frame_height, shape.frame_width, budget, lambda layout: inputs.size_of(layout.channels))]

    def check_header(self, header):
        super().check_header(header)
        if len(header.gops) != 1:
            raise BitstreamError("a NeRV file holds one network for the whole clip")

    def fit(self, job):
        from nrff.encoder.fit.nerv import fit_nerv

        return fit_nerv(job)

    def _model(self, video) -> Nerv:
        h = video.header
        model = Nerv(NervLayout(h.height, h.width, h.gops[0].units)).to(video.device)
        model.load(video.stream.gop_weights(0))
        return model.eval()

    @torch.no_grad()
    def render(self, video):
        from nrff.decoder.render import frame_times, to_uint8
        from nrff.warp import resize_bicubic

        h = video.header
        model = self._model(video)
        times = list(frame_times(h.frames, video.fps_factor))
        batch = max(1, int(128 * 1024**2 // (h.width * h.height * 3 * 4 * 8)))
        for i in range(0, len(times), batch):
            t = torch.tensor([frame_time(tau, h.frames) for tau in times[i : i + batch]], device=video.device)
            with torch.autocast(video.device.type, dtype=video.half or torch.float32, enabled=video.half is not None):
                rendered = model(t).float()
            yield from to_uint8(resize_bicubic(rendered, video.height, video.width)).cpu().numpy()

    @torch.no_grad()
    def frame_parts(self, video, frame):
        from nrff.warp import resize_bicubic

        model = self._model(video)
        t = torch.tensor([frame_time(frame, video.header.frames)], device=video.device)
        out = resize_bicubic(model(t), video.height, video.width)
        return {"frame": out[0].permute(1, 2, 0).cpu().numpy()}
