"""Writing files safely: never replace what the user did not ask to replace,
never leave a half-written file under the final name."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nrff.errors import OutputError
from nrff.outputs import check_output_file


def check_output(path: str | os.PathLike, force: bool) -> Path:
    """Refuse an existing output file unless ``force``; check that its folder exists and is writable."""
    return check_output_file(path, force)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file (or folder) the usual permissions and rename it into place."""
    os.chmod(tmp, (0o777 if os.path.isdir(tmp) else 0o666) & ~_umask())
    os.replace(tmp, path)


def cannot_write(path: str | os.PathLike, exc: OSError) -> OutputError:
    """The one-line error of a write that failed (a full disk, a folder made read-only meanwhile)."""
    return OutputError(f"{path}: cannot write ({exc.strerror or exc})")


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, force: bool = False) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it into place."""
    p = check_output(path, force)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent if str(p.parent) else ".")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, p)
    except OSError as exc:
        raise cannot_write(p, exc) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def temporary_sibling(path: Path) -> Path:
    """A fresh temporary path beside ``path`` (same file system, so renaming is atomic)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{path.suffix}",
                                   dir=path.parent if str(path.parent) else ".")
    except OSError as exc:
        raise cannot_write(path, exc) from None
    os.close(fd)
    return Path(tmp)
