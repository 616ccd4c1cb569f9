"""Output safety: what every command checks before it starts, and how it ends.

* :func:`check_paths` refuses, before any work, an output that is the input or
  another output of the same command (the same file under another name too:
  symlinks and hard links are compared by device and inode), an existing output
  without ``force``, and an output folder that cannot be written (a probe file is
  created and removed, so read-only mounts and permission problems show at once).
* :class:`OutputLock` holds an exclusive lock on ``OUT.lock`` while an encode runs,
  so a second encode to the same output fails at once, naming the first.
* :func:`interrupts_on_signals` turns SIGTERM into an exception (like Ctrl-C's
  KeyboardInterrupt), so the writers' clean-up runs and no temporary is left.

Files themselves are written to a temporary name and renamed into place
(:mod:`nrff.fsutil`, :mod:`nrff.video.writer`).
"""

from __future__ import annotations

import errno
import os
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from nrff.errors import InputError, NrffWarning, OutputError, OutputExistsError

PathLike = str | os.PathLike


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised on the main thread, so that clean-up code runs)."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


def _is_stdio(path) -> bool:
    return path is None or str(path) == "-"


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name the same file: the same device and inode when both exist
    (which sees through symlinks and hard links), else the same resolved path."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        pass
    else:
        if sa.st_ino and sa.st_dev:
            return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
    return os.path.realpath(a) == os.path.realpath(b)


def check_distinct(inputs: Mapping[str, PathLike | None], outputs: Mapping[str, PathLike | None]) -> None:
    """Refuse an output that is one of the inputs or another output (``-``, stdin/stdout, is skipped)."""
    named_outputs = [(name, p) for name, p in outputs.items() if not _is_stdio(p)]
    for name, out in named_outputs:
        for in_name, source in inputs.items():
            if _is_stdio(source) or not isinstance(source, (str, os.PathLike)):
                continue
            if same_file(out, source):
                alias = "" if os.path.abspath(out) == os.path.abspath(source) else f" (the same file as {source})"
                raise InputError(f"{out}: the output ({name}) is the {in_name}{alias}; writing it would destroy the "
                                 f"{in_name}: choose another output")
    for i, (name, out) in enumerate(named_outputs):
        for other_name, other in named_outputs[i + 1:]:
            if same_file(out, other):
                raise InputError(f"{out}: given as both {name} and {other_name}; one would overwrite the other")


def writable_folder(folder: PathLike) -> Path:
    """Check that files can be created in ``folder`` (it must exist): create and remove a probe."""
    f = Path(folder) if str(folder) else Path(".")
    if not f.exists():
        raise OutputError(f"{f}: output folder does not exist")
    if not f.is_dir():
        raise OutputError(f"{f}: not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".nrff-probe-", dir=f)
    except OSError as exc:
        raise OutputError(f"{f}: cannot write there ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return f


def check_output_file(path: PathLike, force: bool) -> Path:
    """An output file: not a folder, not existing unless ``force``, in a writable folder."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a folder; give a file name")
    if (p.exists() or p.is_symlink()) and not force:
        raise OutputExistsError(f"{p} already exists; pass --force to replace it")
    writable_folder(p.parent)
    return p


def check_paths(inputs: Mapping[str, PathLike | None], outputs: Mapping[str, PathLike | None], force: bool,
                folders: Mapping[str, PathLike | None] | None = None) -> None:
    """Everything a command checks about its paths before it does any work: outputs distinct
    from the inputs and from each other, output files absent (or ``force``), every output
    location writable. ``folders`` are outputs that are folders (created if missing)."""
    folders = dict(folders or {})
    check_distinct(inputs, {**outputs, **folders})
    for p in outputs.values():
        if not _is_stdio(p):
            check_output_file(p, force)
    for p in folders.values():
        if p is None:
            continue
        f = Path(p)
        if f.exists() and not f.is_dir():
            raise OutputExistsError(f"{f} exists and is not a folder")
        writable_folder(f if f.is_dir() else _existing_ancestor(f))


def _existing_ancestor(p: Path) -> Path:
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def lock_path(output: PathLike) -> Path:
    return Path(str(output) + ".lock")


class OutputLock:
    """An exclusive, non-blocking lock on ``OUT.lock`` (``flock``), held while ``OUT`` is being
    made; the file holds the holder's pid and is removed on release. A lock left by a killed
    process is no obstacle: the kernel releases it with the process."""

    def __init__(self, output: PathLike):
        self.output = Path(output)
        self.path = lock_path(output)
        self.fd: int | None = None

    def acquire(self) -> OutputLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return self
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot create the lock file ({exc.strerror or exc})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder(fd)
                os.close(fd)
                raise InputError(f"{self.output} is being written by another nrff encode (pid {holder}, lock "
                                 f"{self.path}); wait for it to finish or choose another output") from None
            except OSError as exc:  # a file system without locks: go on without one
                os.close(fd)
                warnings.warn(f"{self.path}: cannot lock ({exc.strerror or exc}); not protected against a second "
                              "encode to the same output", NrffWarning, stacklevel=2)
                return self
            try:  # the file may have been removed by its last holder in between: lock the current one
                current = os.stat(self.path)
            except FileNotFoundError:
                os.close(fd)
                continue
            mine = os.fstat(fd)
            if (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
                os.close(fd)
                continue
            os.lseek(fd, 0, os.SEEK_SET)
            before = os.read(fd, 64)
            if before.strip() and not before.strip().isdigit():  # not a lock of ours: leave the file alone
                os.close(fd)
                raise OutputError(f"{self.path} exists and is not an nrff lock file; move it away or choose "
                                  "another output")
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
            self.fd = fd
            return self
        raise OutputError(f"{self.path}: cannot take the lock (it keeps being replaced)")  # pragma: no cover

    @staticmethod
    def _holder(fd: int) -> str:
        for _ in range(20):  # the holder writes its pid just after locking
            os.lseek(fd, 0, os.SEEK_SET)
            text = os.read(fd, 32).decode(errors="replace").strip()
            if text:
                return text
            time.sleep(0.01)
        return "unknown"

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding it: a waiting process re-checks the inode
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def interrupts_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) on the main
    thread, as Ctrl-C raises KeyboardInterrupt, so ``with`` blocks and ``finally`` clauses
    remove temporaries; a second SIGTERM during that clean-up is ignored. The previous
    handler is restored afterwards. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the clean-up finish
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# errors of the file system that are the user's to fix (a full disk, a read-only folder, ...)
FILE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENOENT,
               errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP, errno.EIO, errno.EMFILE,
               errno.ENFILE, errno.EXDEV, errno.ETXTBSY, errno.EBUSY}


def describe_os_error(exc: OSError) -> str | None:
    """A one-line message for an OSError that is a file problem, or None for anything else."""
    if exc.errno not in FILE_ERRNOS and exc.filename is None:
        return None
    what = exc.strerror or os.strerror(exc.errno) if exc.errno else str(exc)
    return f"{exc.filename}: {what}" if exc.filename is not None else str(what)
