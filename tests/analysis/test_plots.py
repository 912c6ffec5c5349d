"""``neuroplast plot``: the figures of a run log, before and after ``neuroplast compare``.

On the synthetic run logs of tests/helpers.py (``write_synthetic_run``, fixture ``runs``).
"""

from __future__ import annotations

from pathlib import Path

from neuroplast.cli import main
from tests.helpers import copy_file


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
