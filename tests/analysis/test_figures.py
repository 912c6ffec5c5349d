"""What the figures show, checked on their artists (issue 28): no empty panels, y labels, legend swatches
that can be seen, legends that say which statistic and cover no reference line, an estimator never hidden
under the dashed "kept part" curve, whole-number iteration ticks, no curve exactly under another."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D

from neuroplast.analysis import analyze_plots, plots
from neuroplast.analysis.analyze import analyze_run
from neuroplast.analysis.compare import compare_run
from neuroplast.analysis.plots import plot_run
from tests.helpers import copy_file


@pytest.fixture(scope="module")
def compared(runs, tmp_path_factory) -> dict[str, Path]:
    """Copies of the regression and classification runs with exact BPTT written by compare."""
    d = tmp_path_factory.mktemp("compared")
    out = {}
    for name in ("rec", "cls"):
        out[name] = copy_file(runs[name], d / f"{name}.h5")
        compare_run(out[name], progress=False)
    return out


def _data_lines(ax) -> list[Line2D]:
    """Lines that show data (not axhline/axvline references, which span the axes in axes coordinates)."""
    return [ln for ln in ax.get_lines() if ln.get_transform() == ax.transData]


def test_alignment_has_no_empty_panel_and_shows_eprop_under_the_kept_part(
    compared, tmp_path, figures
) -> None:
    plot_run(compared["rec"], tmp_path / "figs")
    fig = figures["alignment.png"]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["input", "recurrent"]  # e-prop's output and bias gradients are exact: no panels
    for ax in fig.axes:
        assert _data_lines(ax) and not ax.texts, "an empty panel"
    assert "output: eprop; bias: eprop" in fig._suptitle.get_text()
    for ax in fig.axes:
        lines = {ln.get_label(): ln for ln in _data_lines(ax)}
        kept = lines.pop(plots.KEPT_LABEL)
        (label, eprop), *_ = lines.items()
        # symmetric e-prop is the kept part: the legend says so, and its line is wider, beneath the dashes
        assert label == "eprop (= the kept part on every trial)"
        np.testing.assert_array_equal(eprop.get_ydata(), kept.get_ydata())
        assert eprop.get_linewidth() >= 2 * kept.get_linewidth() and eprop.get_zorder() < kept.get_zorder()


def test_factorization_panels_have_y_labels(compared, tmp_path, figures) -> None:
    plot_run(compared["rec"], tmp_path / "figs")
    for ax in figures["factorization.png"].axes:
        assert ax.get_ylabel(), ax.get_title()


def test_loss_ticks_are_whole_iterations(compared, tmp_path, figures) -> None:
    plot_run(compared["cls"], tmp_path / "figs")
    ax = figures["loss.png"].axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def _composite_over_white(color, alpha: float) -> np.ndarray:
    return alpha * np.array(to_rgb(color)) + (1 - alpha) * np.ones(3)


@pytest.mark.parametrize("which", ["rec", "cls"])
def test_analysis_figures_legends(compared, tmp_path, figures, which) -> None:
    res = analyze_run(compared[which], progress=False)
    analyze_plots.plot_analysis(res, tmp_path / "figs")
    # gap_time: every window has a swatch that shows on white (issue: the "gaps" swatch was invisible)
    legend = figures["gap_time.png"].axes[0].get_legend()
    windows = {lab for lab, _, _ in res["events"]["windows"]}
    swatches = {p.get_label(): p for p in legend.get_patches()}
    assert set(swatches) == windows
    for p in swatches.values():
        seen = _composite_over_white(p.get_facecolor()[:3], p.get_alpha())
        assert np.max(1 - seen) >= 0.2, p.get_label()  # differs from white by ≥ 20 % in some channel
    assert not any(lab.startswith("phase") for lab in windows)  # words, not "phase 0-0.25"
    if res["task_kind"] == "regression":  # the sine target's period in quarters, in ms, named in the title
        assert all(re.fullmatch(r"\d+–\d+ ms", lab) for lab in windows), windows
        assert "period" in legend.get_title().get_text()
    # neurons: the legend says which statistic
    for ax in figures["neurons.png"].axes:
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert texts and all("mean cosine" in t and "n = " in t for t in texts)
    # gap_time: the legends sit beside the curves, not over them
    fig = figures["gap_time.png"]
    fig.canvas.draw()
    for ax in fig.axes[:2]:
        box = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
        assert box.x0 >= ax.get_window_extent(fig.canvas.get_renderer()).x1
    # counterfactual: no legend covers a reference line
    fig = figures["counterfactual.png"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        box = ax.get_legend().get_window_extent(renderer)
        refs = [ln for ln in ax.get_lines() if ln.get_transform() != ax.transData]
        assert refs or ax is not fig.axes[0]
        for ln in refs:
            y = ax.transData.transform((0, ln.get_ydata()[0]))[1]
            x0, x1 = ax.get_window_extent(renderer).x0, ax.get_window_extent(renderer).x1
            covered = box.y0 <= y <= box.y1 and box.x0 < x1 and box.x1 > x0
            assert not covered, ln.get_label()


def test_counterfactual_equal_reference_lines_both_show(compared, tmp_path, figures) -> None:
    """A random-feedback rule's cosine is the random B's: the earlier line is drawn wide beneath the other."""
    res = analyze_run(compared["rec"], progress=False)
    cf = res["counterfactual"]
    cf["random"]["hidden"]["cosine"] = np.array(cf["rule"]["hidden"]["cosine"], copy=True)
    analyze_plots.plot_counterfactual(res, tmp_path)
    ax = figures["counterfactual.png"].axes[0]
    refs = {ln.get_label().split(" (")[0]: ln for ln in ax.get_lines() if ln.get_transform() != ax.transData}
    rule, rand = refs["logged rule"], refs["random fixed B"]
    assert rule.get_ydata()[0] == rand.get_ydata()[0]  # the same number, drawn twice
    assert rule.get_linewidth() >= 2 * rand.get_linewidth()
    assert refs["least-squares fixed B*"].get_linewidth() == rand.get_linewidth()  # others stay thin
