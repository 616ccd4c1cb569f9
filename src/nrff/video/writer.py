"""Writing frames: a folder of PNGs, .mp4/.mkv/.mov, .y4m or raw .yuv.

The kind is chosen from the path: a path without a suffix (or an existing
folder) is a PNG folder; ``.mp4``/``.mkv``/``.mov`` are H.264, either exact
(``lossless``: RGB, libx264rgb QP 0, which many players cannot play) or
playable (yuv420p, BT.601 limited range, CRF 12 unless another is given;
yuv444p for odd sizes); ``.y4m`` is raw yuv420p (yuv444p for odd sizes);
``.yuv`` is raw I420; ``-`` is a .y4m stream on standard output.

Files are written to a temporary name and renamed into place when closed, so
an interrupted write never leaves a half-written file under the final name;
a PNG folder is built as a hidden temporary folder beside the final one and
renamed into place when complete. An existing output is only replaced when
``force`` is given (an existing folder only when it holds nothing but frames:
``frame_NNNN.png``); an aborted write removes its temporaries.
"""

from __future__ import annotations

import math
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from nrff.errors import InputError, NrffError, NrffWarning, OutputError, OutputExistsError
from nrff.fsutil import cannot_write, check_output, publish, temporary_sibling
from nrff.outputs import writable_folder
from nrff.video.colour import rgb_to_frame, rgb_to_yuv420_planes

CONTAINER_SUFFIXES = {".mp4", ".mkv", ".mov"}
PLAYABLE_CRF = 12.0  # visually lossless H.264 for `nrff decode -o out.mp4`
KNOWN_SUFFIXES = CONTAINER_SUFFIXES | {".y4m", ".yuv"}
H264_CRF_RANGE = (0.0, 51.0)  # libx264 (8-bit)
FRAME_NAME = re.compile(r"frame_\d+\.png")


def check_h264_crf(crf: float | None) -> None:
    """The CRF of an H.264 output: a number from 0 to 51."""
    if crf is None:
        return
    low, high = H264_CRF_RANGE
    if not (isinstance(crf, (int, float)) and math.isfinite(crf) and low <= crf <= high):
        raise InputError(f"--crf must be a number from {low:g} to {high:g} for H.264 (got {crf:g})")


def output_kind(path: str | os.PathLike) -> str:
    if str(path) == "-":
        return "y4m"
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir() or not suffix or str(path).endswith(("/", os.sep)):
        return "png"
    if suffix in CONTAINER_SUFFIXES:
        return "container"
    if suffix == ".y4m":
        return "y4m"
    if suffix == ".yuv":
        return "yuv"
    raise InputError(
        f"{p}: unknown output type {suffix!r}; use a folder (PNGs), .mp4, .mkv, .mov, .y4m or .yuv"
    )


