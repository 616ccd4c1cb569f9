"""What every ``nrff`` command shares: the app, the consoles, error reporting, common options.

Every user error becomes one line on stderr (``error: ...``) and exit status 2;
an unexpected internal error is reported in one line too (exit status 3) and
shows its traceback only with ``NRFF_DEBUG=1``. Tables and results go to stdout,
everything else (progress, warnings, "wrote ..." lines) to stderr, so that
``--json`` leaves exactly one JSON document on stdout. Path parameters are declared
``readable=False``: nrff checks its files itself and says what is wrong in one line,
where the argument parser would print a usage box.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from nrff.errors import NrffError
from nrff.outputs import Terminated, describe_os_error, interrupts_on_signals
from nrff.progress import Reporter, console

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="nrff: a neural video codec (Neural Residual Flow Fields).",
)
out = console()
err = console(stderr=True)

# the common flags, spelled the same on every command
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary lines on stderr (errors still show).")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="More detail: what is done, and progress lines every second.")]
Force = Annotated[bool, typer.Option("--force", "-y", help="Replace existing outputs.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document to stdout instead of a table.")]


def _hide_flag_types() -> None:
    """Typer's help shows ``<bool>`` after a flag (``--quiet -q <bool>``), which reads as if a
    value were expected; flags take none, so show no type for them."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - another typer layout: keep its help as it is
        return
    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_nrff", False):  # pragma: no cover
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else original(self, ctx)

    display_type_rich._nrff = True
    TyperOption.display_type_rich = display_type_rich


_hide_flag_types()


def _show_warning(message, category, filename, lineno, file=None, line=None):
    err.print(f"[yellow]warning:[/] {message}", highlight=False)


def command(fn, group: typer.Typer | None = None, name: str | None = None):
    """Register ``fn`` as a command (of ``group``, default the top level) that reports errors in one line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        warnings.showwarning = _show_warning
        try:
            with interrupts_on_signals():  # SIGTERM cleans up like Ctrl-C: no temporaries left
                return fn(*args, **kwargs)
        except NrffError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except Terminated as exc:
            err.print("[red]terminated[/]")
            raise typer.Exit(128 + exc.signum) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:  # noqa: BLE001 - last line of defence against tracebacks
            # a file problem the command did not name itself (a full disk, a file it may not read...)
            message = describe_os_error(exc) if isinstance(exc, OSError) else None
            if message is not None and not os.environ.get("NRFF_DEBUG"):
                err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None
            if os.environ.get("NRFF_DEBUG"):
                raise
            err.print(
                f"[red]internal error:[/] {type(exc).__name__}: {exc} (set NRFF_DEBUG=1 for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(3) from None

    return (group or app).command(name)(wrapper)


def reporter(quiet: bool, verbose: bool) -> Reporter:
    """The progress of a command (only rank 0 of a torchrun job shows any)."""
    return Reporter.for_cli(quiet or os.environ.get("RANK", "0") != "0", verbose)


def say(quiet: bool, message: str) -> None:
    """A summary line on stderr, unless ``-q``."""
    if not quiet:
        err.print(message, highlight=False, soft_wrap=True)


def print_json(document) -> None:
    """One JSON document on stdout (nothing else goes there)."""
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    sys.stdout.flush()


def write_report(path: Optional[Path], report: dict | list, force: bool) -> None:
    if path is None:
        return
    from nrff.fsutil import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(report, indent=2) + "\n").encode(), force=force)

