"""The layout keeps its promises: bytes-only codec layer, registries instead of ifs, small modules,
one way to build a config."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import nrff
from nrff.config import EncodeConfig, TrainConfig
from nrff.errors import BitstreamError, InputError
from nrff.methods import METHODS, Method, get_method, method_by_id, register

SRC = Path(nrff.__file__).parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_the_codec_layer_knows_bytes_only():
    for path in (SRC / "codec").glob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(("nrff.fields", "nrff.methods", "nrff.encoder", "nrff.decoder"))}
        assert not bad, f"{path.name} imports {bad}"


def test_modules_and_functions_stay_small():
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert text.count("\n") <= 450, f"{path.relative_to(SRC)} has {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 80, f"{path.relative_to(SRC)}:{node.lineno} {node.name} has {length} lines"


def test_no_method_is_recognised_by_its_name_outside_the_registry():
    pattern = re.compile(r"""(==|!=)\s*["'](nrff|nrff-single|siren|nerv)["']""")
    for path in SRC.rglob("*.py"):
        if path.parent.name == "methods":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not pattern.search(line), f"{path.relative_to(SRC)}:{number}: {line.strip()}"


def test_registry_names_and_ids():
    for name, method in METHODS.items():
        assert get_method(name) is method and method_by_id(method.id) is method
    assert len({m.id for m in METHODS.values()}) == len(METHODS)
    with pytest.raises(ValueError, match="already registered"):
        register(METHODS["nrff"])
    with pytest.raises(InputError, match="unknown method"):
        get_method("vp9")
    with pytest.raises(BitstreamError, match="unknown method id"):
        method_by_id(200)
    assert all(isinstance(m, Method) for m in METHODS.values())


def test_a_preset_name_applies_the_preset():
    assert EncodeConfig(preset="fast").train == get_method("nrff").schedule("fast")
    default = EncodeConfig()
    assert default.preset == "default" and default == EncodeConfig.from_preset("default")
    assert (default.keyframes.codec, default.keyframes.preset, default.field.quant_bits) == ("av1", "2", 8)
    assert (default.train.epochs, default.train.pixel_stride) == (800, 16)
    paper = EncodeConfig(preset="paper")  # exactly the published configuration
    assert (paper.keyframes.codec, paper.keyframes.pix_fmt, paper.keyframes.crf) == ("x264", "yuv444p", 20)
    assert (paper.field.quant_bits, paper.field.ratio, paper.train.epochs, paper.train.pixel_stride) == (None, 0.25, 5000, 8)
    assert paper == EncodeConfig.from_preset("paper")
    # a key-frame codec other than the preset's drops the preset's codec-specific settings
    x265 = EncodeConfig.from_preset("default", keyframe_codec="x265")
    assert (x265.keyframes.preset, x265.keyframes.pix_fmt, x265.field.quant_bits) == ("medium", "yuv444p", 8)
    assert EncodeConfig.from_preset("default", quant_bits=0).field.quant_bits is None  # 0: fp16
    assert EncodeConfig(preset="fast", field=EncodeConfig().field, train=TrainConfig(epochs=3)).train.epochs == 3
    config = EncodeConfig.from_preset("fast", method="nrff-single", epochs=7, crf=24, quant_bits=8, keyframe_codec="x265")
    assert (config.train.epochs, config.train.batch_frames) == (7, 64)  # the method's fast schedule, epochs overridden
    assert (config.keyframes.crf, config.keyframes.codec, config.field.quant_bits) == (24, "x265", 8)
    assert EncodeConfig.from_preset("paper", epochs=None).train.epochs == 5000  # None: not given
    with pytest.raises(InputError, match="unknown encode option 'colour'"):
        EncodeConfig.from_preset("fast", colour=1)
    with pytest.raises(InputError, match="unknown preset"):
        EncodeConfig(preset="slowest")
