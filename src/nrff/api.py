"""The public Python API: ``encode``, ``decode``, ``info`` (also at ``nrff.`` top level).

    import nrff
    config = nrff.EncodeConfig.from_preset("fast", crf=22)
    result = nrff.encode("clip.mp4", "clip.nrff", config)      # an EncodeResult
    video = nrff.decode("clip.nrff", scale=2)                   # path or bytes
    for frame in video.frames(): ...                            # uint8 [H, W, 3]
    nrff.info("clip.nrff")                                      # header and sections

The work is done by the pipeline modules: :mod:`nrff.encoder.pipeline`,
:mod:`nrff.decoder.video`, :mod:`nrff.decoder.describe`.
"""

from __future__ import annotations

from nrff.config import EncodeConfig, FieldConfig, KeyframeConfig, TrainConfig
from nrff.decoder.budget import DecodeBudget
from nrff.decoder.describe import info
from nrff.decoder.video import DecodedVideo, decode, load
from nrff.encoder.pipeline import encode
from nrff.encoder.result import EncodeResult
from nrff.errors import BitstreamError, InputError, NrffError

__all__ = [
    "BitstreamError", "DecodeBudget", "DecodedVideo", "EncodeConfig", "EncodeResult", "FieldConfig", "InputError", "KeyframeConfig",
    "NrffError", "TrainConfig", "decode", "encode", "info", "load",
]
