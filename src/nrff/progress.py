"""Progress of long jobs: rich bars on a terminal, plain log lines elsewhere.

One :class:`Reporter` serves every command. Its mode is

* ``bars``: rich progress bars on stderr, with ETA and the training PSNR;
* ``log``: when stderr is not a terminal (a log file, nohup, a batch scheduler, CI),
  one plain line per update on stderr, at most one every ``interval`` seconds per task
  (the first after ``interval`` seconds, plus the last, so a bad input fails in one line), e.g. ``training: 12/300 epochs (4%), 31.20 dB, elapsed 0:00:10, eta 0:04:00``;
* ``off``: nothing (``-q``, and the inner encodes of rate control).

``Reporter()`` picks bars or log from ``sys.stderr.isatty()``. ``NRFF_LOG_INTERVAL``
overrides the interval of log lines (seconds; the default is 5, 1 with ``-v``).
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

MODES = ("bars", "log", "off")


def console(stderr: bool = False) -> Console:
    """A rich console that wraps at the terminal's width, and not at all when it writes to a
    pipe or a file (rich would otherwise cut tables to 80 columns)."""
    stream = sys.stderr if stderr else sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(stderr=stderr, width=None if tty else 4096, soft_wrap=not tty)


def _clock(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class _LogTask:
    """The log lines of one task: rate-limited, with percentage, elapsed time and ETA."""

    def __init__(self, reporter: Reporter, description: str, total: float, unit: str):
        self.reporter, self.description, self.total, self.unit = reporter, description, total, unit
        self.started = time.perf_counter()
        self.first: float | None = None  # the first completed count seen (a resumed job starts above 0)
        self.last_line = self.started  # the first line after `interval` s: a quick task (or error) logs once
        self.done = False

    def update(self, completed: float, text: str) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = completed
        finished = completed >= self.total
        if self.done or not (finished or now - self.last_line >= self.reporter.interval):
            return
        self.last_line, self.done = now, finished
        self.reporter.log(self.line(completed, text, now))

    def line(self, completed: float, text: str, now: float) -> str:
        elapsed = now - self.started
        pct = 100.0 * completed / self.total if self.total else 100.0
        count = f"{completed:.0f}/{self.total:.0f}{' ' + self.unit if self.unit else ''}"
        parts = [f"{self.description}: {count} ({pct:.0f}%)"] + ([text] if text else [])
        parts.append(f"elapsed {_clock(elapsed)}")
        gained = completed - (self.first or 0)
        if 0 < gained and completed < self.total:
            parts.append(f"eta {_clock(elapsed * (self.total - completed) / gained)}")
        return ", ".join(parts)


class Reporter:
    """``with Reporter() as r, r.task("training", epochs, unit="epochs") as update: update(n, psnr=...)``.

    ``enabled``: None picks bars on a terminal and log lines otherwise, True forces bars,
    False is silent; ``mode`` names the mode directly. ``verbose`` adds :meth:`detail`
    lines and logs more often.
    """

    def __init__(self, enabled: bool | None = None, *, mode: str | None = None, verbose: bool = False,
                 interval: float | None = None):
        if mode is None:
            mode = ("bars" if sys.stderr.isatty() else "log") if enabled is None else ("bars" if enabled else "off")
        if mode not in MODES:
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode, self.verbose = mode, verbose
        env = os.environ.get("NRFF_LOG_INTERVAL")
        self.interval = interval if interval is not None else float(env) if env else (1.0 if verbose else 5.0)
        self._progress: Progress | None = None
        self._transient = False

    @classmethod
    def for_cli(cls, quiet: bool = False, verbose: bool = False) -> Reporter:
        """What a command shows: nothing with ``-q``, else bars or log lines (more with ``-v``)."""
        return cls(mode="off" if quiet else None, verbose=verbose and not quiet)

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def transient(self) -> Reporter:
        """A view on the same output whose bars vanish when they finish: the inner steps of a
        longer job (``nrff bench`` keeps only its sweep bar)."""
        view = Reporter(mode=self.mode, verbose=self.verbose, interval=self.interval)
        view._progress = self._progress
        view._transient = True
        return view

    def __enter__(self) -> Reporter:
        if self.mode == "bars":
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None and not self._transient:
            self._progress.__exit__(*exc)
            self._progress = None

    @contextmanager
    def task(self, description: str, total: float, unit: str = ""):
        """A task of ``total`` units; ``update(completed, psnr=None, status=None)`` reports it."""
        if self.mode == "log":
            log = _LogTask(self, description, total, unit)
            yield lambda completed, psnr=None, status=None: log.update(completed, _status(psnr, status))
            if not log.done:  # finished without reaching its total (e.g. fewer figures than planned)
                log.update(total, "")
            return
        if self._progress is None:
            yield lambda completed, **fields: None
            return
        task_id = self._progress.add_task(description, total=total, status="", unit=unit)

        def update(completed: float, psnr: float | None = None, status: str | None = None) -> None:
            self._progress.update(task_id, completed=completed, status=_status(psnr, status))

        try:
            yield update
        finally:
            if self._transient:
                self._progress.remove_task(task_id)
            else:
                self._progress.update(task_id, completed=total)

    def log(self, message: str) -> None:
        """A line on stderr (above the bars), unless silent."""
        if self._progress is not None:
            self._progress.console.print(message, highlight=False, soft_wrap=True)
        elif self.mode != "off":
            print(message, file=sys.stderr, flush=True)

    def detail(self, message: str) -> None:
        """A line shown only with ``-v``."""
        if self.verbose:
            self.log(message)


def _status(psnr: float | None, status: str | None) -> str:
    return status or (f"{psnr:.2f} dB" if psnr is not None else "")
