"""``neuroplast plot``: the figures of a run log, before and after ``neuroplast compare``.

On the synthetic run logs of tests/helpers.py (``write_synthetic_run``, fixture ``runs``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from neuroplast.analysis import plots
from neuroplast.analysis.compare import LOSS_RTOL, compare_run, replay_context, replay_trial
from neuroplast.analysis.plots import plot_run
from neuroplast.cli import main
from neuroplast.io import open_run
from tests.helpers import copy_file, write_synthetic_run


def _is_png(p: Path) -> bool:
    return p.is_file() and p.stat().st_size > 1000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot(runs, tmp_path, capsys) -> None:
    cls = copy_file(runs["cls"], tmp_path / "cls.h5")
    assert main(["plot", str(cls)]) == 0  # before compare: no alignment figure, a note says why
    out = capsys.readouterr().out
    assert "neuroplast compare" in out
    d = tmp_path / "cls_plots"
    assert all(_is_png(d / n) for n in ("loss.png", "factorization.png", "raster.png"))
    assert not (d / "alignment.png").exists()
    path = copy_file(runs["rec"], tmp_path / "rec.h5")
    assert main(["compare", str(path), "--quiet"]) == 0
    out_dir = tmp_path / "figs"
    assert main(["plot", str(path), "--out", str(out_dir), "--trial", "-1"]) == 0
    for name in ("loss.png", "alignment.png", "factorization.png", "raster.png"):
        assert _is_png(out_dir / name), name


# ------------------------------------------------------------------ what each figure shows
@pytest.fixture(scope="module")
def more_runs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("more")
    return {
        "bptt": write_synthetic_run(d / "bptt.h5", rule="bptt"),
        "in_trial": write_synthetic_run(d / "in_trial.h5", update_every=20),
        "cls4": write_synthetic_run(d / "cls4.h5", kind="classification", n_iter=4, batch=4),
    }


def _texts(ax) -> str:
    return " ".join(t.get_text() for t in ax.texts)


@pytest.mark.parametrize("name", ["rec", "cls", "bptt", "in_trial"])
def test_plot_run_gives_no_warning(runs, more_runs, tmp_path, name) -> None:
    path = copy_file({**runs, **more_runs}[name], tmp_path / f"{name}.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = plot_run(path, tmp_path / "figs")
    assert all(_is_png(p) for p in res["written"])


def test_loss_figure_says_sum_and_shows_accuracy(runs, more_runs, tmp_path, figures) -> None:
    plot_run(copy_file(runs["rec"], tmp_path / "rec.h5"), tmp_path / "a")
    (ax,) = figures["loss.png"].axes
    assert "sum over the trial's steps" in ax.get_ylabel()
    plot_run(copy_file(more_runs["cls4"], tmp_path / "cls4.h5"), tmp_path / "b")
    ax, ax2 = figures["loss.png"].axes
    assert "accuracy" in ax2.get_ylabel()
    (line,) = [ln for ln in ax2.get_lines() if ln.get_label().startswith("accuracy")]
    run = open_run(tmp_path / "cls4.h5")
    it, acc = run.trials["iteration"], run.trials["accuracy"]
    expected = [acc[it == i].mean() for i in np.unique(it)]
    np.testing.assert_allclose(line.get_ydata(), expected, atol=1e-12)


def test_alignment_explains_kept_part_and_names_exact_panels(runs, tmp_path, figures) -> None:
    path = copy_file(runs["rec"], tmp_path / "rec.h5")
    compare_run(path, progress=False)
    plot_run(path, tmp_path / "figs")
    fig = figures["alignment.png"]
    (legend,) = fig.legends
    assert plots.KEPT_LABEL in [t.get_text() for t in legend.get_texts()] and "dashed" in plots.KEPT_LABEL
    top = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert "output" not in top and "bias" not in top  # e-prop's readout gradient is exact: named, not drawn
    assert "(not drawn): output: eprop; bias: eprop" in fig._suptitle.get_text()
    assert "exact" not in _texts(top["recurrent"])
    labels = [ln.get_label() for ln in top["recurrent"].get_lines()]
    assert any(lab.startswith("eprop") for lab in labels) and plots.KEPT_LABEL in labels
    assert not any(ln.get_linestyle() == ":" for ax in fig.axes for ln in ax.get_lines())


def test_alignment_shows_keep_reset_comparison(runs, tmp_path, figures) -> None:
    path = copy_file(runs["rec"], tmp_path / "rec.h5")
    compare_run(path, keep_reset=True, progress=False)
    plot_run(path, tmp_path / "figs")
    fig = figures["alignment.png"]
    dotted = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert dotted and "bptt_full" in fig._suptitle.get_text()


def test_bptt_run_before_compare(more_runs, tmp_path, capsys) -> None:
    path = copy_file(more_runs["bptt"], tmp_path / "bptt.h5")
    assert plots.alignment_skip_reason(open_run(path)) is not None
    assert main(["plot", str(path), "--out", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert "note: alignment.png not written: the run trained with exact BPTT" in out
    assert "wrote 3 figures" in out and "alignment" not in out.splitlines()[-1]
    assert not (tmp_path / "figs" / "alignment.png").exists()
    assert main(["compare", str(path), "--quiet"]) == 0  # now the logged BPTT is aligned with the replay
    assert plots.alignment_skip_reason(open_run(path)) is None


def test_in_trial_run_replays_the_logged_in_trial_weights(more_runs, tmp_path, capsys) -> None:
    path = copy_file(more_runs["in_trial"], tmp_path / "it.h5")
    run = open_run(path)
    ctx = replay_context(run)
    for k in range(run.n_trials):
        readout, loss = plots.replay_in_trial(ctx, k)
        assert readout.in_trial
        assert abs(loss - run.trials["loss"][k]) <= LOSS_RTOL * abs(run.trials["loss"][k])
    # the comparator can disagree: the trial's starting weights alone do not give the logged loss
    tr = replay_trial(ctx, run.n_trials - 1)
    assert tr is not None and tr.loss_rel_diff > 1e-6
    assert main(["plot", str(path), "--out", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert "neuroplast compare" not in out and "no weights" not in out
    assert "factorization.png not written: the weights change inside each trial" in out
    assert "wrote 2 figures" in out and _is_png(tmp_path / "figs" / "raster.png")
