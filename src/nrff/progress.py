"""Progress bars (rich) with ETA and the current training PSNR.

Shown on stderr when it is a terminal (or when forced); silent otherwise, so
logs and tests stay clean.
"""

from __future__ import annotations

import sys
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


class Reporter:
    """A thin wrapper: ``with reporter.task("training", total) as update: update(n, psnr=...)``."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Progress | None = None
        self._transient = False

    def transient(self) -> Reporter:
        """A view on the same bars whose tasks vanish when they finish: the inner
        steps of a longer job (``nrff bench`` keeps only its sweep bar)."""
        view = Reporter(self.enabled)
        view._progress = self._progress
        view._transient = True
        return view

    def __enter__(self) -> Reporter:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    @contextmanager
    def task(self, description: str, total: int):
        if self._progress is None:
            yield lambda completed, **fields: None
            return
        task_id = self._progress.add_task(description, total=total, status="")

        def update(completed: int, psnr: float | None = None, status: str | None = None) -> None:
            text = status or (f"{psnr:.2f} dB" if psnr is not None else "")
            self._progress.update(task_id, completed=completed, status=text)

        try:
            yield update
        finally:
            if self._transient:
                self._progress.remove_task(task_id)
            else:
                self._progress.update(task_id, completed=total)

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, highlight=False)
