"""``nrff info``: what a file holds, section by section, without decoding anything."""

from __future__ import annotations

import os
from dataclasses import asdict

from nrff.decoder.stream import read_stream
from nrff.decoder.video import as_bytes
from nrff.eval.metrics import bpp


def info(source: bytes | str | os.PathLike) -> dict:
    """A description of a bitstream (bytes, or a path): header fields and its sections with their sizes."""
    data = as_bytes(source)
    stream = read_stream(data)
    h, bits, shape = stream.header, stream.container, stream.shape
    key_total = sum(len(b) for b in bits.keyframes.values()) + sum(len(d) for _, d in bits.segments.values())
    net_total = sum(len(b) for b in bits.weights.values())
    # a predicted key-frame stream (KSEG) covers several GOPs: its bytes count for the GOP it starts at
    key_of = {g: len(b) for g, b in bits.keyframes.items()}
    for g, (_, d) in bits.segments.items():
        key_of[g] = key_of.get(g, 0) + len(d)
    return {
        "version": stream.version,
        "bytes": len(data),
        "frames": h.frames,
        "width": h.width,
        "height": h.height,
        "fps": float(h.fps),
        "bpp": bpp(len(data), h.frames, h.width, h.height),
        "method": stream.method.name,
        "split": h.split,
        "gop_length": h.gop_length,
        "gops": len(h.gops),
        "hidden_layers": h.hidden_layers,
        "reuse": h.reuse,
        "encoding_frequencies": list(h.frequencies),
        "weight_format": stream.weight_codec.name,
        "quant_bits": h.quant_bits or None,
        "keyframe_codec": h.keyframe_codec,
        "keyframe_pix_fmt": h.keyframe_pix_fmt,
        "keyframe_crf": h.keyframe_crf if h.keyframe_codec else None,
        "keyframe_mode": "predicted" if bits.segments else ("intra" if h.has_keyframes else None),
        "keyframe_bytes": key_total,
        "network_bytes": net_total,
        "overhead_bytes": len(data) - key_total - net_total,
        "gop_table": [
            {"index": i, "frames": g.length, "key": g.key, "units": g.units, "params": shape.param_count(g.units),
             "keyframe_bytes": key_of.get(i, 0), "network_bytes": len(bits.weights.get(i, b""))}
            for i, g in enumerate(h.gops)
        ],
        "sections": [asdict(s) for s in stream.sections],
    }
