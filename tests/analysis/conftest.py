"""The synthetic run logs that the analysis tests read, written once for tests/analysis (tests that
change a file work on a copy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_synthetic_run


@pytest.fixture(scope="package")
def runs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("runs")
    return {
        "rec": write_synthetic_run(d / "rec.h5"),
        "norec": write_synthetic_run(d / "norec.h5", rec_scale=0.0),
        "cls": write_synthetic_run(d / "cls.h5", kind="classification"),
    }
