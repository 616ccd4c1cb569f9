"""nrff: Neural Residual Flow Fields, a neural video codec with a real bitstream.

    import nrff
    result = nrff.encode("clip.mp4", "clip.nrff", nrff.EncodeConfig.from_preset("fast"))
    for frame in nrff.decode("clip.nrff").frames(): ...
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from nrff.errors import BitstreamError, InputError, NrffError, NrffWarning, OutputExistsError

try:
    __version__ = version("nrff")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+src"

_API = ("encode", "decode", "info", "load", "EncodeConfig", "EncodeResult", "DecodedVideo", "DecodeBudget", "FieldConfig",
        "KeyframeConfig", "TrainConfig")


def __getattr__(name: str):
    """The API at top level, imported on first use (``import nrff`` stays light)."""
    if name in _API:
        from nrff import api

        return getattr(api, name)
    raise AttributeError(f"module 'nrff' has no attribute {name!r}")


__all__ = [
    "BitstreamError",
    "InputError",
    "NrffError",
    "NrffWarning",
    "OutputExistsError",
    "__version__",
    *_API,
]
