"""What ``neuroplast run`` says while it works: phases with timings, an ETA from the first trained
iteration, plain lines (no carriage returns) when stderr is not a terminal, silence with --quiet."""

from __future__ import annotations

import io

from neuroplast.training.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    p = Progress(5, 0, "eprop", stream=out, interval_s=0.0)
    p.phase("building the network")
    p.phase_done("network ready")
    for k in range(5):
        p.iteration(10.0 - k, "accuracy=0.50")
    p.close()
    text = out.getvalue()
    assert "\r" not in text  # a log file gets lines, not a redrawn bar
    lines = text.splitlines()
    assert lines[0] == "eprop: building the network ..." and lines[1].startswith("eprop: network ready, in ")
    assert any(line.startswith("eprop: first iteration done in ") for line in lines)
    assert lines[-1].startswith("eprop: iteration 5/5, loss=6, accuracy=0.50, ") and "ETA" in lines[-1]
    first = next(line for line in lines if "iteration 1/5" in line)
    assert "ETA" not in first  # the first iteration (it compiles on a runtime device) gives no rate


def test_plain_lines_are_rate_limited() -> None:
    out = io.StringIO()
    p = Progress(100, 0, "eprop", stream=out, interval_s=3600.0)
    for _ in range(100):
        p.iteration(1.0)
    iteration_lines = [line for line in out.getvalue().splitlines() if "iteration" in line and "/" in line]
    assert len(iteration_lines) == 2  # the first and the last, nothing in between within the interval


def test_a_bar_on_a_terminal_and_silence_when_disabled() -> None:
    tty = _Tty()
    p = Progress(3, 0, "eprop", stream=tty)
    for _ in range(3):
        p.iteration(1.0)
    p.close()
    assert "\r" in tty.getvalue()  # tqdm redraws in place
    quiet = io.StringIO()
    q = Progress(3, 0, "eprop", enabled=False, stream=quiet)
    q.phase("building")
    for _ in range(3):
        q.iteration(1.0)
    assert quiet.getvalue() == ""
