"""scripts/results.py (docs/results.md): choose a learning rate per rule from a grid sweep folder, summarize
a folder so that its run logs can go, and report the table and figure from the summary alone."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from neuroplast.io import open_run
from tests.helpers import write_synthetic_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results_script():
    spec = importlib.util.spec_from_file_location("results_script", ROOT / "scripts" / "results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sweep(folder: Path, points: list[tuple[str, float, int]], kind: str) -> Path:
    """A sweep folder as ``neuroplast sweep`` leaves it: one synthetic run log per (rule, lr, seed) point
    (the point's learning rate is the manifest's; the runs differ by their seeds) and sweep.json."""
    folder.mkdir()
    manifest = {"format": "neuroplast-sweep", "version": 1, "points": []}
    for rule, lr, seed in points:
        name = f"rule-{rule}_lr-{lr:g}_seed-{seed}"
        log = write_synthetic_run(folder / f"{name}.h5", kind=kind, rule=rule, seed=seed, n_iter=3)
        (folder / f"{name}.toml").write_text(open_run(log).config_toml)  # the point's resolved config
        params = {"training.rule": rule, "training.learning_rate": lr, "simulation.seed": seed}
        manifest["points"].append(
            {
                "name": name,
                "params": params,
                "log": f"{name}.h5",
                "config": f"{name}.toml",
                "state": "done",
                "wall_s": 1.0 + seed,
            }
        )
    manifest["points"].append({"name": "never-ran", "params": {}, "log": "x.h5", "state": "pending"})
    (folder / "sweep.json").write_text(json.dumps(manifest))
    return folder


def test_choose_takes_the_rate_with_the_lower_final_error_and_summaries_replace_the_logs(
    tmp_path, results_script, capsys
):
    folder = _sweep(
        tmp_path / "grid", [("eprop", 1e-4, 0), ("eprop", 3e-4, 1), ("bptt", 1e-4, 2)], "regression"
    )
    direct = results_script._collect(folder)
    finals = {lr: res[0]["final"] for (rule, lr), res in direct.items() if rule == "eprop"}
    assert finals[1e-4] != pytest.approx(finals[3e-4], rel=1e-6)  # the two seeds' runs must differ
    want = min(finals, key=finals.get)
    assert results_script.choose([folder]) == {"eprop": want, "bptt": 1e-4}
    assert '"training.learning_rate" = [' in capsys.readouterr().out

    assert sorted(results_script.summarize(folder)) == sorted(p for p in direct_names(folder))
    assert results_script.summarize(folder) == []  # nothing new: already summarized
    for log in folder.glob("*.h5"):
        log.unlink()
    summarized = results_script._collect(folder)
    assert summarized.keys() == direct.keys()
    for key, res in direct.items():
        for a, b in zip(res, summarized[key], strict=True):
            # JSON keeps a float64 exactly (repr round trip): the curves are the same numbers
            np.testing.assert_array_equal(a["curve"], b["curve"])
            assert (a["seed"], a["wall_s"]) == (b["seed"], b["wall_s"])


def direct_names(folder: Path) -> list[str]:
    return [
        p["name"] for p in json.loads((folder / "sweep.json").read_text())["points"] if p["state"] == "done"
    ]


def test_report_over_two_folders_prints_one_row_per_rule_and_rate_and_draws_the_figure(
    tmp_path, results_script, capsys
):
    a = _sweep(tmp_path / "a", [("eprop", 1e-3, 0), ("eprop", 1e-3, 1)], "classification")
    b = _sweep(tmp_path / "b", [("eprop-random", 1e-3, 2)], "classification")
    shutil.rmtree(tmp_path / "figs", ignore_errors=True)
    results_script.report([a, b], tmp_path / "figs", "demo")
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| eprop")]
    assert [r.split("|")[1:4] for r in rows] == [
        [" eprop ", " 0.001 ", " 2 "],
        [" eprop-random ", " 0.001 ", " 1 "],
    ]
    assert (tmp_path / "figs" / "demo.png").stat().st_size > 10_000
