"""Structure-aware fuzzing of the decoder: valid files, hostile values, every CRC valid.

A random-mutation fuzzer rarely produces a file that passes every check and still asks for
something absurd; this one starts from the real files of the ``tools/fuzz.py`` corpus and sets
hostile values into each header field, GOP-table entry and section count, re-sizing what must
follow (weights of the declared shapes, frequencies of the declared size) so that the deeper
checks and the renderer run, then re-frames every section with a valid CRC. Mutators:

* ``head_field``: one header field set to a hostile value (0, 1, limits and limits + 1, the
  field's maximum, values the encoder never writes);
* ``net_shape``: network width, hidden layers or reuse set to a hostile value *with valid weights*
  of the new shape (zeros; fp16, or entropy-coded for widths up to 512);
* ``frame_size``: a consistent header declaring another frame size or frame count;
* ``section_count``: a ``KSEG`` first-GOP / count field, or a ``KEYF`` / ``NETW`` GOP index;
* ``keyframe_coded``: key frames coded larger than the declared frame (cropped), or a stream of
  too many / too few pictures;
* ``entropy_random``: entropy-coded weights whose ANS words are random bytes.

Each case runs ``nrff.api.info`` and ``nrff.api.decode`` and renders every frame (at most
``--frames`` frames of a file declaring more than 1 M frame-pixels); it must end in a decoded
video or ``BitstreamError`` within ``--case-limit`` seconds and ``--memory-limit`` MiB of RSS rise.

    python benchmarks/fuzz_structured.py --cases 2000 --seed 1 --json fuzz_structured.json

prints cases/s, outcomes by mutator, the slowest case, the largest RSS rise and the peak RSS;
exit status 1 when a case failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


fuzz = _load("nrff_tools_fuzz", ROOT / "tools" / "fuzz.py")
hostile = _load("hostile", ROOT / "tests" / "hostile.py")

HOSTILE = {"B": (0, 1, 2, 3, 4, 5, 8, 9, 16, 17, 0x7F, 0x80, 0xFF), "H": (0, 1, 2, 1000, 1001, 1024, 1025, 4096, 4097, 0x8000, 0xFFFF),
           "I": (0, 1, 2, 1000, 1001, 4096, 16384, 16385, 10**6, 10**7, 10**7 + 1, 2**31, 2**32 - 1)}
WIDTHS = (0, 1, 2, 511, 512, 1023, 1024, 1025, 2048, 4096, 4097)
DEPTHS = (0, 1, 4, 5, 8, 9, 255)


class _Sections(list):
    """A file's sections, remembering its preamble (magic and version byte)."""

    preamble: bytes


def _sections(data: bytes):
    sections = _Sections(fuzz.split_sections(data))
    sections.preamble = data[:5]
    values, gops = fuzz.unpack_head(sections[0][1])
    return sections, values, gops


def _with(sections, values, gops, payloads: dict[int, bytes] | None = None) -> bytes:
    out = [(b"HEAD", fuzz.pack_head(values, gops))] + list(sections[1:])
    for i, p in (payloads or {}).items():
        out[i] = (out[i][0], p)
    return fuzz.assemble(out, sections.preamble)


def head_field(data, rng):
    sections, values, gops = _sections(data)
    fields = [(None, n, f) for n, f in fuzz.HEAD_FIELDS] + [(g, n, f) for g in range(len(gops)) for n, f in fuzz.GOP_FIELDS]
    gop, field, fmt = rng.choice(fields)
    (values if gop is None else gops[gop])[field] = rng.choice(HOSTILE[fmt])
    return _with(sections, values, gops)


