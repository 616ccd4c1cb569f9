"""The method registry: each method owns its networks, reconstruction, fitting and rendering.

============  ==  =============================================================
method        id  what a GOP stores
============  ==  =============================================================
siren          0  a colour field (t, y, x) -> RGB (the paper's baseline)
nrff-single    1  flow + residual, warping recursively outward from the key frame
nrff           2  flows to two key frames, a mixing weight, a residual (the paper)
nerv           3  one NeRV network for the whole clip (a baseline)
============  ==  =============================================================

A new method is one subclass of :class:`~nrff.methods.base.Method` (or of
:class:`~nrff.methods.coordinate.CoordinateMethod` for a coordinate field)
passed to :func:`register` with a new, never reused id.
"""

from __future__ import annotations

from nrff.errors import BitstreamError, InputError
from nrff.methods.base import FieldShape, Method
from nrff.methods.coordinate import CoordinateMethod
from nrff.methods.nerv import NervMethod
from nrff.methods.nrff import Nrff
from nrff.methods.nrff_single import NrffSingle
from nrff.methods.siren import Siren

METHODS: dict[str, Method] = {}
_BY_ID: dict[int, Method] = {}


def register(method: Method) -> Method:
    """Add a method to the registry (its name and bitstream id must be new)."""
    if method.name in METHODS or method.id in _BY_ID:
        raise ValueError(f"method {method.name!r} (id {method.id}) is already registered")
    METHODS[method.name] = method
    _BY_ID[method.id] = method
    return method


for _method in (Siren(), NrffSingle(), Nrff(), NervMethod()):
    register(_method)


def get_method(name: str) -> Method:
    """The registered method called ``name`` (InputError for an unknown name)."""
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def method_by_id(method_id: int) -> Method:
    """The method a bitstream header names (BitstreamError for an unknown id)."""
    if method_id not in _BY_ID:
        raise BitstreamError(f"unknown method id {method_id}")
    return _BY_ID[method_id]


__all__ = ["CoordinateMethod", "FieldShape", "METHODS", "Method", "get_method", "method_by_id", "register"]
