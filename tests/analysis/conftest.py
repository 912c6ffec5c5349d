"""The synthetic run logs that the analysis tests read, written once for tests/analysis (tests that
change a file work on a copy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroplast.analysis import analyze_plots, plots
from tests.helpers import write_synthetic_run


@pytest.fixture(scope="package")
def runs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("runs")
    return {
        "rec": write_synthetic_run(d / "rec.h5"),
        "norec": write_synthetic_run(d / "norec.h5", rec_scale=0.0),
        "cls": write_synthetic_run(d / "cls.h5", kind="classification"),
    }


@pytest.fixture
def figures(monkeypatch) -> dict[str, object]:
    """Every figure the plot functions save, by file name (still open, for its artists)."""
    seen: dict[str, object] = {}

    def keep(fig, path):
        seen[Path(path).name] = fig
        fig.savefig(path, dpi=40)
        return Path(path)

    monkeypatch.setattr(plots, "_save", keep)
    monkeypatch.setattr(analyze_plots, "_save", keep)
    yield seen
    plots._pyplot().close("all")
