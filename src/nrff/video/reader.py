"""Reading videos as a stream of uint8 RGB frames.

Three kinds of input, one interface (:class:`VideoReader`):

* a folder of images (PNG, JPEG, BMP, TIFF, WebP), sorted by name in natural
  order (``frame_2`` before ``frame_10``): the Sintel layout;
* any container or raw stream FFmpeg reads (.mp4 .mkv .avi .mov .264 .hevc
  .y4m ...), through PyAV;
* raw planar 8-bit YUV 4:2:0 (``.yuv``), which carries no header, so its size
  must be given.

Frames are yielded one at a time (or in small chunks) as HxWx3 uint8 arrays,
so a long 1080p video is never held in memory, let alone as float32.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from nrff.errors import InputError, NrffWarning
from nrff.video.colour import frame_to_rgb, yuv420_planes_to_rgb
from nrff.video.limits import MAX_DIMENSION, MAX_FPS, MAX_PIXELS, MIN_FPS, check_dimensions, check_fps
from nrff.video.y4m import Y4mHeader, read_y4m_header

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
RAW_YUV_SUFFIXES = {".yuv"}
DEFAULT_IMAGE_FPS = Fraction(24)  # Sintel's frame rate; images carry none


@dataclass(frozen=True)
class FrameRange:
    """A half-open range of frame indices ``[start, stop)``, 0-based, like a slice."""

    start: int = 0
    stop: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> FrameRange | None:
        """Parse ``START:END`` (either side may be empty)."""
        if text is None or text == "":
            return None
        m = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", text)
        if not m:
            raise InputError(f"bad frame range {text!r}: expected START:END with non-negative integers, e.g. 0:20")
        start = int(m.group(1)) if m.group(1) else 0
        stop = int(m.group(2)) if m.group(2) else None
        if stop is not None and stop <= start:
            raise InputError(f"frame range {text!r} is empty: END must be greater than START")
        return cls(start, stop)

    def resolve(self, total: int, source: str) -> tuple[int, int]:
        stop = total if self.stop is None else self.stop
        if self.start >= total:
            raise InputError(f"frame range starts at {self.start} but {source} has only {total} frames")
        if stop > total:
            raise InputError(f"frame range ends at {stop} but {source} has only {total} frames")
        return self.start, stop

    def __str__(self) -> str:
        return f"{self.start}:{'' if self.stop is None else self.stop}"


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video before decoding it (after applying a frame range)."""

    path: str
    width: int
    height: int
    fps: Fraction
    frames: int
    kind: str  # "images", "container" or "yuv"

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def parse_size(text: str | None) -> tuple[int, int] | None:
    """Parse ``WxH`` into ``(width, height)``."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise InputError(f"bad size {text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080")
    w, h = int(m.group(1)), int(m.group(2))
    check_dimensions(w, h, f"size {text!r}")
    return w, h


class VideoReader:
    """A re-iterable stream of HxWx3 uint8 RGB frames with known :class:`VideoInfo`."""

    info: VideoInfo

    def _frames(self) -> Iterator[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __iter__(self) -> Iterator[np.ndarray]:
        expected = (self.info.height, self.info.width, 3)
        count = 0
        for index, frame in enumerate(self._frames()):
            if frame.shape != expected:
                raise InputError(
                    f"{self.info.path}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, "
                    f"but the video is {self.info.width}x{self.info.height}; all frames must have the same size"
                )
            count += 1
            yield frame
        if count != self.info.frames:
            raise InputError(f"{self.info.path}: expected {self.info.frames} frames but could decode only {count}")

    def __len__(self) -> int:
        return self.info.frames

    def read_all(self) -> np.ndarray:
        """All frames as one uint8 array (for short clips and tests)."""
        return np.stack(list(self))


class ArrayReader(VideoReader):
    """Frames already in memory: a uint8 array ``[N, H, W, 3]`` (RGB)."""

    def __init__(self, frames: np.ndarray, frame_range: FrameRange | None, fps: Fraction | float | None):
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
            raise InputError(f"frames must be a uint8 array [N, H, W, 3] (got {frames.dtype} {list(frames.shape)})")
        if len(frames) == 0:
            raise InputError("frames: the array holds no frames")
        check_dimensions(frames.shape[2], frames.shape[1], "frames")
        self.start, self.stop = (frame_range or FrameRange()).resolve(len(frames), "frames")
        self.array = frames
        rate = check_fps(fps, "--fps") if fps is not None else DEFAULT_IMAGE_FPS
        self.info = VideoInfo("frames", frames.shape[2], frames.shape[1], rate, self.stop - self.start, "array")

    def _frames(self) -> Iterator[np.ndarray]:
        for i in range(self.start, self.stop):
            yield np.ascontiguousarray(self.array[i])


class ImageFolderReader(VideoReader):
    """A folder of images (or one image file, a one-frame video)."""

    def __init__(self, path: Path, frame_range: FrameRange | None, fps: Fraction | None):
        if path.is_dir():
            try:
                names = list(path.iterdir())
            except OSError as exc:
                raise InputError(f"{path}: cannot read the folder ({exc.strerror or exc})") from None
            if not names:
                raise InputError(f"{path}: the folder is empty")
            files = sorted(
                (p for p in names if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                key=lambda p: _natural_key(p.name),
            )
            if not files:
                raise InputError(f"{path}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder")
        else:
            files = [path]
        start, stop = (frame_range or FrameRange()).resolve(len(files), str(path))
        self.files = files[start:stop]
        first = self._load(self.files[0])
        height, width = first.shape[:2]
        check_dimensions(width, height, str(self.files[0]))
        self.info = VideoInfo(str(path), width, height, fps or DEFAULT_IMAGE_FPS, len(self.files), "images")

    @staticmethod
    def _load(file: Path) -> np.ndarray:
        try:
            with Image.open(file) as im:
                check_dimensions(im.width, im.height, str(file))  # before decoding anything
                if im.mode in ("RGB", "RGBA") and any(";16" in str(tile[3]) for tile in im.tile):
                    return _deep_rgb_to_rgb8(file)
                im.load()
                return _image_to_rgb8(im, file)
        except Image.DecompressionBombError:
            raise InputError(f"{file}: image too large; the supported maximum is {MAX_DIMENSION} pixels per side") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, IndexError, TypeError) as exc:
            raise InputError(f"{file}: cannot read image ({_short(exc)})") from None

    def _frames(self) -> Iterator[np.ndarray]:
        for file in self.files:
            yield self._load(file)


def _deep_rgb_to_rgb8(file: Path) -> np.ndarray:
    """16-bit-per-channel RGB(A) images, which PIL truncates to their high bytes: decode with
    FFmpeg at full depth and round to 8 bits."""
    warnings.warn(f"{file.name}: 16-bit RGB image converted to 8-bit RGB", NrffWarning, stacklevel=4)
    try:
        with av.open(str(file)) as container:
            frame = next(container.decode(video=0))
            deep = frame.to_ndarray(format="rgb48le").astype(np.uint32)
    except (av.FFmpegError, StopIteration) as exc:
        raise InputError(f"{file}: cannot read image ({exc})") from None
    return ((deep * 255 + 32767) // 65535).astype(np.uint8)


def _image_to_rgb8(im: Image.Image, file: Path) -> np.ndarray:
    """Convert any PIL image to 8-bit RGB, warning when information is dropped."""
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8)
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im).astype(np.uint32)
        peak = 65535 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255
        warnings.warn(f"{file.name}: 16-bit grayscale image converted to 8-bit RGB", NrffWarning, stacklevel=3)
        arr8 = ((arr * 255 + peak // 2) // peak).astype(np.uint8) if peak != 255 else arr.astype(np.uint8)
        return np.repeat(arr8[..., None], 3, axis=2)
    if mode in ("L", "1", "P", "LA", "PA"):
        if mode in ("L", "1", "LA"):
            warnings.warn(f"{file.name}: grayscale image converted to RGB", NrffWarning, stacklevel=3)
        if mode in ("LA", "PA") or (mode == "P" and "transparency" in im.info):
            warnings.warn(f"{file.name}: alpha channel dropped", NrffWarning, stacklevel=3)
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    if mode in ("RGBA", "RGBa"):
        warnings.warn(f"{file.name}: alpha channel dropped", NrffWarning, stacklevel=3)
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    warnings.warn(f"{file.name}: {mode} image converted to 8-bit RGB", NrffWarning, stacklevel=3)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


class ContainerReader(VideoReader):
    """Anything FFmpeg demuxes: .mp4 .mkv .avi .mov .y4m .264 .hevc ..."""

    def __init__(self, path: Path, frame_range: FrameRange | None, fps: Fraction | None, y4m: Y4mHeader | None = None):
        self.path = path
        with self._open() as container:
            stream = self._stream(container)
            cc = stream.codec_context
            width, height = cc.width, cc.height
            check_dimensions(width, height, str(path))
            native = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
            if y4m is not None:  # our own reading of the header, which FFmpeg must agree with
                if (width, height) != (y4m.width, y4m.height):
                    raise InputError(f"{path}: FFmpeg reads {width}x{height} frames, the header says "
                                     f"{y4m.width}x{y4m.height}")
                native, total = y4m.fps, y4m.frames
            else:
                total = stream.frames or self._count_frames(container, stream)
            rate = fps or check_fps(native, f"{path} (give --fps to override)")
        if total == 0:
            raise InputError(f"{path}: the video has no frames")
        self.start, self.stop = (frame_range or FrameRange()).resolve(total, str(path))
        self.info = VideoInfo(str(path), width, height, Fraction(rate), self.stop - self.start, "container")
        self._timing = _TimingCheck(path, Fraction(native))  # warns once per reader

    def _open(self):
        try:
            return av.open(str(self.path), metadata_errors="ignore")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{self.path}: cannot open as a video ({_short(exc)})") from None

    def _stream(self, container):
        if not container.streams.video:
            raise InputError(f"{self.path}: contains no video stream")
        return container.streams.video[0]

    def _count_frames(self, container, stream) -> int:
        try:
            return sum(1 for p in container.demux(stream) if p.size > 0)
        except av.FFmpegError as exc:
            raise InputError(f"{self.path}: cannot read ({_short(exc)})") from None

    def _frames(self) -> Iterator[np.ndarray]:
        with self._open() as container:
            stream = self._stream(container)
            stream.thread_type = "AUTO"
            index = 0
            timing = self._timing
            timing.restart()
            try:
                for frame in container.decode(stream):
                    if index >= self.stop:
                        break
                    timing.see(frame.time)
                    if index >= self.start:
                        yield frame_to_rgb(frame)
                    index += 1
            except av.FFmpegError as exc:
                raise InputError(f"{self.path}: decoding failed at frame {index} ({_short(exc)})") from None


class _TimingCheck:
    """Warns once when frame timestamps are irregular (a variable-frame-rate container):
    nrff codes frames in order and decodes them at one constant rate, so the timing is lost."""

    def __init__(self, path: Path, fps: Fraction):
        self.path, self.period, self.last, self.done = path, 1 / float(fps), None, False

    def restart(self) -> None:
        """A new pass over the video (the warning, once given, is not repeated)."""
        self.last = None

    def see(self, time: float | None) -> None:
        if time is None or self.done:
            return
        if self.last is not None and abs((time - self.last) - self.period) > 0.25 * self.period:
            warnings.warn(f"{self.path.name}: variable frame rate (a frame {1000 * (time - self.last):.0f} ms after the "
                          f"previous one, {1000 * self.period:.0f} ms on average); frames are coded in order and "
                          f"decoded at one constant rate", NrffWarning, stacklevel=4)
            self.done = True
        self.last = time


class RawYuvReader(VideoReader):
    """Headerless planar 8-bit 4:2:0 (I420) frames of a given size."""

    def __init__(self, path: Path, size: tuple[int, int] | None, frame_range: FrameRange | None, fps: Fraction | None):
        if size is None:
            raise InputError(f"{path}: raw .yuv has no header; give its size with --size WxH")
        width, height = size
        check_dimensions(width, height, str(path))
        self.path = path
        self.frame_bytes = width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)
        file_size = path.stat().st_size
        if file_size == 0:
            raise InputError(f"{path}: the file is empty")
        if file_size % self.frame_bytes:
            raise InputError(
                f"{path}: size {file_size} bytes is not a whole number of {width}x{height} 4:2:0 frames "
                f"({self.frame_bytes} bytes each); check --size"
            )
        total = file_size // self.frame_bytes
        self.start, self.stop = (frame_range or FrameRange()).resolve(total, str(path))
        self.info = VideoInfo(str(path), width, height, fps or Fraction(25), self.stop - self.start, "yuv")

    def _frames(self) -> Iterator[np.ndarray]:
        w, h = self.info.width, self.info.height
        with open(self.path, "rb") as f:
            f.seek(self.start * self.frame_bytes)
            for _ in range(self.stop - self.start):
                buf = f.read(self.frame_bytes)
                if len(buf) != self.frame_bytes:
                    raise InputError(f"{self.path}: truncated frame")
                yield yuv420_planes_to_rgb(buf, w, h)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def open_video(
    path: str | os.PathLike | np.ndarray,
    *,
    frames: FrameRange | str | None = None,
    size: tuple[int, int] | str | None = None,
    fps: Fraction | float | None = None,
) -> VideoReader:
    """Open a folder of images, a container/stream, or a raw .yuv file for reading.

    ``-`` reads standard input (a .y4m stream, anything FFmpeg demuxes, or raw .yuv with
    ``size``), spooled to a temporary file that is removed when the process ends.
    ``fps`` sets the frame rate of images and raw .yuv (which carry none) or overrides a
    container's.
    """
    if isinstance(path, np.ndarray):
        return ArrayReader(path, frames if not isinstance(frames, str) else FrameRange.parse(frames), fps)
    if str(path) == "-":
        path = spool_stdin(raw=size is not None)
    p = Path(path)
    if isinstance(frames, str):
        frames = FrameRange.parse(frames)
    if isinstance(size, str):
        size = parse_size(size)
    rate = check_fps(fps, "--fps") if fps is not None else None
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        return ImageFolderReader(p, frames, rate)
    if not p.is_file():
        raise InputError(f"{p}: not a regular file or folder")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: permission denied")
    if p.suffix.lower() in RAW_YUV_SUFFIXES:
        return RawYuvReader(p, size, frames, rate)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderReader(p, frames, rate)
    if p.stat().st_size == 0:
        raise InputError(f"{p}: the file is empty")
    y4m = read_y4m_header(p)
    return ContainerReader(p, frames, rate, y4m)


_SPOOLS: list[tempfile.TemporaryDirectory] = []


def spool_stdin(raw: bool = False, source=None) -> Path:
    """Copy standard input (or the binary file ``source``) to a temporary file, named by what
    it holds (``stdin.y4m``; ``stdin.yuv`` when ``raw``; else ``stdin``, which FFmpeg probes)."""
    stream = source if source is not None else sys.stdin.buffer
    if source is None and sys.stdin.isatty():
        raise InputError("-: standard input is a terminal; pipe a video into it (e.g. ffmpeg ... -f yuv4mpegpipe - |)")
    folder = tempfile.TemporaryDirectory(prefix="nrff-stdin-")
    _SPOOLS.append(folder)
    head = stream.read(9)
    if not head:
        raise InputError("-: standard input is empty")
    name = "stdin.y4m" if head == b"YUV4MPEG2" else "stdin.yuv" if raw else "stdin"
    target = Path(folder.name) / name
    with open(target, "wb") as f:
        f.write(head)
        shutil.copyfileobj(stream, f, 1 << 20)
    return target
