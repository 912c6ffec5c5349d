"""What ``neuroplast run`` prints: progress lines in iteration means on a pipe, and a final line that says
the same numbers (issue 28: progress 126.7 → 103.6 while the final line said 82.5 → 90.0, first and last
*trial*).  Trained on the NumPy reference device: no Brian2, a second or so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neuroplast.io import open_run
from tests.helpers import SMALL_EVIDENCE_TOML, run_cli, write_text

#: The small evidence task on the NumPy device, in batches of 3 trials that differ (the task draws every
#: trial), so that an iteration's mean loss is not its first or last trial's.
SMALL = {
    'device = "cpp_standalone"': 'device = "numpy"',
    "iterations = 4": "iterations = 3",
    "batch_size = 1": "batch_size = 3",
}


@pytest.mark.e2e
def test_final_line_says_iteration_means_like_the_progress_lines(tmp_path: Path) -> None:
    text = SMALL_EVIDENCE_TOML
    for old, new in SMALL.items():
        assert old in text
        text = text.replace(old, new, 1)
    work = write_text(tmp_path, "small.toml", text)
    proc = run_cli("run", "small.toml", "--out", "small.h5", cwd=work, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr  # a pipe gets plain lines
    progress = {
        int(m.group(1)): float(m.group(2))
        for m in re.finditer(r"^eprop-random: iteration (\d+)/3, loss=([0-9.e+-]+)", proc.stderr, re.M)
    }
    assert 1 in progress and 3 in progress, proc.stderr
    m = re.search(
        r"loss ([0-9.e+-]+) -> ([0-9.e+-]+) \(mean over the first and the last iteration's", proc.stdout
    )
    assert m, proc.stdout
    first, last = float(m.group(1)), float(m.group(2))
    run = open_run(work / "small.h5")
    loss, it = run.trials["loss"], run.trials["iteration"]
    # printed with 6 (final line) and 4 (progress) significant digits: equal to that rounding
    for shown, i in ((first, 0), (last, 2)):
        assert shown == pytest.approx(loss[it == i].mean(), rel=5e-6)
    assert progress[1] == pytest.approx(first, rel=5e-4) and progress[3] == pytest.approx(last, rel=5e-4)
    # the test can fail: the first and the last trial's losses (the old final line) are other numbers
    assert abs(loss[0] - first) > 1e-3 * first and abs(loss[-1] - last) > 1e-3 * last, loss
    assert re.search(r"^eprop-random: iteration 3/3, .*3 iterations in ", proc.stderr, re.M), proc.stderr
