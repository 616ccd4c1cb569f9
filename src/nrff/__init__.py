"""nrff: Neural Residual Flow Fields, a neural video codec with a real bitstream."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from nrff.errors import BitstreamError, InputError, NrffError, NrffWarning, OutputExistsError

try:
    __version__ = version("nrff")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+src"

__all__ = [
    "BitstreamError",
    "InputError",
    "NrffError",
    "NrffWarning",
    "OutputExistsError",
    "__version__",
]