class VideoWriter:
    """Write HxWx3 uint8 RGB frames one at a time.

    For .mp4/.mkv/.mov, ``lossless`` (the default here, so that a written video measures
    exactly as the frames) keeps RGB exactly; ``lossless=False`` or a ``crf`` writes
    playable yuv420p H.264 (``nrff decode``'s default). ``-`` writes .y4m to stdout.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: Fraction | float = Fraction(25),
        *,
        crf: float | None = None,
        lossless: bool = True,
        force: bool = False,
    ):
        self.stdout = str(path) == "-"
        self.path = Path(path)
        self.kind = output_kind(path)
        self.width, self.height = width, height
        self.fps = Fraction(fps).limit_denominator(1001000)
        self.count = 0
        self._container = None
        self._file = None
        self._tmp = None
        self._replace = False  # a PNG folder: an existing folder of frames is replaced on close
        if crf is not None and self.kind != "container":
            raise InputError(f"{self.path}: --crf applies to .mp4/.mkv/.mov outputs only")
        check_h264_crf(crf)
        if self.kind == "png":
            self._open_folder(force)
        elif self.stdout:
            self._tmp = None
            self._open_container(None, True)
        else:
            check_output(self.path, force)
            self._tmp = temporary_sibling(self.path)
            try:
                if self.kind == "yuv":
                    if width % 2 or height % 2:
                        raise InputError(f"{self.path}: raw 4:2:0 .yuv needs even sizes (got {width}x{height})")
                    self._file = open(self._tmp, "wb")
                else:
                    self._open_container(crf, lossless and crf is None)
            except BaseException:  # refused before the first frame: leave no temporary file behind
                self.abort()
                raise

    def _open_folder(self, force: bool) -> None:
        p = self.path
        if p.exists() and not p.is_dir():
            raise OutputExistsError(f"{p} exists and is not a folder")
        if p.is_dir():
            existing = list(p.iterdir())
            if existing and not force:
                raise OutputExistsError(f"{p} is not empty; pass --force to replace it")
            others = [f.name for f in existing if not (FRAME_NAME.fullmatch(f.name) and f.is_file())]
            if others:
                raise OutputExistsError(f"{p} holds files other than frames ({others[0]}, ...); nrff replaces only a "
                                        "folder of frame_NNNN.png files: choose another folder")
            self._replace = bool(existing)
        parent = writable_folder(p.parent)
        try:
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".part", dir=parent))
        except OSError as exc:
            raise cannot_write(p, exc) from None

    def _open_container(self, crf: float | None, lossless: bool) -> None:
        if self.kind == "y4m":
            fmt, codec = "yuv4mpegpipe", "rawvideo"
            pix_fmt = "yuv444p" if (self.width % 2 or self.height % 2) else "yuv420p"
            if pix_fmt == "yuv444p":
                warnings.warn(f"{self.path.name}: odd frame size, writing 4:4:4 Y4M", NrffWarning, stacklevel=3)
            options = {}
        elif lossless:
            fmt, codec, pix_fmt = None, "libx264rgb", "rgb24"
            options = {"qp": "0", "preset": "medium"}
        else:
            odd = self.width % 2 or self.height % 2
            if odd and crf is None:
                warnings.warn(f"{self.path.name}: odd frame size {self.width}x{self.height}, writing 4:4:4 H.264, "
                              "which some players cannot play", NrffWarning, stacklevel=3)
            elif odd:
                raise InputError(
                    f"{self.path}: CRF-coded video is yuv420p, which needs even sizes (got {self.width}x{self.height}); "
                    "omit --crf (4:4:4 at CRF 12) or use --lossless (exact RGB)"
                )
            fmt, codec, pix_fmt = None, "libx264", "yuv444p" if odd else "yuv420p"
            options = {"crf": f"{PLAYABLE_CRF if crf is None else crf:g}", "preset": "medium"}
        self.pix_fmt = pix_fmt
        container_format = fmt or {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}[self.path.suffix.lower()]
        target = sys.stdout.buffer if self.stdout else str(self._tmp)
        self._container = av.open(target, "w", format=container_format)
        stream = self._container.add_stream(codec, rate=self.fps)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = pix_fmt
        stream.codec_context.thread_count = 1 if codec != "rawvideo" else 0
        if codec == "libx264":
            stream.codec_context.color_range = 1
            stream.codec_context.colorspace = 5
        stream.options = options
        self._stream = stream

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected a {self.height}x{self.width}x3 uint8 frame, got {rgb.shape} {rgb.dtype}")
        self.count += 1
        try:
            if self.kind == "png":
                Image.fromarray(rgb).save(self._tmp / f"frame_{self.count:04d}.png", compress_level=1)
            elif self.kind == "yuv":
                self._file.write(rgb_to_yuv420_planes(rgb))
            else:
                frame = rgb_to_frame(rgb, self.pix_fmt)
                frame.pts = self.count - 1
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
        except OSError as exc:
            if self.stdout and isinstance(exc, BrokenPipeError):
                raise
            raise cannot_write("standard output" if self.stdout else self.path, exc) from None

    def close(self) -> None:
        try:
            if self._file is not None:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
            if self._container is not None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                self._container.close()
                self._container = None
            if self.kind == "png":
                self._publish_folder()
            elif not self.stdout:
                publish(self._tmp, self.path)
                self._tmp = None
        except NrffError:
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise cannot_write("standard output" if self.stdout else self.path, exc) from None
        except BaseException:
            self.abort()
            raise

    def _publish_folder(self) -> None:
        """Rename the finished temporary folder into place (an existing folder of frames, which
        ``force`` allowed, is moved aside first and removed after)."""
        old = None
        if self.path.is_dir() and any(self.path.iterdir()):
            if not self._replace:
                raise OutputError(f"{self.path}: the folder was filled by someone else meanwhile; the frames are not written")
            old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".old", dir=self.path.parent))
            os.replace(self.path, old)
        try:
            publish(self._tmp, self.path)
        except BaseException:
            if old is not None and not self.path.exists():
                os.replace(old, self.path)  # put the old frames back
            raise
        self._tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Drop a partial output: the temporary file or folder (an existing output is left as it was)."""
        try:
            if self._file is not None:
                self._file.close()
            if self._container is not None:
                self._container.close()
        except Exception:  # pragma: no cover - best effort cleanup
            pass
        self._file = self._container = None
        if self._tmp is not None:
            if self._tmp.is_dir():
                shutil.rmtree(self._tmp, ignore_errors=True)
            elif self._tmp.exists():
                self._tmp.unlink()
            self._tmp = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class BackgroundWriter:
    """Runs a :class:`VideoWriter` on a thread, so that rendering the next frames overlaps
    with compressing and writing the previous ones (PNG and x264 release the GIL)."""

    def __init__(self, writer: VideoWriter, depth: int = 8):
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            if self._error is None:
                try:
                    self.writer.write(frame)
                except BaseException as exc:  # reported on the caller's thread
                    self._error = exc

    def write(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(frame)

    @property
    def count(self) -> int:
        return self.writer.count

    def _finish(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._finish()
        if exc_type is None and self._error is None:
            self.writer.close()
            return
        self.writer.abort()
        if exc_type is None and self._error is not None:
            raise self._error


def write_video(path: str | os.PathLike, frames, fps=Fraction(25), *, crf: float | None = None, lossless: bool = True,
                force: bool = False) -> int:
    """Write an iterable of frames; return how many were written (``lossless``, ``crf``: see VideoWriter)."""
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise InputError("no frames to write")
    height, width = first.shape[:2]
    with VideoWriter(path, width, height, fps, crf=crf, lossless=lossless, force=force) as writer:
        writer.write(first)
        for frame in it:
            writer.write(frame)
    return writer.count

