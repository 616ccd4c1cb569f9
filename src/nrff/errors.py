"""The error types nrff raises for problems a user can fix.

Every message is one line that names the problem; the command line prints it
as ``error: <message>`` and exits with a non-zero status, never a traceback.
"""

from __future__ import annotations


class NrffError(Exception):
    """Base class of all errors that nrff reports to users."""


class InputError(NrffError):
    """Bad input: a missing or unreadable file, mixed frame sizes, a bad argument."""


class OutputExistsError(InputError):
    """The output path exists and ``force`` was not given."""


class OutputError(NrffError):
    """An output cannot be written: a missing or read-only folder, a full disk, a busy output."""


class BitstreamError(NrffError):
    """A malformed, truncated or unsupported ``.nrff`` file.

    Decoding untrusted data raises this type and no other: every length,
    count and shape is checked before use, every section carries a CRC-32.
    """


class NrffWarning(UserWarning):
    """Something was converted or adjusted (e.g. a 16-bit PNG read as 8-bit)."""
