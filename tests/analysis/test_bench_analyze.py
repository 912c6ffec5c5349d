"""scripts/bench_analyze.py: the generated benchmark configs are valid models of the stated size."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

from neuroplast.config import parse_config

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("bench_analyze", ROOT / "scripts" / "bench_analyze.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("kind,n_alif,task", [("big", 0, "sine"), ("big-alif", 500, "evidence")])
def test_write_config_is_a_valid_model_of_the_benchmark_size(kind, n_alif, task, tmp_path) -> None:
    mod = _script()
    path = mod.write_config(kind, tmp_path / "c.toml", n_rec=1000, n_steps=1000, iterations=1)
    data = tomllib.loads(path.read_text())
    cfg = parse_config(data, str(path))
    assert cfg.network.n_rec == 1000 and cfg.network.n_alif == n_alif
    assert cfg.simulation.n_steps == 1000
    assert cfg.training.iterations == 1 and cfg.training.batch_size == 1
    assert data["task"]["name"] == task
    base = tomllib.loads((ROOT / mod.MAKE[kind][0]).read_text())
    assert data["task"] == base["task"]  # everything else is the model's


def test_write_config_refuses_an_evidence_trial_too_short_for_its_cues(tmp_path) -> None:
    with pytest.raises(SystemExit, match="too short"):
        _script().write_config("big-alif", tmp_path / "c.toml", n_rec=100, n_steps=300, iterations=1)
