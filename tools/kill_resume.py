"""kill -9 a real ``nrff encode`` in the middle of training, ``--resume`` it, compare with an uninterrupted run.

    python tools/kill_resume.py                       # nrff, nrff-single and siren
    python tools/kill_resume.py --method nrff --epochs 300

For each method: an uninterrupted encode (no checkpoints) and a second encode
with ``--checkpoint-every 0.5`` start side by side on a 10-frame 64x48 excerpt of
the bundled clip (same seed); the second is killed with SIGKILL as soon as its
checkpoint file appears. The script then checks that nothing exists under the
final name, that a plain encode refuses while the checkpoint exists, resumes
with ``--resume``, and prints the training step the kill interrupted, both
PSNRs (from ``--report``) and whether the files are byte-identical.
``tests/test_resume.py`` runs the same procedure for ``nrff``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METHOD_OPTIONS = {"nrff": [], "nrff-single": ["--method", "nrff-single"], "siren": ["--method", "siren", "--target-bpp", "1"]}
DEFAULT_EPOCHS = {"nrff": 120, "nrff-single": 200, "siren": 400}  # ~3 s of training each on one core


def _nrff() -> list[str]:
    local = Path(sys.executable).with_name("nrff")
    return [str(local)] if local.exists() else [sys.executable, "-m", "nrff.cli"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NRFF_DEBUG")}
    env.update(NO_COLOR="1", OMP_NUM_THREADS="1")
    return env


def _encode(*args, wait: bool = True):
    cmd = [*_nrff(), "encode", *map(str, args)]
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())


def make_clip(folder: Path, frames: int = 10, size: tuple[int, int] = (64, 48)) -> Path:
    """An excerpt of the bundled clip, resized with PIL."""
    from PIL import Image

    from nrff.data import sample_clip

    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(sorted(sample_clip().glob("*.png"))[:frames], start=1):
        with Image.open(f) as im:
            im.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(folder / f"frame_{i:04d}.png")
    return folder


def checkpoint_state(ckpt: Path) -> dict:
    """The metadata of a checkpoint (numpy, no pickle)."""
    with np.load(ckpt, allow_pickle=False) as npz:
        return json.loads(bytes(npz["meta"]).decode())


def kill_and_resume(work: Path, clip: Path, method: str = "nrff", epochs: int | None = None, seed: int = 3) -> dict:
    """Run the procedure in ``work``; return what was observed (raises AssertionError on a broken step)."""
    epochs = epochs or DEFAULT_EPOCHS[method]
    args = [*METHOD_OPTIONS[method], "--preset", "fast", "--epochs", str(epochs), "--device", "cpu", "--seed", str(seed), "-q"]
    reference, out = work / f"{method}-reference.nrff", work / f"{method}.nrff"
    ckpt = Path(str(out) + ".ckpt")
    ref = _encode(clip, "-o", reference, *args, "--report", work / f"{method}-reference.json", "--checkpoint-every", "0",
                  wait=False)
    victim = _encode(clip, "-o", out, *args, "--checkpoint-every", "0.5", wait=False)
    started = time.monotonic()
    while not ckpt.exists():
        if victim.poll() is not None:
            raise AssertionError(f"the encode ended before its first checkpoint: {victim.stderr.read()}")
        if time.monotonic() - started > 300:
            raise AssertionError("no checkpoint appeared in 300 s")
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    status = victim.wait(timeout=60)
    victim.stderr.close()
    meta = checkpoint_state(ckpt)
    row = {
        "method": method, "epochs": epochs, "killed_status": status, "killed_after_s": time.monotonic() - started,
        "checkpoint_step": (meta["trainer"] or {}).get("step", 0), "output_after_kill": out.exists(),
    }
    plain = _encode(clip, "-o", out, *args)
    row["plain_encode_status"] = plain.returncode
    row["plain_encode_lines"] = [line for line in plain.stderr.splitlines() if line.strip()]
    row["checkpoint_kept"] = ckpt.exists() and not out.exists()
    resumed = _encode(clip, "-o", out, *args, "--resume", "--report", work / f"{method}.json", "--checkpoint-every", "0.5")
    if resumed.returncode != 0:
        raise AssertionError(f"--resume failed: {resumed.stderr}")
    row["checkpoint_removed"] = not ckpt.exists()
    if ref.wait(timeout=600) != 0:
        raise AssertionError(f"the uninterrupted encode failed: {ref.stderr.read()}")
    ref.stderr.close()
    a = json.loads((work / f"{method}.json").read_text())
    b = json.loads((work / f"{method}-reference.json").read_text())
    row.update(total_steps=b["steps"], psnr_resumed=a["psnr"], psnr_uninterrupted=b["psnr"],
               identical=out.read_bytes() == reference.read_bytes(), bytes=a["bytes"],
               temporary_files=sorted(p.name for p in work.iterdir() if p.name.startswith(f".{method}.nrff")))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", action="append", choices=sorted(METHOD_OPTIONS), help="repeatable (default: all)")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nrff-kill-") as tmp:
        work = Path(tmp)
        clip = make_clip(work / "clip")
        print("| method | epochs (steps) | killed at step | file after kill | plain encode | resumed PSNR | uninterrupted PSNR | identical bytes |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        ok = True
        for method in args.method or ["nrff", "nrff-single", "siren"]:
            r = kill_and_resume(work, clip, method, args.epochs)
            plain = f"exit {r['plain_encode_status']}" + (" (refuses: checkpoint exists)" if r["plain_encode_status"] == 2 else "")
            print(f"| {method} | {r['epochs']} ({r['total_steps']}) | {r['checkpoint_step']} (signal {-r['killed_status']}) | "
                  f"{'yes' if r['output_after_kill'] else 'none'} | {plain} | {r['psnr_resumed']:.4f} dB | "
                  f"{r['psnr_uninterrupted']:.4f} dB | {'yes' if r['identical'] else 'no'} |")
            ok &= r["identical"] and not r["output_after_kill"] and r["plain_encode_status"] == 2
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
