"""The one error type a user meets: every failure fpkit expects is an `FpkitError` (or a subclass)."""

from __future__ import annotations


class FpkitError(ValueError):
    """A file, setting or input that cannot be used; the message is one line naming it.

    The command line prints it as `error: MESSAGE` and exits with status 1; anything else
    escaping a command is a bug. A `ValueError`, so code written before it still catches it.
    """
