"""A rule from another package: examples/plugin_rule registers ``eprop-sign`` through the entry point,
and ``neuroplast run --rule eprop-sign`` trains with it (needs ``pip install ./examples/plugin_rule``).
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.io import open_run
from tests.helpers import SINE, run_cli


@pytest.mark.brian2
@pytest.mark.e2e
def test_plugin_rule_through_entry_point(tmp_path):
    """The example package (examples/plugin_rule) registers `eprop-sign` via the entry point."""
    out = tmp_path / "sign.h5"
    r = run_cli(
        "run",
        str(SINE),
        "--rule",
        "eprop-sign",
        "--iterations",
        "2",
        "--out",
        str(out),
        "--quiet",
        cwd=tmp_path,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr
    run = open_run(out)
    assert "eprop-sign" in run.projection("recurrent").estimators
    w_out = run.projection("output").weights[0]
    fb = run.projection("feedback").weights[0]
    expected = np.mean(np.abs(w_out)) * np.sign(w_out)
    np.testing.assert_allclose(fb, expected, rtol=1e-15, atol=0)
