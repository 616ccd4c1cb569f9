import struct
import zlib
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from nrff.codec.container import MAGIC, Bitstream, GopEntry, Header, read_container
from nrff.codec.container import section as _section
from nrff.codec.keyframes import KeyframeSettings, keyframe_codec
from nrff.codec.weights import pack_fp16, unpack_fp16
from nrff.decoder.stream import read_stream
from nrff.errors import BitstreamError
from nrff.fields.encoding import PositionalEncoding
from nrff.fields.models import FieldModel
from nrff.gop import split_gops
from nrff.methods import FieldShape, get_method


def read_bitstream(data: bytes):
    """The container and the decoder's checks of what it holds."""
    stream = read_stream(data)
    return stream.container, stream.sections


@pytest.fixture(scope="module")
def stream():
    width, height, frames = 32, 16, 7
    gops = split_gops(frames, 3)  # 3 + 4 frames
    enc = PositionalEncoding.for_sizes(3, height, width)
    shape = FieldShape(get_method("nrff"), True, enc, 1, 2)
    widths = [4, 6]
    header = Header(frames, width, height, Fraction(24), 2, True, 3, 1, 2, enc.counts, 0, "x264", "yuv444p", 20.0,
                    tuple(GopEntry(g.length, g.key, w) for g, w in zip(gops, widths)))
    model = FieldModel(shape, widths, [0, 1], seed=0)
    rng = np.random.default_rng(0)
    kf, settings = keyframe_codec("x264"), KeyframeSettings(crf=30)
    keys = {g.index: kf.encode_intra(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), settings) for g in gops}
    weights = {i: pack_fp16(model.export_gop(i)) for i in range(2)}
    return Bitstream(header, keys, weights), shape


def _sections(data: bytes):
    pos, out = 5, []
    while pos < len(data):
        tag, length = struct.unpack_from("<4sI", data, pos)
        out.append((tag, data[pos + 8 : pos + 8 + length], pos))
        pos += 12 + length
    return out


def _rebuild(sections, version=2) -> bytes:
    return MAGIC + bytes([version]) + b"".join(_section(tag, payload) for tag, payload in sections)


def test_round_trip_and_sizes(stream):
    bs, shape = stream
    data = bs.to_bytes()
    parsed, infos = read_bitstream(data)
    assert parsed.header == bs.header
    assert parsed.keyframes == bs.keyframes and parsed.weights == bs.weights
    # the file is exactly magic + version + its sections
    assert 5 + sum(s.size for s in infos) == len(data)
    assert [s.tag for s in infos] == ["HEAD", "KEYF", "NETW", "KEYF", "NETW", "END "]
    tensors = unpack_fp16(parsed.weights[1], shape.shapes(6))
    assert [tuple(t.shape) for t in tensors] == shape.shapes(6)


def test_weights_are_fp16_of_the_model(stream):
    bs, shape = stream
    raw = np.frombuffer(bs.weights[0], dtype="<f2")
    assert raw.size == shape.param_count(4)
    assert len(bs.weights[0]) == 2 * shape.param_count(4)


@pytest.mark.parametrize("data,needle", [
    (b"", "too short"),
    (b"NRFX\x01" + b"\x00" * 20, "bad magic"),
    (b"NRFF\x09" + b"\x00" * 20, "unsupported bitstream version 9"),
])
def test_bad_preamble(data, needle):
    with pytest.raises(BitstreamError, match=needle):
        read_bitstream(data)


def test_every_truncation_is_detected(stream):
    data = stream[0].to_bytes()
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            read_bitstream(data[:cut])


def test_trailing_garbage_and_bit_flips(stream):
    data = stream[0].to_bytes()
    with pytest.raises(BitstreamError):
        read_bitstream(data + b"\x00")
    with pytest.raises(BitstreamError, match="after the END"):
        read_bitstream(data + _section(b"KEYF", b"\x00" * 8))
    for pos in range(5, len(data), 7):
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        with pytest.raises(BitstreamError):
            read_bitstream(bytes(flipped))


def _with_header(stream, **changes) -> bytes:
    bs, _ = stream
    header = replace(bs.header, **changes)
    sections = [(t, p) for t, p, _ in _sections(bs.to_bytes())]
    sections[0] = (b"HEAD", header.pack())
    return _rebuild(sections)


