"""``RunLog.summary`` (``neuroplast inspect``): status, the loss (and accuracy) curve per decile of the
iterations, in-trial learning, stored estimators and whether ``neuroplast compare`` ran.

On synthetic run logs (``write_synthetic_run``); ``compare`` having run is tested in
tests/analysis/test_plots.py, where the analyses are.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from neuroplast.cli import main
from neuroplast.io import open_run
from tests.helpers import write_synthetic_run


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inspect")
    return {
        "rec": write_synthetic_run(d / "rec.h5", n_iter=12),
        "cls": write_synthetic_run(d / "cls.h5", kind="classification", n_iter=5, batch=4),
        "killed": write_synthetic_run(d / "killed.h5", partial_iteration=True),
    }


def test_loss_table_is_the_mean_per_group_of_iterations(logs) -> None:
    run = open_run(logs["rec"])
    table = run.loss_table()
    assert len(table) == 10 and table[0]["first"] == 0 and table[-1]["last"] == 11
    assert sum(r["trials"] for r in table) == run.n_trials
    it, loss = run.trials["iteration"], run.trials["loss"]
    for r in table:  # independent recomputation, trial by trial
        vals = [float(v) for i, v in zip(it, loss, strict=True) if r["first"] <= i <= r["last"]]
        assert r["loss"] == pytest.approx(sum(vals) / len(vals), rel=1e-12)  # same sum, other order
    text = run.summary()
    assert "loss curve (10 groups of iterations)" in text and "sum over a trial's steps" in text
    # the first line as `run`'s last line and the progress: iteration means, first / last / min
    per_it = {i: [float(v) for j, v in zip(it, loss, strict=True) if j == i] for i in sorted(set(it))}
    means = [sum(v) / len(v) for v in per_it.values()]
    line = next(x for x in text.splitlines() if x.startswith("loss (sum"))
    words = line.replace(",", " ").split()
    first, last, low = (float(words[words.index(k) + 1]) for k in ("first", "last", "min"))
    assert [first, last, low] == pytest.approx([means[0], means[-1], min(means)], rel=1e-5)  # 6 digits
    assert f"(iteration {means.index(min(means))})" in line
    rows = [line.split() for line in text.splitlines() if line.startswith("  ")]
    assert rows[0] == ["iterations", "trials", "mean", "loss"]
    ranges = [f"{r['first']}-{r['last']}" if r["last"] > r["first"] else str(r["first"]) for r in table]
    assert [row[0] for row in rows[1:]] == ranges and ranges[:2] == ["0-1", "2-3"]
    assert [float(row[2]) for row in rows[1:]] == pytest.approx([r["loss"] for r in table], rel=1e-4)
    assert "status: finished" in text and "accuracy" not in text
    assert "learning inside trials: no" in text
    assert "estimators logged in training: eprop" in text
    assert "neuroplast compare: not run yet" in text


def test_classification_shows_accuracy(logs, capsys) -> None:
    run = open_run(logs["cls"])
    acc = run.trials["accuracy"]
    assert set(np.unique(acc)) <= {0.0, 1.0}
    table = run.loss_table()
    assert len(table) == 5  # fewer iterations than deciles: one row each
    for r in table:
        sel = (run.trials["iteration"] >= r["first"]) & (run.trials["iteration"] <= r["last"])
        assert r["accuracy"] == pytest.approx(acc[sel].mean(), abs=1e-12)
    assert main(["inspect", str(logs["cls"])]) == 0
    out = capsys.readouterr().out
    k = acc.size // 5
    assert f"accuracy: {acc[:k].mean():.2f} (first 20 % of trials) -> {acc[-k:].mean():.2f}" in out
    assert "mean accuracy" in out


def test_status_killed_and_diverged(logs, tmp_path) -> None:
    assert "status: not finished: killed" in open_run(logs["killed"]).summary()
    assert open_run(logs["killed"]).status() == "killed"
    div = tmp_path / "div.h5"
    div.write_bytes(logs["killed"].read_bytes())
    with h5py.File(div, "r+") as f:
        f.attrs["diverged"] = np.int8(1)
    run = open_run(div)
    assert run.diverged and run.status() == "diverged" and "status: diverged" in run.summary()
