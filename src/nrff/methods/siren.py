"""``siren``: the paper's colour-field baseline, (t, y, x) -> RGB per GOP, no key frames."""

from __future__ import annotations

from nrff.config import TrainConfig
from nrff.fields.mlp import SirenField
from nrff.methods.coordinate import CoordinateMethod

HIDDEN_LAYERS = 3


class Siren(CoordinateMethod):
    name, id, lr = "siren", 0, 1e-3
    uses_keyframes = False
    outputs = (3,)
    mixed_precision = False  # sin(30 x) needs fp32

    def stored_shapes(self, shape, units):
        out: list[tuple[int, ...]] = []
        for outputs in shape.network_outputs():
            out += SirenField.stored_shapes(units, outputs, HIDDEN_LAYERS)
        return out

    def macs_per_pixel(self, shape, units):
        return float(sum((3 + out) * units + HIDDEN_LAYERS * units * units for out in shape.network_outputs()))

    def build_networks(self, shape, units, generators=None, zero_output=False):
        return [SirenField(units, out, hidden_layers=HIDDEN_LAYERS, generators=generators[n] if generators else None)
                for n, out in enumerate(shape.network_outputs())]

    def decompose(self, raw, sample):
        return {"frame": 0.5 + 0.5 * raw.float()[..., 0:3]}

    def schedule(self, preset):
        if preset in ("paper", "default"):  # default: the published schedule
            return TrainConfig(epochs=5000)
        return TrainConfig(epochs=300, pixel_stride=4, log_every=25)
