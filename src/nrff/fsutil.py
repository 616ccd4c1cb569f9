"""Writing files safely: never replace what the user did not ask to replace,
never leave a half-written file under the final name."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nrff.errors import InputError, OutputExistsError


def check_output(path: str | os.PathLike, force: bool) -> Path:
    """Refuse an existing output file unless ``force``; check the parent folder exists."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a folder; give a file name")
    if p.exists() and not force:
        raise OutputExistsError(f"{p} already exists; pass --force to replace it")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"{parent}: output folder does not exist")
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file the usual permissions and rename it into place."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, force: bool = False) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it into place."""
    p = check_output(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent if str(p.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def temporary_sibling(path: Path) -> Path:
    """A fresh temporary path beside ``path`` (same file system, so renaming is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{path.suffix}", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    return Path(tmp)
