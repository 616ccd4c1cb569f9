"""Record the bytes of reference encodes (tests/data/golden): ``python tools/golden.py``.

Each case of ``tests/data/golden/cases.json`` is encoded from the bundled clip
(frames 0:11) through the command line; the file, its SHA-256, the SHA-256 of
the frames it decodes to and the PSNR the encoder reported are stored, with the
CPU and torch version they were made on. ``tests/test_golden.py`` checks that
the code still writes these bytes and still decodes these files to these frames.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden"
FRAMES = "0:11"


def encode_case(args: list[str], out: Path, report: Path) -> None:
    from typer.testing import CliRunner

    from nrff.cli import app
    from nrff.data import sample_clip

    result = CliRunner().invoke(app, ["encode", str(sample_clip()), "-o", str(out), "--frames", FRAMES, "--device", "cpu",
                                      "--checkpoint-every", "0", "--report", str(report), "-q", "--force", *args])
    if result.exit_code != 0:
        raise SystemExit(f"encode {args} failed: {result.output}")


def frames_digest(data: bytes) -> str:
    from nrff.api import decode

    h = hashlib.sha256()
    for frame in decode(data, device="cpu").frames():
        h.update(np.ascontiguousarray(frame).tobytes())
    return h.hexdigest()


def main() -> None:
    from nrff.machine import float_machine

    torch.set_num_threads(2)
    cases = {k: v for k, v in json.loads((GOLDEN / "cases.json").read_text()).items() if not k.startswith("_")}
    expected = {"_machine": float_machine(), "_frames": FRAMES}
    for name, args in cases.items():
        out, report = GOLDEN / f"{name}.nrff", GOLDEN / f"{name}.json"
        encode_case(args, out, report)
        data = out.read_bytes()
        psnr = json.loads(report.read_text())["psnr"]
        report.unlink()
        expected[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                          "frames_sha256": frames_digest(data), "psnr": psnr}
        print(f"{name}: {len(data)} B, {psnr:.3f} dB", file=sys.stderr)
    (GOLDEN / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
