"""What a long command says while it works (neuroplast/progress.py): phases with timings, a rate and an ETA
timed by launches, plain lines (no carriage returns) when stderr is not a terminal, silence with --quiet."""

from __future__ import annotations

import io

import pytest

import neuroplast.progress as progress_module
from neuroplast.progress import Progress, fmt_seconds


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    """A monotonic clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", c)
    return c


def _lines(out: io.StringIO, word: str = "iteration") -> list[str]:
    return [line for line in out.getvalue().splitlines() if f" {word} " in line and "/" in line]


def test_plain_lines_when_not_a_terminal(clock: _Clock) -> None:
    out = io.StringIO()
    p = Progress(5, 0, "eprop", stream=out, interval_s=0.0)
    p.phase("building the network")
    clock.now += 2.0
    p.phase_done("network ready")
    p.phase("training")
    for k in range(5):
        clock.now += 30.0 if k == 0 else 0.5  # the first iteration compiles
        p.iteration(10.0 - k, "accuracy=0.50")
    p.close()
    text = out.getvalue()
    assert "\r" not in text  # a log file gets lines, not a redrawn bar
    lines = text.splitlines()
    assert lines[0] == "eprop: building the network ..." and lines[1] == "eprop: network ready, in 2.0 s"
    assert "eprop: first iteration done in 30.0 s" in lines
    its = _lines(out)
    assert "ETA" not in its[0]  # the first iteration (it compiles on a runtime device) gives no rate
    assert its[1] == "eprop: iteration 2/5, loss=9, accuracy=0.50, 2 it/s, ETA 2 s"  # 1 iteration in 0.5 s
    assert its[-1] == "eprop: iteration 5/5, loss=6, accuracy=0.50, 5 iterations in 32 s"


def test_one_launch_of_all_iterations_reports_no_rate(clock: _Clock) -> None:
    """Evidence of issue 28: "1.17e+03 it/s" when the iterations after the first come out of its launch."""
    out = io.StringIO()
    p = Progress(4, 0, "eprop", stream=out, interval_s=0.0)
    clock.now += 8.0  # the launch of all four
    p.iteration(1.0, launched=True)
    for _ in range(3):
        clock.now += 0.001
        p.iteration(1.0, launched=False)
    its = _lines(out)
    assert all("it/s" not in line and "ETA" not in line for line in its)
    assert its[-1].endswith(", 4 iterations in 8 s")


def test_rate_timed_by_launches_of_several_iterations(clock: _Clock) -> None:
    """Launches of 5 iterations, 2 s each: 2.5 it/s, whatever the spacing of the iterations inside."""
    out = io.StringIO()
    p = Progress(15, 0, "eprop", stream=out, interval_s=0.0)
    for k in range(15):
        launched = k % 5 == 0
        clock.now += 2.0 if launched else 0.001
        p.iteration(1.0, launched=launched)
    its = _lines(out)
    assert its[5].endswith(", 2.5 it/s, ETA 4 s")  # iteration 6, the second launch: 9 left at 2.5 it/s
    assert all("e+0" not in line for line in its)


def test_plain_lines_are_rate_limited() -> None:
    out = io.StringIO()
    p = Progress(100, 0, "eprop", stream=out, interval_s=3600.0)
    for _ in range(100):
        p.iteration(1.0)
    assert len(_lines(out)) == 2  # the first and the last, nothing in between within the interval


def test_trials_of_an_analysis(clock: _Clock) -> None:
    out = io.StringIO()
    p = Progress(3, 0, "compare", stream=out, interval_s=0.0, unit="trial")
    for _ in range(3):
        clock.now += 1.0
        p.step()
    assert _lines(out, "trial") == [
        "compare: trial 1/3",
        "compare: trial 2/3, 1 trial/s, ETA 1 s",
        "compare: trial 3/3, 3 trials in 3 s",
    ]


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


def test_fmt_seconds() -> None:
    assert [fmt_seconds(s) for s in (0.25, 42.0, 185.0, 7620.0)] == [
        "0.25 s",
        "42 s",
        "3 min 05 s",
        "2 h 07 min",
    ]
