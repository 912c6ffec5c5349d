"""What a long command tells the user while it works: phases with timings, then steps with a rate and an ETA.

One style for every command (``neuroplast run``, ``compare``, ``analyze``): on a terminal a progress bar
(tqdm) redraws in place; when stderr is a file or a pipe, plain lines are written instead, at most one every
``interval_s`` seconds (and at the end), so that a log stays readable and holds no carriage returns.

The rate and the ETA start with the first step done: the first iteration of a run also generates and
compiles Brian2 code (runtime device), which says nothing about the speed of the ones after it.  They are
measured between *launches* only: with several iterations per launch (docs/model.md §7) the first iteration
of a launch waits for the whole launch and the others come out of it at once, so a rate taken at every
iteration would be meaningless (``1.17e+03 it/s`` when one launch runs them all).  A run whose iterations
all ran in one launch reports no rate, and every finished run says how long its steps took in all.

This module sits at the bottom of the pipeline (it imports nothing of neuroplast), so that the trainer and
the analyses, which may not import each other, share it.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "fmt_seconds"]


def fmt_seconds(s: float) -> str:
    """A duration for people: ``"42 s"``, ``"3 min 05 s"``, ``"2 h 07 min"`` (``s`` in seconds)."""
    if s < 60:
        return f"{s:.0f} s" if s >= 1 else f"{s:.2g} s"
    if s < 3600:
        return f"{s // 60:.0f} min {s % 60:02.0f} s"
    return f"{s // 3600:.0f} h {s % 3600 // 60:02.0f} min"


class Progress:
    """Progress of one command: ``total`` steps (iterations of a run, trials of an analysis).

    Parameters
    ----------
    total : int
        Steps the command ends at.
    done : int
        Steps already done (a resumed run).
    name : str
        What works (the rule's name, ``compare``, ``analyze``), the first word of every line.
    enabled : bool
        False: say nothing (``--quiet``).
    stream : file, optional
        Where to write (default ``sys.stderr``).
    interval_s : float
        Least time between two plain lines (not on a terminal), s.
    unit : str
        What a step is, in the lines and the bar: ``"iteration"`` or ``"trial"``.
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
        unit: str = "iteration",
    ) -> None:
        self.total, self.done, self.name = int(total), int(done), name
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = float(interval_s)
        self.unit = unit
        self._bar: Any = None
        self._t_phase = time.monotonic()
        self._t_start: float | None = None  # when the first step of this process began (its phase)
        self._t_first: float | None = None  # end of the first step (the first launch) of this process
        self._n_first = 0  # steps done when the first launch ended
        self._t_last = 0.0  # end of the latest launch after the first
        self._n_last = 0  # steps done when that launch began
        # when the last plain line was printed: none yet, so the first step prints one whatever the clock
        # reads (time.monotonic() may count from boot: less than interval_s on a fresh machine)
        self._last_line = -float("inf")

    def say(self, text: str) -> None:
        """One line of status (e.g. what is being built)."""
        if self.enabled:
            if self._bar is not None:
                self._bar.write(f"{self.name}: {text}", file=self.stream)
            else:
                print(f"{self.name}: {text}", file=self.stream, flush=True)

    def phase(self, text: str) -> None:
        """Start a phase that takes a while without steps (building, compiling): say what it is."""
        self._t_phase = time.monotonic()
        self.say(f"{text} ...")

    def phase_done(self, text: str) -> None:
        """End the phase started by :meth:`phase`, saying how long it took."""
        self.say(f"{text}, in {time.monotonic() - self._t_phase:.1f} s")

    def iteration(self, loss: float, extra: str = "", *, launched: bool = True) -> None:
        """One more training iteration is done; ``loss`` (and ``extra``, e.g. accuracy) of its trials.

        ``launched``: whether this iteration's trials were simulated by a launch of their own (False for
        the iterations that come out of a launch of several at once): only launches time the rate.
        """
        self.step(f"loss={loss:.4g}" + (f", {extra}" if extra else ""), launched=launched)

    def step(self, post: str = "", *, launched: bool = True) -> None:
        """One more step is done; ``post`` is shown after the count (see :meth:`iteration`)."""
        now = time.monotonic()
        self.done += 1
        if self._t_first is None:
            self._t_start, self._t_first, self._n_first = self._t_phase, now, self.done
            if self.enabled and self.unit == "iteration":
                self.say(f"first iteration done in {now - self._t_phase:.1f} s")
        elif launched:
            self._t_last, self._n_last = now, self.done - 1
        if not self.enabled:
            return
        if self.tty:
            self._tty_update(post, now)
        elif now - self._last_line >= self.interval_s or self.done == self.total:
            self._last_line = now
            post = f", {post}" if post else ""
            print(
                f"{self.name}: {self.unit} {self.done}/{self.total}{post}{self._rate(now)}",
                file=self.stream,
                flush=True,
            )

    def _rate(self, now: float) -> str:
        """``", 3.1 it/s, ETA 12 s"`` from the launches after the first; at the end the time taken."""
        if self._t_first is None:
            return ""
        if self.done >= self.total and self._t_start is not None:
            n = self.done - self._n_first + 1
            return f", {n} {self.unit}s in {fmt_seconds(now - self._t_start)}"
        # the launches after the first took dt; as many steps as the launches before the latest ran (equal
        # launches: one step each without chunks, K each with K iterations per launch)
        n = self._n_last - self._n_first + 1
        dt = self._t_last - self._t_first
        if n <= 0 or dt <= 0:
            return ""
        rate = n / dt
        left = (self.total - self.done) / rate
        return f", {rate:.3g} {self._abbrev()}/s, ETA {fmt_seconds(left)}"

    def _abbrev(self) -> str:
        return {"iteration": "it"}.get(self.unit, self.unit)

    def _tty_update(self, post: str, now: float) -> None:
        from tqdm import tqdm

        text = post + self._rate(now)
        if self._bar is None:
            # created after the first step, so that no compilation enters it; the rate is ours (launches),
            # tqdm's own (per update) is left out of the bar
            self._bar = tqdm(
                total=self.total,
                initial=self.done,
                desc=self.name,
                unit=self._abbrev(),
                leave=False,
                file=self.stream,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
            )
        else:
            self._bar.update(1)
        self._bar.set_postfix_str(text.lstrip(", "))

    def close(self) -> None:
        """Remove the bar (the caller prints the summary)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