def _reweigh(sections, values, gops, units: int | None = None, hidden: int | None = None, reuse: int | None = None):
    """NETW payloads rebuilt (zeros) for a new width / depth, so the file stays valid."""
    from nrff.methods import method_by_id

    method = method_by_id(values["method"])
    if hidden is not None:
        values["hidden_layers"] = hidden
    if reuse is not None:
        values["reuse"] = reuse
    quant = values["quant_bits"] if values["weight_format"] == 1 else None
    if units is not None:
        if quant is not None and units > 512:
            quant, values["weight_format"], values["quant_bits"] = None, 0, 0  # entropy-coding 4 M zeros is slow
        for g in gops:
            if g["width"]:
                g["width"] = units
    payloads = {}
    for i, (tag, payload) in enumerate(sections):
        if tag == b"NETW":
            g = int.from_bytes(payload[:4], "little")
            if g < len(gops) and gops[g]["width"]:
                if _params(method, values, gops[g]["width"]) > 8_000_000:  # not built: its size is refused instead
                    continue
                w = hostile.weights(method.name, gops[g]["width"], bool(values["flags"] & 1), max(values["hidden_layers"], 1),
                                    values["reuse"], values["gop_length"], values["height"], values["width"], quant)
                payloads[i] = payload[:4] + w
    return payloads


def _params(method, values, units: int) -> int:
    from nrff.fields.encoding import PositionalEncoding
    from nrff.methods.base import FieldShape

    shape = FieldShape(method, bool(values["flags"] & 1), PositionalEncoding((values["freq_t"], values["freq_y"], values["freq_x"])),
                       max(values["hidden_layers"], 1), values["reuse"], max(values["height"], 1), max(values["width"], 1))
    return shape.param_count(units)


def net_shape(data, rng):
    sections, values, gops = _sections(data)
    if not any(g["width"] for g in gops):
        return head_field(data, rng)
    what = rng.choice(("units", "hidden", "reuse", "units+reuse"))
    kwargs = {}
    if "units" in what:
        kwargs["units"] = rng.choice([w for w in WIDTHS if w])
    if what in ("hidden",):
        kwargs["hidden"] = rng.choice([d for d in DEPTHS if 1 <= d <= 8])
    if "reuse" in what:
        kwargs["reuse"] = rng.choice(DEPTHS)
    payloads = _reweigh(sections, values, gops, **kwargs)
    return _with(sections, values, gops, payloads)


SIZES = ((64, 48), (1920, 1080), (4096, 4096), (16384, 4096), (8192, 8192), (1, 1))
LIGHT_SIZES = ((64, 48), (1920, 1080), (1, 1))  # the brief CI run: frames of at most 2 MP


def frame_size(data, rng):
    sections, values, gops = _sections(data)
    if rng.random() < 0.5:
        w, h = rng.choice(LIGHT_SIZES if getattr(rng, "light", False) else SIZES)
        values.update(width=w, height=h, freq_x=fuzz.freq(w), freq_y=fuzz.freq(h))
    else:
        scale = rng.choice((10, 100, 1000))
        for g in gops:
            g["length"] = min(g["length"] * scale, 1000)
            g["key"] = min(g["key"], g["length"] - 1)
        values["frames"] = sum(g["length"] for g in gops)
        values["gop_length"] = min(values["gop_length"] * scale, 1000)
        values["freq_t"] = fuzz.freq(values["gop_length"])
    payloads = _reweigh(sections, values, gops)
    return _with(sections, values, gops, payloads)


def section_count(data, rng):
    sections, values, gops = _sections(data)
    candidates = [i for i, (t, _) in enumerate(sections) if t in (b"KSEG", b"KEYF", b"NETW")]
    i = rng.choice(candidates)
    tag, payload = sections[i]
    offset = 4 * rng.choice((0, 1)) if tag == b"KSEG" else 0
    value = rng.choice(HOSTILE["I"] + (len(gops) - 1, len(gops), len(gops) + 1))
    payload = payload[:offset] + int(value % 2**32).to_bytes(4, "little") + payload[offset + 4 :]
    return _with(sections, values, gops, {i: payload})