def test_absurd_dimensions_are_refused_before_allocation(stream):
    with pytest.raises(BitstreamError, match="100000x100000"):
        read_bitstream(_with_header(stream, width=100000, height=100000))
    with pytest.raises(BitstreamError, match="frame count"):
        read_bitstream(_with_header(stream, frames=0))


def test_inconsistent_headers(stream):
    bs, _ = stream
    with pytest.raises(BitstreamError, match="add up"):
        read_bitstream(_with_header(stream, frames=8))
    with pytest.raises(BitstreamError, match="key frame 9"):
        read_bitstream(_with_header(stream, gops=(GopEntry(3, 9, 4), GopEntry(4, 2, 6))))
    with pytest.raises(BitstreamError, match="width 6 needs"):
        read_bitstream(_with_header(stream, gops=(GopEntry(3, 1, 6), GopEntry(4, 2, 6))))
    with pytest.raises(BitstreamError, match="frequencies"):
        read_bitstream(_with_header(stream, frequencies=(1, 1, 1)))
    with pytest.raises(BitstreamError, match="unknown method id 9"):
        read_bitstream(_with_header(stream, method_id=9))
    with pytest.raises(BitstreamError, match="no key frames but the header names"):
        read_bitstream(_with_header(stream, method_id=0, split=False))


def test_the_container_alone_knows_no_methods(stream):
    """The container checks structure only; what the ids mean is the decoder's business."""
    data = _with_header(stream, method_id=9)
    container, _ = read_container(data)
    assert container.header.method_id == 9


def test_structural_defects(stream):
    bs, _ = stream
    sections = [(t, p) for t, p, _ in _sections(bs.to_bytes())]
    with pytest.raises(BitstreamError, match="duplicate"):
        read_bitstream(_rebuild(sections[:2] + sections[1:]))
    with pytest.raises(BitstreamError, match="END"):
        read_bitstream(_rebuild(sections[:-1]))
    with pytest.raises(BitstreamError, match="unknown section"):
        read_bitstream(_rebuild(sections[:1] + [(b"ZZZZ", b"")] + sections[1:]))
    with pytest.raises(BitstreamError, match="no key frame"):
        read_bitstream(_rebuild([s for s in sections if s[0] != b"KEYF"]))
    with pytest.raises(BitstreamError, match="expected HEAD"):
        read_bitstream(_rebuild(sections[1:]))
    with pytest.raises(BitstreamError, match="GOP 7"):
        read_bitstream(_rebuild(sections[:1] + [(b"KEYF", struct.pack("<I", 7) + b"x")] + sections[1:]))
    nan_weights = struct.pack("<I", 0) + np.full(len(bs.weights[0]) // 2, np.nan, dtype="<f2").tobytes()
    broken = [(t, nan_weights if (t == b"NETW" and struct.unpack_from("<I", p)[0] == 0) else p) for t, p in sections]
    from nrff.api import decode

    with pytest.raises(BitstreamError, match="non-finite"):
        list(decode(_rebuild(broken), device="cpu").frames())


def test_crc_covers_tag_and_length(stream):
    data = bytearray(stream[0].to_bytes())
    # rename the first KEYF to NETW without fixing the CRC
    pos = data.index(b"KEYF")
    data[pos : pos + 4] = b"NETW"
    with pytest.raises(BitstreamError, match="checksum"):
        read_bitstream(bytes(data))
    assert zlib.crc32(b"") == 0


def test_version_1_files_still_decode():
    """Files written by the v1 encoder (commit b1e00cb) decode to the PSNR that encoder reported."""
    import json
    from pathlib import Path

    from nrff.api import decode
    from nrff.eval.metrics import psnr
    from nrff.video import open_video

    data_dir = Path(__file__).parent / "data"
    expected = json.loads((data_dir / "v1_expected.json").read_text())
    reference = open_video(data_dir / "v1_clip").read_all()
    for name in ("v1_nrff.nrff", "v1_siren.nrff"):
        data = (data_dir / name).read_bytes()
        assert data[4] == 1
        frames = list(decode(data, device="cpu").frames())
        assert np.mean([psnr(a, b) for a, b in zip(reference, frames)]) == pytest.approx(expected[name], abs=0.01)
