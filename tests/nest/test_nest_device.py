"""The ``nest-current`` device: NEST 3.10's current e-prop models as a training mode (docs/validation.md).

``neuroplast run models/nest_current_sine.toml`` must give NEST's own per-sequence losses of its current
sine-wave example (data/nest_current.json, ``sine``), and a changed NEST switch NEST's losses of that
setting (``cutoff``) — far from the example's.  Tolerance ``RTOL = 1e-10`` relative, as
tests/nest/test_current.py: the device runs NEST's operations per synapse in NEST's order (measured: 0.0,
bit-identical losses); 1e-10 leaves room for libm's last bits and is orders of magnitude below the
smallest switch effect checked here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import neuroplast.api as npl
from neuroplast.config import load_config
from neuroplast.errors import ConfigError
from neuroplast.model.initializers import initialize
from neuroplast.tasks.nest import NestCurrentSineTask
from tests.helpers import ROOT, assert_one_line_error, run_cli
from tests.nest import current_emulation as ce

RTOL = 1e-10
MODEL = ROOT / "models" / "nest_current_sine.toml"


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def _losses(path: Path) -> np.ndarray:
    run = npl.open_run(path)
    return np.array([run.iteration_loss(i) for i in range(run.n_iterations)])


@pytest.fixture(scope="module")
def ref() -> dict:
    return ce.reference()["workloads"]


def test_neuroplast_run_of_the_model_file_gives_nests_losses(ref, tmp_path: Path) -> None:
    """The command line, 2 sequences: NEST's losses; the log is a normal run log (``inspect``)."""
    out = tmp_path / "nest.h5"
    proc = run_cli("run", MODEL, "--iterations", 2, "--out", out, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _rel(_losses(out), ref["sine"]["loss"][:2]) <= RTOL
    shown = run_cli("inspect", out, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "iterations: 2" in shown.stdout


def test_the_log_holds_the_weights_nest_ended_each_sequence_with(ref, tmp_path: Path) -> None:
    """weights[i + 1] = weights[i] + updates[i] (the change over sequence i), final weights = NEST's."""
    run = npl.train(MODEL, tmp_path / "w.h5", iterations=2)
    s = ce.settings_for("sine", 2)
    want = ce.simulate(s, ce.workload("sine", s))
    assert _rel(_losses(run.path), want["loss"]) <= RTOL
    w = npl.open_run(run.path)
    for name, key in (("input", "w_in"), ("recurrent", "w_rec"), ("output", "w_out")):
        p = w.projection(name)
        rows, ups = np.asarray(p.weights), np.asarray(p.updates)
        assert rows.shape[0] == 3  # before each of the 2 sequences, and the final weights
        # the change over a sequence added back to the weights before it: equal up to one rounding
        assert np.abs(rows[1:] - (rows[:-1] + ups)).max() <= 1e-15
        src, dst = p.source_ids.astype(int), p.target_ids.astype(int)
        np.testing.assert_array_equal(rows[-1], want[key][dst, src])  # NEST's weights after sequence 2
    assert np.abs(np.asarray(w.projection("input").updates)[0]).max() > 0  # NEST changed them in sequence 0


def test_a_nest_switch_gives_nests_losses_of_that_setting(ref, tmp_path: Path) -> None:
    """nest.isi_trace_cutoff_ms = 10: NEST's ``cutoff`` losses, beyond tolerance from the example's."""
    cfg = load_config(MODEL).replace("nest", isi_trace_cutoff_ms=10.0)
    loss = _losses(npl.train(cfg, tmp_path / "c.h5", iterations=1).path)
    assert _rel(loss, ref["cutoff"]["loss"][:1]) <= RTOL
    moved = _rel(loss, ref["sine"]["loss"][:1])
    assert moved > 1e3 * RTOL, moved


def test_the_models_draws_are_what_nest_was_given(ref) -> None:
    """The ``nest-current-sine`` initializer and task: the digests of data/nest_current.json (``sine``)."""
    cfg = load_config(MODEL)
    task = NestCurrentSineTask.from_config(cfg, 1)
    init = initialize("nest-current-sine", cfg.network, task.n_in, 1)
    trial = task.trials(0, 1)[0]
    # input j of the sequence: spike generator time j + 1 ms (the example's timeline)
    times = [(np.flatnonzero(trial.x[:, i]) + 1.0).astype(np.float32) for i in range(task.n_in)]
    w = ce.Workload(
        init.weights.w_in, init.weights.w_rec, init.weights.w_out, init.feedback, times, trial.target[:, 0]
    )
    assert ce.digests(w, ce.settings_for("sine", 1)) == ref["sine"]["digests"]


def _nest_config(tmp_path: Path, extra: str) -> Path:
    text = MODEL.read_text()
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n" + extra + "\n" if extra.startswith("[") else _set(text, extra))
    return path


def _set(text: str, line: str) -> str:
    """``text`` with ``key = value`` put into the table the line names (``table.key = value``)."""
    key, value = (p.strip() for p in line.split("=", 1))
    table, name = key.split(".")
    lines = text.splitlines()
    out, inside, done = [], False, False
    for ln in lines:
        if ln.startswith("["):
            if inside and not done:
                out.append(f"{name} = {value}")
                done = True
            inside = ln.split("]")[0] == f"[{table}"
        if inside and ln.split("=")[0].strip() == name:
            ln, done = f"{name} = {value}", True
        out.append(ln)
    if inside and not done:
        out.append(f"{name} = {value}")
    return "\n".join(out) + "\n"


REFUSED = {
    "nest.optimizer = 'sgd'": "nest.optimizer",
    "nest.surrogate = 'sigmoid'": "nest.surrogate",
    "nest.isi_trace_cutoff_ms = 1.0": "nest.isi_trace_cutoff_ms",
    "nest.isi_trace_cutoff_ms = 10.5": "nest.isi_trace_cutoff_ms",
    "nest.w_min = 200.0": "nest.w_min",
    "nest.kappa = 1.0": "nest.kappa",
    "nest.colour = 1": "nest.colour",
    "training.rule = 'eprop'": "training.rule",
    "training.batch_size = 2": "training.batch_size",
    "training.learning_rate = 0.01": "training.learning_rate",
    "training.update_every_steps = 10": "training.update_every_steps",
    "network.tau_m_ms = 20.0": "network.tau_m_ms",
    "network.readout_bias = true": "network.readout_bias",
    "network.p_rec = 0.5": "network.p_rec",
    "simulation.dt_ms = 0.5": "simulation.dt_ms",
    "simulation.device = 'numpy'": "nest.",  # a [nest] key that another device would ignore
}


@pytest.mark.parametrize("change", sorted(REFUSED))
def test_what_the_device_cannot_do_is_refused_naming_the_key(tmp_path: Path, change: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_nest_config(tmp_path, change))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(REFUSED[change]), msg


def test_the_command_line_refuses_in_one_line(tmp_path: Path) -> None:
    proc = run_cli(
        "run", _nest_config(tmp_path, "training.batch_size = 4"), "--out", tmp_path / "x.h5", cwd=tmp_path
    )
    assert_one_line_error(proc, "training.batch_size")


def test_a_run_of_the_device_is_not_resumed(tmp_path: Path) -> None:
    """NEST's state across sequences is not in the run log: --resume is refused, one line."""
    out = tmp_path / "r.h5"
    npl.train(replace(load_config(MODEL)), out, iterations=1)
    proc = run_cli("run", MODEL, "--resume", out, "--iterations", 2, cwd=tmp_path)
    assert_one_line_error(proc, "cannot resume")


def test_the_model_file_is_the_example(ref) -> None:
    """Every [nest] value of the model file is the example's (scripts/nest_current.py's parameters)."""
    from neuroplast.plasticity.nest_simulator import nest_settings

    cfg = load_config(MODEL)
    s = nest_settings(cfg.replace("training", iterations=20))
    example = ce.settings_for("sine")
    assert replace(s, n_adaptive=-1) == example  # n_alif = 0: every neuron eprop_iaf
    assert json.loads(json.dumps(ref["sine"]["iterations"])) == 20


@pytest.mark.parametrize("command", ["compare", "analyze"])
def test_a_run_of_the_device_is_not_replayed(tmp_path: Path, command: str) -> None:
    """compare and analyze replay trials with neuroplast's model (docs/model.md), which is not what NEST's
    models did during the sequence: refused in one line naming the device, the log untouched."""
    out = tmp_path / "r.h5"
    npl.train(MODEL, out, iterations=1)
    before = out.read_bytes()
    proc = run_cli(command, out, cwd=tmp_path)
    assert_one_line_error(proc, "cannot replay", "nest-current")
    assert out.read_bytes() == before