def keyframe_coded(data, rng):
    sections, values, gops = _sections(data)
    kind = values["keyframe_codec"]
    index = [i for i, (t, _) in enumerate(sections) if t in (b"KEYF", b"KSEG")]
    if not index or kind != 1:  # x264 only: the others are covered by their own codec's checks
        return net_shape(data, rng)
    i = rng.choice(index)
    tag, payload = sections[i]
    head = payload[:8] if tag == b"KSEG" else payload[:4]
    w, h = values["width"], values["height"]
    if rng.random() < 0.5 and w % 2 == 0 and h % 2 == 0:
        coded = rng.choice(((1024, 1024), (2048, 256), (w + 16, h), (w, h + 32)))
        body = hostile.black_stream(w, h, 1, crop_from=(max(coded[0], w), max(coded[1], h)))
    else:
        count = int.from_bytes(payload[4:8], "little") if tag == b"KSEG" else 1
        body = hostile.black_stream(w + w % 2, h + h % 2, max(1, count + rng.choice((-1, 1, 50))), pix_fmt="yuv444p")
    return _with(sections, values, gops, {i: head + body})


def entropy_random(data, rng):
    sections, values, gops = _sections(data)
    if values["weight_format"] != 1:
        return net_shape(data, rng)
    from nrff.codec.weights import quantized_side_bytes
    from nrff.fields.encoding import PositionalEncoding
    from nrff.methods import method_by_id
    from nrff.methods.base import FieldShape

    method = method_by_id(values["method"])
    shape = FieldShape(method, bool(values["flags"] & 1), PositionalEncoding((values["freq_t"], values["freq_y"], values["freq_x"])),
                       values["hidden_layers"], values["reuse"], values["height"], values["width"])
    payloads = {}
    for i, (tag, payload) in enumerate(sections):
        if tag == b"NETW":
            g = int.from_bytes(payload[:4], "little")
            shapes = shape.shapes(gops[g]["width"])
            words = rng.choice((1, 16, 256, 4096))
            scale = rng.choice((0.5, 1.0, 30.0))
            side_info = b"".join(np.array([1.0], "<f2").tobytes() if int(np.prod(s)) == 1 else np.array([1.0, scale], "<f2").tobytes()
                                 for s in shapes)
            assert len(side_info) == quantized_side_bytes(shapes)
            payloads[i] = payload[:4] + side_info + rng.randbytes(4 * words)
    return _with(sections, values, gops, payloads)


MUTATORS = {f.__name__: f for f in (head_field, net_shape, frame_size, section_count, keyframe_coded, entropy_random)}


@dataclass
class Result:
    file: str
    mutator: str
    kind: str
    message: str
    seconds: float
    rise_mib: float
    frames: int


def run_case(data: bytes, max_frames: int) -> tuple[str, str, int]:
    """(kind, message, frames rendered): "decoded", "BitstreamError" or "other"."""
    from nrff.api import decode, info
    from nrff.errors import BitstreamError

    frames = 0
    try:
        try:
            info(data)
        except BitstreamError:
            pass
        video = decode(data, device="cpu")
        h = video.header
        limit = video.count if h.frames * h.width * h.height <= fuzz.RENDER_LIMIT else max_frames
        for frame in video.frames():
            if frame.shape != (video.height, video.width, 3):
                raise AssertionError(f"frame {frames} is {frame.shape}")
            frames += 1
            if frames >= limit:
                break
        if limit == video.count and frames != video.count:
            raise AssertionError(f"decoded {frames} frames, the header declares {video.count}")
        return "decoded", "", frames
    except BitstreamError as exc:
        return "BitstreamError", str(exc), frames
    except Exception as exc:  # noqa: BLE001 - what the fuzzer looks for
        return "other", f"{type(exc).__name__}: {str(exc)[:200]}", frames


