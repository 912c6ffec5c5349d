"""Ctrl-C (SIGINT) is held back while a run log is being written, so that a write is never cut in half.

The flush order of :class:`~neuroplast.io.RunWriter` keeps the file consistent if the process is *killed*
at any point, but a ``KeyboardInterrupt`` raised in the middle of a flush would leave the writer's buffers
half written; closing the writer (which flushes again) could then append rows twice.  Every method of the
writer that touches the file therefore runs inside :func:`deferred_interrupts`: a SIGINT that arrives there
is remembered and raised as ``KeyboardInterrupt`` as soon as the outermost such block is done.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["deferred_interrupts", "uninterrupted"]

F = TypeVar("F", bound=Callable[..., Any])

_depth = 0
_pending: list[int] = []


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold back SIGINT for the block; raise ``KeyboardInterrupt`` after it if one arrived.

    Nested blocks hold it back until the outermost one ends.  Outside the main thread (where Python cannot
    install signal handlers) the block runs unprotected.  If the block itself raises, that exception wins.
    """
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth:  # an outer block holds it back and raises at its end
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: _pending.append(signum))
    _depth = 1
    try:
        yield
    finally:
        _depth = 0
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
        interrupted = bool(_pending)
        _pending.clear()
    if interrupted:
        raise KeyboardInterrupt


def uninterrupted(fn: F) -> F:
    """Decorator: run ``fn`` inside :func:`deferred_interrupts`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _depth and threading.current_thread() is threading.main_thread():
            return fn(*args, **kwargs)  # nested: the outer block holds SIGINT back (no context manager)
        with deferred_interrupts():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
