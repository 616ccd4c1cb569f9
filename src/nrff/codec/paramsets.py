"""The coded picture size of H.264 / HEVC parameter sets, read before FFmpeg sees the stream.

FFmpeg's ``max_pixels`` limit applies to the *cropped* picture size, but its decoders allocate
the *coded* size: an SPS may declare 8192x8192 pictures cropped to 64x48, which passes a
limit computed from the declared 64x48 frame and then costs 100 MB per picture. So every
sequence parameter set of untrusted key-frame bytes is parsed here (Annex-B start codes,
emulation-prevention bytes removed; H.264 7.3.2.1.1, HEVC 7.3.2.2) and a coded size larger than
the declared frame, rounded up to the codec's block size, is refused before decoding.
"""

from __future__ import annotations

from collections.abc import Iterator

from nrff.errors import BitstreamError

H264_SPS = (7, 15)  # sequence parameter set, subset SPS (SVC / MVC)
HEVC_SPS = 33
H264_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


class _Bits:
    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise BitstreamError(f"{self.what} sequence parameter set is truncated")
            value = (value << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise BitstreamError(f"{self.what} sequence parameter set holds an invalid Exp-Golomb number")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def nal_units(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex-B stream (without start codes, emulation prevention kept)."""
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    ends = [s - 3 for s in starts[1:]]
    for start, end in zip(starts, ends):
        yield data[start:end].rstrip(b"\x00")  # a zero before the next start code belongs to a 4-byte start code
    if starts:
        yield data[starts[-1]:]


def _rbsp(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(b: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + b.se() + 256) % 256
        last = nxt or last


def h264_coded_size(sps: bytes) -> tuple[int, int]:
    """(width, height) in luma samples of an H.264 SPS (after the NAL header byte), before cropping."""
    b = _Bits(sps, "H.264")
    profile = b.u(8)
    b.u(16)  # constraint flags, level
    b.ue()  # seq_parameter_set_id
    if profile in H264_HIGH_PROFILES:
        chroma = b.ue()
        if chroma == 3:
            b.u(1)
        b.ue(), b.ue(), b.u(1)  # bit depths, qpprime_y_zero_transform_bypass
        if b.u(1):  # seq_scaling_matrix_present
            for i in range(8 if chroma != 3 else 12):
                if b.u(1):
                    _skip_scaling_list(b, 16 if i < 6 else 64)
    b.ue()  # log2_max_frame_num_minus4
    poc = b.ue()
    if poc == 0:
        b.ue()
    elif poc == 1:
        b.u(1), b.se(), b.se()
        cycle = b.ue()
        if cycle > 255:
            raise BitstreamError("H.264 sequence parameter set is invalid")
        for _ in range(cycle):
            b.se()
    b.ue(), b.u(1)  # max_num_ref_frames, gaps_in_frame_num_allowed
    width_mbs, height_units = b.ue() + 1, b.ue() + 1
    frame_mbs_only = b.u(1)
    return 16 * width_mbs, 16 * height_units * (2 - frame_mbs_only)


def _skip_profile_tier_level(b: _Bits, max_sub_layers_minus1: int) -> None:
    b.u(8), b.u(32), b.u(4), b.u(32), b.u(11), b.u(1)  # general profile (88 bits)
    b.u(8)  # general_level_idc
    profile_present, level_present = [], []
    for _ in range(max_sub_layers_minus1):
        profile_present.append(b.u(1))
        level_present.append(b.u(1))
    if max_sub_layers_minus1 > 0:
        for _ in range(max_sub_layers_minus1, 8):
            b.u(2)
    for p, lv in zip(profile_present, level_present):
        if p:
            b.u(32), b.u(32), b.u(24)
        if lv:
            b.u(8)


def hevc_coded_size(sps: bytes) -> tuple[int, int]:
    """(width, height) in luma samples of an HEVC SPS (after the 2-byte NAL header), before cropping."""
    b = _Bits(sps, "HEVC")
    b.u(4)  # sps_video_parameter_set_id
    sub_layers = b.u(3)
    b.u(1)
    _skip_profile_tier_level(b, sub_layers)
    b.ue()  # sps_seq_parameter_set_id
    if b.ue() == 3:  # chroma_format_idc
        b.u(1)
    return b.ue(), b.ue()


def coded_sizes(data: bytes, codec: str) -> list[tuple[int, int]]:
    """The coded size of every sequence parameter set in Annex-B ``data`` (``codec``: x264 or x265)."""
    out = []
    for nal in nal_units(data):
        if not nal:
            continue
        if codec == "x264" and nal[0] & 0x1F in H264_SPS:
            out.append(h264_coded_size(_rbsp(nal[1:])))
        elif codec == "x265" and len(nal) > 2 and (nal[0] >> 1) & 0x3F == HEVC_SPS:
            out.append(hevc_coded_size(_rbsp(nal[2:])))
    return out


def check_coded_size(data: bytes, codec: str, width: int, height: int, what: str) -> None:
    """Refuse key-frame bytes whose parameter sets code pictures larger than ``width`` x ``height``
    (rounded up to 16 for H.264 macroblocks, 32 rows for field coding, 64 for HEVC coding blocks)."""
    if codec == "x264":
        align_w, align_h = 16, 32
    else:
        align_w = align_h = 64
    limit_w, limit_h = -(-width // align_w) * align_w, -(-height // align_h) * align_h
    for w, h in coded_sizes(data, codec):
        if w > limit_w or h > limit_h:
            raise BitstreamError(f"{what} codes {w}x{h} pictures (cropped for display) but the header declares "
                                 f"{width}x{height}")
