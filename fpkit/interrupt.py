"""Stopping long work on SIGINT and SIGTERM alike, never in the middle of a write.

Long commands run inside `stop_on_signals()`: both signals raise `KeyboardInterrupt`, also
where SIGINT was inherited as ignored (a job a script started in the background, for which
Python leaves Ctrl-C ignored), so every command stops the same way: it saves or commits what
it has, says so in one line and exits with 130.

Steps that must not be cut in half (appending a song to a store, committing) run inside
`uninterrupted()`: a signal that arrives there is held and raised as the step ends, so the
caller may still commit everything before it.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import ParamSpec, TypeVar

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

P = ParamSpec("P")
R = TypeVar("R")

_depth = 0  # nesting of `uninterrupted` blocks (main thread only: signal handlers run there)
_held = False


def _stop(signum: int, frame: FrameType | None) -> None:
    global _held
    if _depth:
        _held = True
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise `KeyboardInterrupt` (outside `uninterrupted` steps)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; signals are handled there anyway
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, _stop)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold a stop signal until the block is done, then raise `KeyboardInterrupt`."""
    global _depth, _held
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _held:
            _held = False
            raise KeyboardInterrupt


def uninterruptible(step: Callable[P, R]) -> Callable[P, R]:
    """`step` run inside `uninterrupted()`."""

    @functools.wraps(step)
    def whole(*args: P.args, **kwargs: P.kwargs) -> R:
        with uninterrupted():
            return step(*args, **kwargs)

    return whole
