"""The figures' look: one style, PDF beside PNG, curves told apart, shared axes, honest legends."""

from __future__ import annotations

import numpy as np
from PIL import Image

from nrff.eval.metrics import RDPoint
from nrff.eval.plots import curve_styles, plot_bits, plot_rd


def test_rd_curves_differ_in_colour_marker_and_line_and_come_as_pdf_too(tmp_path):
    methods = [f"m{i}" for i in range(9)]
    styles = curve_styles(methods)
    for a in range(4):  # neighbours differ in all three
        b = a + 1
        assert all(styles[methods[a]][k] != styles[methods[b]][k] for k in ("color", "marker", "linestyle"))
    curves = {m: [RDPoint(0.1 * (j + 1), 30 + j + i * 0.1, 0.9, "") for j in range(4)] for i, m in enumerate(methods)}
    fig = plot_rd(curves, "clip", tmp_path / "rd.png")
    assert (tmp_path / "rd.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "rd.pdf").read_bytes()[:5] == b"%PDF-"
    axes = fig.axes
    assert axes[0].get_xlabel() == "rate (bits per pixel)" and "dB" in axes[0].get_ylabel()
    assert len(fig.legends) == 1 and not axes[0].get_legend()  # one legend for both panels


def _bits(point, key, net):
    gops = [{"index": i, "keyframe_bytes": k, "network_bytes": n} for i, (k, n) in enumerate(zip(key, net))]
    return {"point": point, "bytes": sum(key) + sum(net), "bpp": 0.1, "gops": gops}


def test_bits_panels_share_the_y_axis_and_siren_has_no_key_frame_entry(tmp_path):
    fig = plot_bits([_bits(17, [900, 800], [100, 90]), _bits(32, [200, 150], [50, 40])], "t", tmp_path / "b.png")
    a, b = fig.axes[:2]
    assert a.get_ylim() == b.get_ylim()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["key frame", "networks"]
    fig = plot_bits([_bits(0.1, [0, 0], [300, 310])], "siren", tmp_path / "s.png")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["networks"]
    assert "0-based" in fig.axes[0].get_xlabel()


def test_side_by_side_uses_a_real_font():
    from nrff.eval.demo import _font, side_by_side

    font = _font(14)
    assert hasattr(font, "path") and font.path.lower().endswith(".ttf")
    frame = np.zeros((48, 64, 3), np.uint8)
    picture = side_by_side([("original\nframe 3 (0-based)", frame), ("nrff\n0.100 bpp, 30.00 dB", frame)])
    assert isinstance(picture, Image.Image) and picture.width == 2 * 128 + 8
