"""Many trials per launch (``simulation.chunk_iterations``) give the per-trial path's records bit for bit.

The spec is identity, not closeness: the chunked engine steps the optimizer inside the simulation with the
NumPy operation order, so every spike, gradient, weight, update and resume state must be the same double.
Each case trains the same config twice — one trial per launch, and K per launch with a shorter last launch —
and compares every array of every :class:`IterationRecord` byte for byte (−0.0 ≠ 0.0, as the run-log diff).
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from neuroplast.config import parse_config
from neuroplast.training.trainer import CHUNK_MAX, Trainer, averaging_run, chunk_length
from tests.helpers import SMALL_EVIDENCE_TOML as EVIDENCE
from tests.helpers import assert_same_records

SINE = """\
[simulation]
n_steps = 200
seed = 3
device = "cpp_standalone"

[network]
n_rec = 24
n_ref = 2
w_in_scale = 0.05
w_rec_scale = 0.02
w_out_scale = 0.1

[task]
name = "sine"
n_in = 30
periods_ms = [200.0, 100.0]

[training]
rule = "eprop"
optimizer = "adam"
learning_rate = 0.003
iterations = 5
reg_coeff = 10.0
"""


def _cfg(text: str, chunk: int, threads: int = 1, changes: dict | None = None, path: str | None = None):
    data = tomllib.loads(text)
    data["simulation"]["chunk_iterations"] = chunk
    data["simulation"]["threads"] = threads
    for section, values in (changes or {}).items():
        data[section].update(values)
    if path is not None:
        data["training"]["path"] = path
    return parse_config(data)


def _train(
    text: str, chunk: int, threads: int = 1, changes: dict | None = None, path: str | None = None
) -> tuple[Trainer, list]:
    tr = Trainer.from_config(_cfg(text, chunk, threads, changes, path))
    records = [tr.run_iteration() for _ in range(tr.cfg.training.iterations)]
    return tr, records


#: Both gradient paths run several iterations per launch: the online one accumulates each synapse's
#: gradient in the simulation, the factorized one has the binary compute it at every boundary (docs/model.md
#: §7, §9).
PATHS = ("online", "factorized")


def _on_path(trainer: Trainer, path: str) -> None:
    """``trainer`` computes its gradients on ``path`` (the factorized one in the binary)."""
    assert trainer.gradient_path == path and trainer.compiled_gradients == (path == "factorized")


#: NEST's modes, the frozen projections (docs/configs.md) and adaptive feedback: values of the launch on the
#: chunked engine, so these share the sine-adam case's compiled network.  ``frozen``: what must not move
#: (B follows W_out under symmetric e-prop).
MODES = {
    "no-bias": ({"network": {"readout_bias": False}}, ["bias"]),
    "train-output-false": ({"training": {"train_output": False}}, ["output", "bias", "feedback"]),
    "train-recurrent-false": ({"training": {"train_recurrent": False}}, ["recurrent"]),
    "averaged": ({"training": {"average_gradient": True}}, []),
    "eprop-adaptive": ({"training": {"rule": "eprop-adaptive", "weight_decay": 0.05}}, []),
}
#: NEST's evidence mode (models/nest_evidence.toml): Adam as NEST takes it, the gradient averaged over the
#: recall window, no readout bias.
NEST_EVIDENCE = {
    "network": {"readout_bias": False},
    "training": {"optimizer": "adam-nest", "average_gradient": True, "learning_rate": 0.005},
}


@pytest.mark.brian2
@pytest.mark.parametrize(
    ("text", "changes", "frozen"),
    [
        *(pytest.param(SINE, c, f, id=name) for name, (c, f) in MODES.items()),
        pytest.param(
            EVIDENCE, NEST_EVIDENCE, ["bias", "feedback"], id="nest-evidence", marks=pytest.mark.slow
        ),
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_chunked_modes_equal_per_trial(text: str, changes: dict, frozen: list[str], path: str) -> None:
    """The modes that once ran one trial per launch (NEST's: no bias, averaged gradient, adam-nest; frozen
    projections; Kolen–Pollack's adaptive feedback) run several per launch on either gradient path and give
    the per-trial records byte for byte; what is not trained stays where it started, and what is trained
    moves (the comparison can disagree)."""
    one, want = _train(text, 1, changes=changes, path=path)
    many, got = _train(text, 2, changes=changes, path=path)
    assert many.chunk == 2, many.chunk_reason
    _on_path(one, path)
    _on_path(many, path)
    assert_same_records(want, got)
    first, last = got[0].weights_before, many.final_weights()
    for key in ("input", "recurrent", "output", "bias", "feedback"):
        moved = not np.array_equal(first[key], last[key])
        assert moved == (key not in frozen), (key, frozen)


@pytest.mark.brian2
@pytest.mark.parametrize(
    ("text", "chunk", "threads"),
    [
        pytest.param(SINE, 2, 1, id="sine-adam"),
        # the thread split and the SGD/evidence variant: a minute each, in the slow run (CI runs it)
        pytest.param(SINE, 2, 2, id="sine-adam-2-threads", marks=pytest.mark.slow),
        pytest.param(EVIDENCE, 3, 1, id="evidence-sgd", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_chunked_equals_per_trial(text: str, chunk: int, threads: int, path: str) -> None:
    """Launches of ``chunk`` iterations (the last one shorter; with ``threads`` threads: OpenMP's splitting
    the per-neuron and per-synapse loops online, the binary's gradient's factorized) = one trial per launch
    with one thread, byte for byte, on either gradient path."""
    one, want = _train(text, 1, path=path)
    many, got = _train(text, chunk, threads, path=path)
    assert one.chunk == 0 and "chunk_iterations = 1" in one.chunk_reason
    assert many.chunk == chunk, many.chunk_reason
    _on_path(one, path)
    _on_path(many, path)
    assert one.threads == 1 and many.threads == threads
    assert_same_records(want, got)
    # the comparison is not vacuous: the weights moved, and the trials differ between iterations
    w0, w1 = want[0].weights_before["recurrent"], want[-1].weights_before["recurrent"]
    assert not np.array_equal(w0, w1)
    assert any(t.spikes["recurrent"][0].size for r in want for t in r.trials)


@pytest.mark.brian2
def test_each_iteration_is_drawn_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The task draws every iteration's trials once (the launch's and the NumPy side's are the same), the
    next launch's while this one runs (a thread, before the launch's iterations are returned); the records
    are those of test_chunked_equals_per_trial."""
    tr = Trainer.from_config(_cfg(SINE, 2))
    assert tr.chunk == 2, tr.chunk_reason
    drawn: list[int] = []
    draw = tr.task.trials
    monkeypatch.setattr(tr.task, "trials", lambda it, b: drawn.append(it) or draw(it, b))
    tr.run_iteration()  # the first launch: iterations 0 and 1, and 2 and 3 drawn during it
    assert sorted(drawn) == [0, 1, 2, 3]
    for _ in range(tr.cfg.training.iterations - 1):
        tr.run_iteration()
    assert sorted(drawn) == list(range(tr.cfg.training.iterations))


@pytest.mark.brian2
def test_a_chunked_launch_writes_back_only_what_is_read() -> None:
    """The binary of a chunked network leaves out the writes of the synapses' ids and of the weights and
    Adam's moments that NumPy replicates (≈ 40 % of what a launch wrote at 10⁶ synapses); reading one after
    a launch names it, and what the trainer reads (the gradients, the records) is read as before."""
    tr = Trainer.from_config(_cfg(SINE, 2))
    assert tr.chunk == 2, tr.chunk_reason
    tr.run_iteration()
    syn = tr.net.synapses["recurrent"]
    objects = (tr.net.build_dir / "objects.cpp").read_text()
    for name in ("w", "m_adam", "v_adam", "_synaptic_pre", "_synaptic_post", "N_incoming", "N_outgoing"):
        array = tr.net._device.get_array_name(syn.variables[name], access_data=False)  # noqa: SLF001
        assert f"ofstream outfile_{array};" not in objects, name
        with pytest.raises(RuntimeError, match=f"proj_recurrent.{name}: neuroplast's launches"):
            syn.variables[name].get_value()
    g = tr.net._device.get_array_name(syn.variables["g"], access_data=False)  # noqa: SLF001
    assert f"ofstream outfile_{g};" in objects
    assert np.asarray(syn.g[:]).size == tr.net.edges["recurrent"][0].size


@pytest.mark.brian2
def test_a_simulation_that_leaves_numpy_falls_back_to_one_launch_per_iteration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check of every chunked iteration can disagree: a launch whose boundary step is not NumPy's (its
    learning rate 1e-12 off) runs the second iteration with other weights; the trainer sees it, warns, drops
    the launch's results and goes on one trial per launch — the records those of a per-trial run, byte for
    byte."""
    _, want = _train(SINE, 1)
    tr = Trainer.from_config(_cfg(SINE, 2))
    assert tr.chunk == 2, tr.chunk_reason
    launch = tr.net.run_chunk
    monkeypatch.setattr(
        tr.net,
        "run_chunk",
        lambda *a, learning_rate, **k: launch(*a, learning_rate=learning_rate * (1 + 1e-12), **k),
    )
    got = [tr.run_iteration()]  # the launch's first trial ran with NumPy's weights
    with pytest.warns(RuntimeWarning, match="iteration 1: the weights of the chunked simulation differ"):
        got.append(tr.run_iteration())
    assert tr.chunk == 0 and "the chunked simulation disagreed" in tr.chunk_reason
    got += [tr.run_iteration() for _ in range(tr.cfg.training.iterations - 2)]
    assert_same_records(want, got)


def test_chunk_length_auto_and_given() -> None:
    """Auto: the memory budget, at most CHUNK_MAX, whatever ``training.iterations`` is (a launch runs the
    trials that are left); a given K is kept."""
    cfg = _cfg(SINE, 0)
    assert chunk_length(cfg, 1000) == CHUNK_MAX  # 76 kB per trial: the cap
    assert chunk_length(cfg.replace("training", iterations=250), 1000) == CHUNK_MAX
    huge = parse_config(
        {**tomllib.loads(SINE), "simulation": {"n_steps": 100_000, "device": "cpp_standalone"}}
    )
    assert chunk_length(huge.replace("training", iterations=250), 1000) == 8  # 30 MB per trial: 8 fit
    assert chunk_length(huge.replace("training", iterations=3), 1000) == 8
    assert chunk_length(_cfg(SINE, 7), 1000) == 7


def test_a_launch_holds_the_trials_of_one_averaging_n() -> None:
    """With ``average_gradient`` the boundary steps divide by one n per launch: the trials up to the first
    whose loss counts another number of steps (a recall window of another length) — that one starts the
    next launch."""
    window = lambda k: np.r_[np.zeros(10 - k), np.ones(k)]  # noqa: E731 - a mask counting k steps
    assert averaging_run([window(3)] * 4) == (3.0, 4)  # counts of steps: exact
    assert averaging_run([window(3), window(3), window(5), window(3)]) == (3.0, 2)
    assert averaging_run([window(5), window(3)]) == (5.0, 1)
    assert averaging_run([np.ones(10)]) == (10.0, 1)  # no recall window: every step counts


@pytest.mark.brian2
@pytest.mark.slow
def test_iterations_never_change_the_compiled_network() -> None:
    """5 or 250 iterations: the same compiled network (the second reuses the first's build), and a launch
    of fewer trials than it holds (5 of 100) is what the records of test_chunked_equals_per_trial check."""
    few = Trainer.from_config(_cfg(SINE, 0))
    many = Trainer.from_config(_cfg(SINE, 0).replace("training", iterations=250))
    assert few.chunk == many.chunk == CHUNK_MAX, (few.chunk_reason, many.chunk_reason)
    assert many.net.cache_hit and many.net.build_dir == few.net.build_dir
    records = [few.run_iteration() for _ in range(few.cfg.training.iterations)]  # one launch of 5 trials
    one = Trainer.from_config(_cfg(SINE, 1))
    assert_same_records([one.run_iteration() for _ in range(one.cfg.training.iterations)], records)


@pytest.mark.brian2
@pytest.mark.slow
def test_the_feedback_rule_never_changes_the_compiled_network() -> None:
    """Symmetric and random e-prop share one compiled program: whether B follows W_out at a boundary is a
    value of the launch.  The random rule on the symmetric rule's build = its own per-trial path, byte for
    byte, and differs from the symmetric run (the comparison can disagree)."""
    symmetric = Trainer.from_config(_cfg(SINE, 0))
    random = Trainer.from_config(_cfg(SINE, 0).replace("training", rule="eprop-random"))
    assert random.chunk == symmetric.chunk == CHUNK_MAX, random.chunk_reason
    assert random.net.cache_hit and random.net.build_dir == symmetric.net.build_dir
    n = random.cfg.training.iterations
    got = [random.run_iteration() for _ in range(n)]
    one = Trainer.from_config(_cfg(SINE, 1).replace("training", rule="eprop-random"))
    assert_same_records([one.run_iteration() for _ in range(n)], got)
    sym = [symmetric.run_iteration() for _ in range(n)]
    assert not np.array_equal(sym[-1].weights_before["recurrent"], got[-1].weights_before["recurrent"])
