"""What ``neuroplast run`` tells the user while it works: building/compiling, then training with an ETA.

On a terminal a progress bar (tqdm) redraws in place; when stderr is a file or a pipe, plain lines are
written instead, at most one every ``interval_s`` seconds (and at the end), so that a log stays readable.
The ETA starts with the first *trained* iteration: the first iteration of a run also generates and
compiles Brian2 code (runtime device), which says nothing about the speed of the ones after it.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress"]


def _fmt_s(s: float) -> str:
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s // 60:.0f} min {s % 60:02.0f} s"
    return f"{s // 3600:.0f} h {s % 3600 // 60:02.0f} min"


class Progress:
    """Progress of one training run.

    Parameters
    ----------
    total : int
        Iterations the run ends at.
    done : int
        Iterations already done (a resumed run).
    name : str
        What is trained (the rule's name), the first word of every line.
    enabled : bool
        False: say nothing (``--quiet``).
    stream : file, optional
        Where to write (default ``sys.stderr``).
    interval_s : float
        Least time between two plain lines (not on a terminal).
    """

    def __init__(
        self,
        total: int,
        done: int,
        name: str,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval_s: float = 10.0,
    ) -> None:
        self.total, self.done, self.name = int(total), int(done), name
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = float(interval_s)
        self._bar: Any = None
        self._t_phase = time.monotonic()
        self._t_first: float | None = None  # end of the first iteration of this process
        self._n_first = 0
        self._last_line = 0.0

    def say(self, text: str) -> None:
        """One line of status (e.g. what is being built)."""
        if self.enabled:
            if self._bar is not None:
                self._bar.write(text, file=self.stream)
            else:
                print(f"{self.name}: {text}", file=self.stream, flush=True)

    def phase(self, text: str) -> None:
        """Start a phase that takes a while without iterations (building, compiling): say what it is."""
        self._t_phase = time.monotonic()
        self.say(f"{text} ...")

    def phase_done(self, text: str) -> None:
        """End the phase started by :meth:`phase`, saying how long it took."""
        self.say(f"{text}, in {time.monotonic() - self._t_phase:.1f} s")

    def iteration(self, loss: float, extra: str = "") -> None:
        """One more iteration is done; ``loss`` (and ``extra``, e.g. accuracy) of its trials."""
        self.done += 1
        if not self.enabled:
            return
        now = time.monotonic()
        if self._t_first is None:
            self._t_first, self._n_first = now, self.done
            self.say(f"first iteration done in {now - self._t_phase:.1f} s")
        post = f"loss={loss:.4g}" + (f", {extra}" if extra else "")
        if self.tty:
            self._tty_update(post)
        elif now - self._last_line >= self.interval_s or self.done == self.total:
            self._last_line = now
            print(
                f"{self.name}: iteration {self.done}/{self.total}, {post}{self._eta(now)}",
                file=self.stream,
                flush=True,
            )

    def _eta(self, now: float) -> str:
        n = self.done - self._n_first
        if self._t_first is None or n <= 0:
            return ""
        rate = n / (now - self._t_first)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        return f", {rate:.3g} it/s, ETA {_fmt_s(left)}"

    def _tty_update(self, post: str) -> None:
        from tqdm import tqdm

        if self._bar is None:
            # created after the first iteration, so that its rate and ETA exclude compilation
            self._bar = tqdm(
                total=self.total, initial=self.done, desc=self.name, unit="it", leave=False, file=self.stream
            )
        else:
            self._bar.update(1)
        self._bar.set_postfix_str(post)

    def close(self) -> None:
        """Remove the bar (the caller prints the summary)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
