"""The README's first quick-start command, and its run log's content against data/quickstart_sine.json.

The digests were made on Python 3.11 with brian2 2.9.0 (``python scripts/diff_logs.py --digests``); CI runs
this test on Python 3.12 (brian2 2.10.1) and 3.13 (brian2 2.11.0) too, so that the default model's log is
the same, bit for bit, wherever neuroplast is supported (docs/benchmarks.md, "Support matrix").
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from neuroplast.io.diff import content_digests, diff_digests
from tests.helpers import ROOT, SINE, copy_file, run_cli

REFERENCE = ROOT / "data" / "quickstart_sine.json"


@pytest.mark.brian2
@pytest.mark.e2e
def test_quickstart_log_is_the_reference(tmp_path: Path) -> None:
    out = tmp_path / "sine.h5"
    proc = run_cli("run", SINE, "--out", out, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout + proc.stderr
    differences = diff_digests(json.loads(REFERENCE.read_text()), content_digests(out))
    assert differences == [], "\n".join(differences)


def test_digests_see_one_changed_bit(tmp_path: Path) -> None:
    """The digest comparison can disagree: one bit of one value, or one attribute, changes one digest."""
    from tests.helpers import write_synthetic_run

    a = write_synthetic_run(tmp_path / "a.h5")
    b = copy_file(a, tmp_path / "b.h5")
    assert diff_digests(content_digests(a), content_digests(b)) == []
    with h5py.File(b, "r+") as f:
        loss = f["trials/loss"]
        values = loss[()]
        values.view(np.uint64)[0] ^= 1  # the last bit of the first loss
        loss[...] = values
    assert diff_digests(content_digests(a), content_digests(b)) == ["trials/loss: content differs"]
    c = copy_file(a, tmp_path / "c.h5")
    with h5py.File(c, "r+") as f:
        f.attrs["seed"] = f.attrs["seed"] + 1
    assert diff_digests(content_digests(a), content_digests(c)) == ["/: content differs"]
    with h5py.File(c, "r+") as f:
        f.attrs["brian2_version"] = "0.0"  # a version: not content
        f.attrs["seed"] = f.attrs["seed"] - 1
    assert diff_digests(content_digests(a), content_digests(c)) == []
