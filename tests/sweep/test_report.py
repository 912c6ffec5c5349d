"""``neuroplast sweep-report`` over a sweep folder whose points cannot all be read (no Dask, no Brian2).

A point the manifest lists as done whose run log is damaged or gone keeps its row (state ``unreadable``,
the reason in ``error``), is warned about on stderr (one line each) and makes the command exit 1; a folder
whose done points are all readable exits 0 with nothing on stderr.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from neuroplast.cli import main
from tests.helpers import write_synthetic_run

pytest.importorskip("pyarrow")


def _sweep_folder(folder: Path, logs: dict[str, str]) -> Path:
    """A sweep folder over ``simulation.seed`` whose points (name → ``good``, ``garbage``, ``gone``,
    ``failed``) have the logs that the word says."""
    folder.mkdir()
    points = []
    for i, (name, what) in enumerate(logs.items()):
        log = folder / f"{name}.h5"
        if what == "good":
            write_synthetic_run(log, seed=i)
        elif what == "garbage":
            log.write_bytes(b"not an HDF5 file")
        points.append(
            {
                "name": name,
                "params": {"simulation.seed": i},
                "log": log.name,
                "config": f"{name}.toml",
                "state": "failed" if what == "failed" else "done",
                "error": "diverged at iteration 2: loss" if what == "failed" else None,
                "wall_s": 1.0,
                "attempts": 1,
            }
        )
    manifest = {
        "format": "neuroplast-sweep",
        "version": 1,
        "sweep_file": "s.toml",
        "base": "b.toml",
        "axes": ["simulation.seed"],
        "points": points,
    }
    (folder / "sweep.json").write_text(json.dumps(manifest))
    return folder


def _rows(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "report" / "report.csv", newline="", encoding="utf-8") as fh:
        return {r["name"]: r for r in csv.DictReader(fh)}


@pytest.mark.parametrize(
    ("logs", "status", "unreadable"),
    [
        ({"a": "good", "b": "good"}, 0, []),
        ({"a": "good", "b": "garbage"}, 1, ["b"]),
        ({"a": "good", "b": "gone", "c": "failed"}, 1, ["b"]),
        ({"a": "garbage", "b": "gone"}, 1, ["a", "b"]),  # no point could be read
    ],
    ids=["all-read", "one-damaged", "one-gone", "none-read"],
)
def test_unreadable_points_are_warned_about_and_exit_1(tmp_path, capsys, logs, status, unreadable) -> None:
    folder = _sweep_folder(tmp_path / "sweep", logs)
    assert main(["sweep-report", str(folder)]) == status
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == len(unreadable), err
    for line, name in zip(lines, unreadable, strict=True):
        assert line.startswith(f"neuroplast sweep-report: warning: {name}.h5: not read ("), line
    rows = _rows(folder)
    assert list(rows) == list(logs)  # every point keeps its row
    for name, what in logs.items():
        state = rows[name]["state"]
        if name in unreadable:
            assert state == "unreadable" and rows[name]["error"].startswith(f"{name}.h5: not read (")
            assert rows[name]["final_loss"] == ""
        else:
            assert state == ("failed" if what == "failed" else "done")
    if unreadable:
        assert f"{len(unreadable)} unreadable" in out


def test_loss_curves_whole_iterations_and_no_curve_hidden(tmp_path, monkeypatch) -> None:
    """Three iterations (ticks at 1, 2, 3 only) and two rules with identical curves: both stay visible."""
    import numpy as np

    from neuroplast.analysis import plots
    from neuroplast.sweep import report
    from neuroplast.sweep.spec import SEED_KEY

    seen = {}

    def keep(fig, path):
        seen["fig"] = fig
        return path

    monkeypatch.setattr(plots, "_save", keep)
    curve = np.array([3.0, 2.0, 1.5])
    rows = [
        {"name": f"{rule}-{seed}", "training.rule": rule, SEED_KEY: seed}
        for rule in ("eprop", "eprop-random", "bptt")
        for seed in (0, 1)
    ]
    curves = {r["name"]: curve * (0.5 if r["training.rule"] == "bptt" else 1.0) for r in rows}
    report._plot_curves(rows, curves, ["training.rule", SEED_KEY], tmp_path)
    (ax,) = seen["fig"].axes
    lo, hi = ax.get_xlim()
    assert all(float(t).is_integer() for t in ax.get_xticks() if lo <= t <= hi)
    lines = [ln for ln in ax.get_lines()]
    first, second = lines[0], lines[1]
    np.testing.assert_array_equal(first.get_ydata(), second.get_ydata())  # the same curve twice
    assert "= rule=eprop" in second.get_label()
    assert second.get_linestyle() != first.get_linestyle() and second.get_linewidth() < first.get_linewidth()
    plots._pyplot().close("all")
