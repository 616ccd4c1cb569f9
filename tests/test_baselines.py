"""x264 / x265 anchors: honest byte counts, closed GOPs, quality measured on the decoded bytes."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from av.video.frame import PictureType

from nrff import InputError
from nrff.eval.baselines import FrameList, crf_sweep, run_baseline
from nrff.codec.h26x import H26xSettings, decode_annexb, encode_frames
from nrff.codec.paramsets import nal_units
from nrff.eval.metrics import bpp
from nrff.video import open_video

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def idr_pictures(stream: bytes, codec: str) -> int:
    """Count IDR access units: IDR slices that are the first slice of their picture."""
    count = 0
    for unit in nal_units(stream):
        if codec == "x264":
            # nal_unit_type 5; first_mb_in_slice == 0 is ue(v) '1', the first payload bit
            count += (unit[0] & 0x1F) == 5 and bool(unit[1] & 0x80)
        else:
            # IDR_W_RADL / IDR_N_LP; first_slice_segment_in_pic_flag after the 2-byte header
            count += ((unit[0] >> 1) & 0x3F) in (19, 20) and bool(unit[2] & 0x80)
    return count


SEI_TYPES = {"x264": {6}, "x265": {39, 40}}


def nal_types(stream: bytes, codec: str) -> list[int]:
    if codec == "x264":
        return [unit[0] & 0x1F for unit in nal_units(stream)]
    return [(unit[0] >> 1) & 0x3F for unit in nal_units(stream)]


def nrff_cli() -> str:
    local = Path(sys.executable).with_name("nrff")
    return str(local) if local.exists() else shutil.which("nrff")


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NRFF_DEBUG")}
    env["NO_COLOR"] = "1"
    env["OMP_NUM_THREADS"] = "1"  # tiny clips; the runs share the CPU
    return subprocess.run([nrff_cli(), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_reported_bytes_are_the_stream(tiny_clip, tiny_frames):
    video = open_video(tiny_clip)
    settings = H26xSettings(codec="x264", crf=28, gop=5)
    result = run_baseline(video, settings)
    assert result.bytes > 0
    assert result.bytes == sum(result.packet_sizes)
    assert len(result.packet_sizes) >= 7  # one packet per picture at least (plus parameter sets)
    again = encode_frames(iter(tiny_frames), settings, 64, 48, video.info.fps)
    assert len(b"".join(again)) == result.bytes
    assert [len(p) for p in again] == result.packet_sizes
    assert (result.frames, result.width, result.height) == (7, 64, 48)
    assert result.bpp == pytest.approx(8 * result.bytes / (7 * 64 * 48), rel=1e-12)
    assert result.bpp == bpp(result.bytes, 7, 64, 48)
    assert len(result.psnr_per_frame) == 7
    assert result.psnr == pytest.approx(np.mean(result.psnr_per_frame), abs=1e-9)


def test_same_input_same_bytes(tiny_clip):
    settings = H26xSettings(codec="x264", crf=30, gop=5)
    a = run_baseline(open_video(tiny_clip), settings)
    b = run_baseline(open_video(tiny_clip), settings)
    assert a.packet_sizes == b.packet_sizes
    assert a.psnr == b.psnr


@pytest.mark.parametrize("codec", ["x264", "x265"])
@pytest.mark.parametrize("gop", [3, 5])
def test_closed_gop_has_an_idr_every_gop(sample_frames, codec, gop):
    frames = sample_frames  # 16 frames, 256x108: not a multiple of the GOP length
    settings = H26xSettings(codec=codec, crf=30, gop=gop, preset="veryfast" if codec == "x265" else "medium")
    stream = b"".join(encode_frames(iter(frames), settings, 256, 108))
    assert idr_pictures(stream, codec) == math.ceil(len(frames) / gop)
    assert not set(nal_types(stream, codec)) & SEI_TYPES[codec]  # info SEI removed
    decoded = list(decode_annexb(stream, codec))
    assert len(decoded) == len(frames)
    keys = [i for i, frame in enumerate(decoded) if frame.key_frame]
    assert keys == list(range(0, len(frames), gop))


def test_default_gop_has_a_single_idr(sample_frames):
    settings = H26xSettings(codec="x264", crf=30, gop=None)
    stream = b"".join(encode_frames(iter(sample_frames), settings, 256, 108))
    assert idr_pictures(stream, "x264") == 1


def test_bframes_off_changes_the_stream(sample_frames):
    on = H26xSettings(codec="x264", crf=28, gop=8, bframes=True)
    off = replace(on, bframes=False)
    with_b = b"".join(encode_frames(iter(sample_frames), on, 256, 108))
    without_b = b"".join(encode_frames(iter(sample_frames), off, 256, 108))
    assert with_b != without_b
    assert PictureType.B not in {PictureType(frame.pict_type) for frame in decode_annexb(without_b, "x264")}
    assert PictureType.B in {PictureType(frame.pict_type) for frame in decode_annexb(with_b, "x264")}


def test_x265_works(tiny_clip):
    result = run_baseline(open_video(tiny_clip), H26xSettings(codec="x265", crf=28, gop=5))
    assert (result.codec, result.frames) == ("x265", 7)
    assert result.bytes == sum(result.packet_sizes) > 0
    assert 28.0 < result.psnr < 60.0
    assert 0.7 < result.ssim <= 1.0
    assert result.ms_ssim is None  # 48 rows: too small for five scales
    assert result.report()["method"] == "x265"


def test_reported_psnr_equals_nrff_compare_of_the_reconstruction(tmp_path, tiny_clip):
    recon = tmp_path / "recon.mp4"
    report = tmp_path / "r.json"
    done = run_cli("baseline", tiny_clip, "--crf", "30", "-o", recon, "--report", report)
    assert done.returncode == 0, done.stderr
    reported = json.loads(report.read_text())
    compared = run_cli("compare", tiny_clip, recon, "--json")
    assert compared.returncode == 0, compared.stderr
    measured = json.loads(compared.stdout)
    assert measured["frames"] == reported["frames"] == 7
    assert abs(measured["psnr"] - reported["psnr"]) < 0.01
    assert abs(measured["ssim"] - reported["ssim"]) < 1e-4
    assert reported["psnr"] < 50.0  # CRF 30 is lossy: the comparison is not of identical videos

    # the written reconstruction is exactly what the decoder produced
    frames: list = []
    in_process = run_baseline(open_video(tiny_clip), H26xSettings(crf=30, gop=5), recon_writer=FrameList(frames))
    assert in_process.bytes == reported["bytes"]
    np.testing.assert_array_equal(np.stack(frames), open_video(recon).read_all())


def test_crf_sweep_is_sorted_by_rate(tiny_clip):
    results = crf_sweep(open_video(tiny_clip), H26xSettings(codec="x264", gop=5), [36, 18, 27])
    assert [r.crf for r in results] == [36.0, 27.0, 18.0]
    rates = [r.bpp for r in results]
    qualities = [r.psnr for r in results]
    assert rates == sorted(rates) and len(set(rates)) == 3
    assert qualities[0] < qualities[1] < qualities[2]
    assert all(r.bytes == sum(r.packet_sizes) for r in results)


def test_odd_sizes(tmp_path, tiny_frames, make_png_folder):
    folder = make_png_folder(tmp_path / "odd", tiny_frames[:3, :47, :63])
    video = open_video(folder)
    with pytest.raises(InputError, match="odd"):
        run_baseline(video, H26xSettings(pix_fmt="yuv420p"))
    result = run_baseline(video, H26xSettings(pix_fmt="yuv444p", crf=20))
    assert (result.width, result.height, result.frames) == (63, 47, 3)
    assert result.psnr > 30.0  # measured 33.4 dB


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (H26xSettings(codec="vp9"), "unknown codec"),
        (H26xSettings(preset="warp"), "unknown preset"),
        (H26xSettings(pix_fmt="nv12"), "pixel format"),
        (H26xSettings(crf=60), "CRF"),
        (H26xSettings(gop=0), "GOP"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(InputError, match=message):
        settings.validate(64, 48)