def campaign(corpus: dict[str, bytes], cases: int, seed: int, max_frames: int = 2, case_limit: float = 10.0,
             memory_limit: float = 1024.0, seconds: float | None = None, light: bool = False) -> dict:
    rng = random.Random(seed)
    rng.light = light
    results: list[Result] = []
    started = time.perf_counter()
    names, mutators = sorted(corpus), sorted(MUTATORS)
    i = 0
    while i < cases and (seconds is None or time.perf_counter() - started < seconds):
        name, mutator = names[i % len(names)], mutators[(i // len(names)) % len(mutators)]
        if rng.random() < 0.5:
            name, mutator = rng.choice(names), rng.choice(mutators)
        data = MUTATORS[mutator](corpus[name], rng)
        fuzz._reset_peak()
        before = fuzz.peak_rss_mib()
        t0 = time.perf_counter()
        kind, message, frames = run_case(data, max_frames)
        results.append(Result(name, mutator, kind, message, time.perf_counter() - t0, fuzz.peak_rss_mib() - before, frames))
        i += 1
    wall = time.perf_counter() - started
    failures = [r for r in results if r.kind == "other" or r.seconds > case_limit or r.rise_mib > memory_limit]
    slowest = max(results, key=lambda r: r.seconds)
    largest = max(results, key=lambda r: r.rise_mib)
    by_mutator: dict[str, Counter] = {}
    for r in results:
        by_mutator.setdefault(r.mutator, Counter())[r.kind] += 1
    return {
        "cases": len(results), "seed": seed, "wall_seconds": wall, "cases_per_second": len(results) / wall,
        "case_limit_seconds": case_limit, "memory_limit_mib": memory_limit,
        "kinds": dict(Counter(r.kind for r in results)),
        "by_mutator": {m: dict(c) for m, c in sorted(by_mutator.items())},
        "messages": dict(Counter(fuzz.category(r.message) for r in results if r.kind == "BitstreamError").most_common()),
        "slowest": vars(slowest) | {"message": slowest.message[:200]},
        "largest_rise": vars(largest) | {"message": largest.message[:200]},
        "peak_rss_mib": fuzz.peak_rss_mib(),
        "max_seconds": slowest.seconds,
        "median_seconds": float(np.median([r.seconds for r in results])),
        "failures": [vars(r) for r in failures],
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=None, help="stop after this long")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--frames", type=int, default=2, help="frames rendered of a file declaring > 1 M frame-pixels")
    ap.add_argument("--case-limit", type=float, default=10.0)
    ap.add_argument("--memory-limit", type=float, default=1024.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from nrff.machine import cpu_name

    with tempfile.TemporaryDirectory() as tmp:
        corpus = fuzz.build_corpus(tmp)
    figures = campaign(corpus, args.cases, args.seed, args.frames, args.case_limit, args.memory_limit, args.seconds)
    figures["machine"]["cpu"] = cpu_name()
    print(f"{figures['cases']} cases in {figures['wall_seconds']:.0f} s ({figures['cases_per_second']:.1f} cases/s), "
          f"failures: {len(figures['failures'])}")
    print(f"outcomes: {figures['kinds']}")
    for m, c in figures["by_mutator"].items():
        print(f"  {m:16s} {c}")
    s, r = figures["slowest"], figures["largest_rise"]
    print(f"slowest case: {s['seconds'] * 1000:.0f} ms ({s['file']}, {s['mutator']}, {s['kind']}); "
          f"median {figures['median_seconds'] * 1000:.1f} ms")
    print(f"peak RSS {figures['peak_rss_mib']:.0f} MiB; largest rise in one case {r['rise_mib']:.0f} MiB "
          f"({r['file']}, {r['mutator']}, {r['kind']})")
    for f in figures["failures"][:10]:
        print(f"FAILED {f['file']} / {f['mutator']}: {f['kind']} {f['message'][:160]} ({f['seconds']:.1f} s, {f['rise_mib']:.0f} MiB)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 1 if figures["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
