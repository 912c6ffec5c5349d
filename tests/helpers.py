"""What several test modules share: paths, seeded networks, CLI runners, error measures, HDF5 readers.

Import as ``from tests.helpers import ...`` (the repository root is on ``sys.path`` under
``python -m pytest``). Fixtures live in the conftest.py files, not here.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from neuroplast.config import parse_config
from neuroplast.io import RunWriter
from neuroplast.model.dynamics import simulate
from neuroplast.model.losses import get_loss
from neuroplast.model.params import ModelParams, Weights

# ------------------------------------------------------------------------------------------------ paths
ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SINE = MODELS / "sine.toml"
EVIDENCE = MODELS / "evidence.toml"

# ------------------------------------------------------------------------ seeded networks (tests/network)
N, N_IN, N_OUT, T_EQ = 40, 24, 2, 2000
T_GRAD = 600


def make_params(kind: str, n_rec: int = N, n_ref: int = 3, **kw) -> ModelParams:
    """LIF, ALIF or mixed parameters that make a small net fire at a few tens of Hz."""
    beta = {"lif": 0.0, "alif": 0.05, "mix": np.where(np.arange(n_rec) < n_rec // 2, 0.0, 0.05)}[kind]
    base = dict(
        n_rec=n_rec,
        tau_m=20.0,
        tau_a=np.linspace(100.0, 400.0, n_rec),
        beta=beta,
        v_th=0.3,
        n_ref=n_ref,
        tau_out=20.0,
        input_scale=1.0,
        readout_scale=1.0,
    )
    base.update(kw)
    return ModelParams.from_time_constants(**base)


def make_weights(
    seed: int = 0,
    n_rec: int = N,
    n_in: int = N_IN,
    n_out: int = N_OUT,
    p_rec: float = 0.6,
    rec_scale: float = 0.12,
) -> Weights:
    rng = np.random.default_rng(seed)
    mask_rec = rng.random((n_rec, n_rec)) < p_rec
    return Weights(
        rng.normal(0.05, 0.3, (n_rec, n_in)),
        rng.normal(0.0, rec_scale, (n_rec, n_rec)),
        rng.normal(0.0, 0.3, (n_out, n_rec)),
        rng.normal(0.0, 0.1, n_out),
        mask_rec=mask_rec,
    )


def make_input(seed: int = 1, T: int = T_EQ, n_in: int = N_IN, p: float = 0.03) -> np.ndarray:
    return (np.random.default_rng(seed).random((T, n_in)) < p).astype(float)


def batch_trials(loss: str, n_out: int, n: int = 3, seed: int = 0) -> list[tuple]:
    """``n`` different ``(x, target, mask)`` trials of T_GRAD steps for a batched network: inputs, targets and
    (cross-entropy) recall windows of different lengths."""
    rng = np.random.default_rng(seed)
    trials = []
    for k in range(n):
        x = make_input(seed=40 + k + seed, T=T_GRAD)
        if loss == "mse":
            target, mask = rng.normal(0.0, 0.5, (T_GRAD, n_out)), None
        else:
            target = np.zeros((T_GRAD, n_out))
            target[:, k % n_out] = 1.0
            mask = np.zeros(T_GRAD)
            mask[-(100 + 50 * k) :] = 1.0
        trials.append((x, target, mask))
    return trials


# ------------------------------------------- a small spiking problem (tests/gradients, tests/model)
PROBLEM_N_REC, PROBLEM_N_IN, PROBLEM_N_OUT, PROBLEM_T = 10, 12, 3, 150
#: β of LIF, ALIF and mixed populations of PROBLEM_N_REC neurons.
PROBLEM_BETAS = {
    "lif": np.zeros(PROBLEM_N_REC),
    "alif": np.full(PROBLEM_N_REC, 0.6),
    "mixed": np.r_[np.zeros(PROBLEM_N_REC // 2), np.full(PROBLEM_N_REC - PROBLEM_N_REC // 2, 0.6)],
}


def make_problem(
    beta: np.ndarray,
    *,
    n_ref: int = 0,
    loss_name: str = "mse",
    seed: int = 0,
    w_rec_std: float = 0.3,
    n_rec: int = PROBLEM_N_REC,
    n_in: int = PROBLEM_N_IN,
    T_: int = PROBLEM_T,
):
    """A small network that spikes: v_th = 0.3, τ_m = 20 ms, W_in ~ N(0, 0.3), p_in = 0.05.

    Returns ``(params, weights, x, target, mask, loss)``.
    """
    rng = np.random.default_rng(seed)
    params = ModelParams.from_time_constants(
        n_rec=n_rec, tau_m=20.0, tau_a=200.0, beta=beta, v_th=0.3, n_ref=n_ref, tau_out=20.0
    )
    weights = Weights(
        rng.normal(0.0, 0.3, (n_rec, n_in)),
        rng.normal(0.0, w_rec_std, (n_rec, n_rec)) if w_rec_std > 0 else np.zeros((n_rec, n_rec)),
        rng.normal(0.0, 1.0, (PROBLEM_N_OUT, n_rec)),
        rng.normal(0.0, 0.1, PROBLEM_N_OUT),
    )
    x = (rng.random((T_, n_in)) < 0.05).astype(float)
    if loss_name == "mse":
        target = rng.normal(0.0, 0.5, (T_, PROBLEM_N_OUT))
        mask = np.ones(T_)
    else:  # one-hot label, counted in a recall window at the end of the trial
        target = np.zeros((T_, PROBLEM_N_OUT))
        target[:, 1] = 1.0
        mask = np.zeros(T_)
        mask[-T_ // 5 :] = 1.0
    return params, weights, x, target, mask, get_loss(loss_name)


def simulated_problem(beta: np.ndarray, *, n_ref: int = 0, loss_name: str = "mse", seed: int = 0):
    """:func:`make_problem` and its trajectory: ``(params, weights, x, traj, target, mask, loss)``."""
    params, weights, x, target, mask, loss = make_problem(beta, n_ref=n_ref, loss_name=loss_name, seed=seed)
    return params, weights, x, simulate(params, weights, x), target, mask, loss


# ------------------------------------------------------------------------------------ relative errors
def max_rel_err(a: Any, b: Any, *, floor: float = 0.0) -> float:
    """max|a − b| / max(max|b|, floor): the largest error relative to the largest entry of ``b``."""
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), floor))


def norm_rel_err(a: Any, b: Any) -> float:
    """‖a − b‖ / ‖b‖ (Frobenius), with ‖b‖ floored at 1e-300."""
    return float(np.linalg.norm(np.asarray(a) - b) / max(np.linalg.norm(b), 1e-300))


# --------------------------------------------------------------------------- the command-line tool
def cli_env(*first: str | Path) -> dict[str, str]:
    """``os.environ`` with PYTHONPATH = the repository, then ``first``, then the caller's PYTHONPATH."""
    env = dict(os.environ)
    paths = [str(ROOT), *map(str, first)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def cli_args(*args: Any) -> list[str]:
    """The command line of ``python -m neuroplast.cli ARGS``."""
    return [sys.executable, "-m", "neuroplast.cli", *map(str, args)]


def run_command(
    cmd: list[str], cwd: Path, *, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd`` (environment: :func:`cli_env` unless given), capturing text output."""
    env = cli_env() if env is None else env
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def run_cli(
    *args: Any, cwd: Path, timeout: float = 300, pythonpath: tuple[str | Path, ...] = ()
) -> subprocess.CompletedProcess:
    """``python -m neuroplast.cli ARGS`` in ``cwd``; ``pythonpath`` goes after the repository."""
    return run_command(cli_args(*args), cwd, timeout=timeout, env=cli_env(*pythonpath))


def one_line(text: str) -> str:
    """``text`` (stripped), asserted to be exactly one line."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"not one line: {text!r}"
    return lines[0]


#: Exit status of the stand-in ``brian2`` package of tests/e2e/test_cli_errors.py.
BRIAN2_IMPORTED = 97


def assert_one_line_error(proc: subprocess.CompletedProcess, *names: str) -> str:
    """Exit status 2, no traceback, stdout empty, stderr one line naming every ``names``."""
    assert proc.returncode != BRIAN2_IMPORTED, f"Brian2 was imported before the error: {proc.stderr}"
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    assert proc.stderr.endswith("\n") and proc.stderr.count("\n") == 1, f"not one line: {proc.stderr!r}"
    line = proc.stderr.rstrip("\n")
    assert line.startswith("neuroplast ") and ": error: " in line, line
    for name in names:
        assert name in line, f"{name!r} not named in {line!r}"
    return line


def write_config(path: Path, old: str, new: str, source: Path = SINE) -> Path:
    """``source`` with the first ``old`` replaced by ``new``, written to ``path``."""
    text = source.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def write_text(folder: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``folder / name``; return ``folder`` (a working folder holding a config)."""
    (folder / name).write_text(text)
    return folder


#: A tiny sine config on the runtime device (trials of 300 steps, batch 2): the end-to-end tests of
#: ``neuroplast run`` (tests/e2e/test_resume.py, tests/e2e/test_run_safety.py) train it for a few iterations
#: and compare with one uninterrupted run of TINY_ITERATIONS iterations (tests/e2e/conftest.py).
TINY_ITERATIONS = 6
TINY_TOML = """\
[simulation]
dt_ms = 1.0
n_steps = 300
seed = 1
device = "runtime"

[network]
n_rec = 30
n_alif = 0
n_out = 1
tau_m_ms = 30.0
v_th = 0.03
n_ref = 0
tau_out_ms = 30.0
w_in_scale = 0.05
w_rec_scale = 0.02
w_out_scale = 0.1

[task]
name = "sine"
n_in = 40
rate_hz = 50.0
periods_ms = [300.0, 150.0, 100.0]

[training]
rule = "eprop"
loss = "mse"
optimizer = "adam"
learning_rate = 0.001
iterations = 40
batch_size = 2
"""


#: TINY_TOML with trials of 20000 steps (about 1.5 s each on the runtime device), one per iteration: a
#: signal sent in the middle of an iteration lands in a simulation (tests/e2e/test_run_safety.py).
LONG_TOML = TINY_TOML.replace("n_steps = 300", "n_steps = 20000").replace("batch_size = 2", "batch_size = 1")


def long_cpp_toml(chunk: int) -> str:
    """LONG_TOML on cpp_standalone with ``chunk`` iterations per launch.  The Ctrl-C tests
    (tests/e2e/test_run_safety.py) and the kill inside a launch (tests/e2e/test_resume.py) run the same
    two compiled networks (chunks of 1 and 2), built once per compile cache."""
    text = LONG_TOML.replace('device = "runtime"', f'device = "cpp_standalone"\nchunk_iterations = {chunk}')
    # the chunked engine is these tests' subject: the online path (for trials of 20000 steps of 30 neurons
    # the cost model of path = "auto" would take the factorized one, one launch per iteration)
    text = text.replace("[training]\n", '[training]\npath = "online"\n')
    assert text != LONG_TOML and "batch_size = 1" in text and 'path = "online"' in text
    return text


#: ALIF neurons, cross-entropy with a recall mask, random feedback, SGD, the sweep path (not event-driven),
#: cpp_standalone: tests/training (chunked and side-by-side engines against one trial per launch).
SMALL_EVIDENCE_TOML = """\
[simulation]
n_steps = 250
seed = 4
device = "cpp_standalone"

[network]
n_rec = 20
n_alif = 10
n_out = 2
tau_m_ms = 20.0
beta = 0.17
v_th = 0.6
n_ref = 5
surrogate = "fast_sigmoid"
w_in_scale = 1.0
w_rec_scale = 1.0
w_out_scale = 1.0

[task]
name = "evidence"
n_in = 16
n_cues = 1
cue_ms = 50.0
gap_ms = 20.0
recall_ms = 60.0

[training]
rule = "eprop-random"
loss = "cross_entropy"
optimizer = "sgd"
learning_rate = 0.01
iterations = 4
batch_size = 1
reg_coeff = 30.0
"""


#: A sine config with in-trial learning (SGD every IN_TRIAL_EVERY steps): tests/e2e/test_in_trial_run.py
#: runs it through the command line, tests/training/test_in_trial.py through the trainer.
IN_TRIAL_EVERY, IN_TRIAL_LR = 50, 1e-5
IN_TRIAL_TOML = f"""\
[simulation]
n_steps = 300
seed = 2

[network]
n_rec = 30
n_ref = 2
w_in_scale = 0.05
w_rec_scale = 0.02
w_out_scale = 0.1

[task]
name = "sine"
n_in = 40
periods_ms = [300.0, 150.0, 100.0]

[training]
rule = "eprop"
optimizer = "sgd"
learning_rate = {IN_TRIAL_LR}
iterations = 40
reg_coeff = 10.0
update_every_steps = {IN_TRIAL_EVERY}
"""


#: A child process that SIGKILLs itself in the middle of writing the resume slot of iteration
#: ``argv[1]``, after the weights/updates rows and the trials of that iteration were flushed to disk
#: (but not the counters); ``argv[2:]`` are the arguments of ``neuroplast``.
MID_FLUSH_CHILD = """
import os, signal, sys
import numpy as np
import neuroplast.io.writer as w

KILL_AT = int(sys.argv[1])
orig = w._write_slot

def half_write(f, state, iteration, *rest):
    if iteration != KILL_AT:
        return orig(f, state, iteration, *rest)
    g = f.require_group(w.RESUME_GROUP).require_group(w.RESUME_SLOTS[iteration % 2])
    g.attrs[w.ATTR_STATE_ITERATION] = np.int64(-1)
    names = sorted(state)
    for name in names[: len(names) // 2]:
        g[name][()] = state[name]
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

w._write_slot = half_write
from neuroplast.cli import main
sys.exit(main(sys.argv[2:]))
"""


# ------------------------------------------------------------------------------------- HDF5 files
def read_datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of the file, by path."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def read_root_attrs(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r") as f:
        return {k: f.attrs[k] for k in f.attrs}


def assert_same_datasets(a: Path, b: Path) -> None:
    """Every dataset and root attribute of ``a`` and ``b`` is equal, bit for bit (NaN == NaN).

    Groups and the attributes of other objects are not compared (``neuroplast.io.diff.diff_files``
    compares whole files).
    """
    da, db = read_datasets(a), read_datasets(b)
    assert sorted(da) == sorted(db)
    for name, x in da.items():
        y = db[name]
        assert x.dtype == y.dtype and x.shape == y.shape, name
        if x.dtype.kind == "f":
            assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), name  # bits, NaN and -0.0 included
        else:
            assert np.array_equal(x, y), name
    aa, ab = read_root_attrs(a), read_root_attrs(b)
    assert sorted(aa) == sorted(ab)
    for k in aa:
        assert np.array_equal(aa[k], ab[k]), k


def copy_file(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


# ------------------------------------------------------------- synthetic run logs (tests/analysis)
# Trained by the real runner (``neuroplast.training.runner.run_training``, the code of ``neuroplast run``) on
# the ``numpy`` device (the NumPy reference, no Brian2): a tiny network, plain SGD with a small step.
SYNTH_N_REC, SYNTH_N_IN, SYNTH_T = 10, 6, 60
#: Input gain of :func:`write_synthetic_run` per neuron model (adlif's drive enters as (1 − α) c).
SYNTH_GAIN = {"lif_syn": 0.5, "adlif": 12.0}


def _synthetic_config(
    kind: str = "regression",
    reg: float = 0.5,
    rule: str = "eprop",
    update_every: int = 0,
    n_alif: int = 0,
    *,
    rec_scale: float = 0.2,
    w_in: float = 0.15,
    w_out: float = 0.3,
    batch: int = 2,
    seed: int = 0,
    iterations: int = 3,
    neuron: str = "alif",
) -> Any:
    """The config :func:`write_synthetic_run` trains (its keyword arguments, ``iterations`` its
    ``training.iterations``), on the numpy device."""
    sim = {"dt_ms": 1.0, "n_steps": SYNTH_T, "seed": 3 + seed, "device": "numpy"}
    net = {
        "n_rec": SYNTH_N_REC,
        "n_out": 1,
        "v_th": 0.05,
        "tau_m_ms": 20.0,
        "tau_out_ms": 20.0,
        "p_in": 0.8,
        "p_rec": 0.5,
        "w_in_scale": w_in,
        "w_rec_scale": rec_scale,
        "w_out_scale": w_out,
    }
    if n_alif:
        net.update(n_alif=n_alif, beta=0.5, tau_a_ms=200.0)
    if neuron != "alif":  # the model's own keys keep their defaults; the input gain makes it spike
        net.update(neuron=neuron, w_in_scale=w_in * SYNTH_GAIN.get(neuron, 1.0))
    train = {
        "rule": rule,
        "optimizer": "sgd",
        "learning_rate": 1e-6,
        "iterations": iterations,
        "batch_size": 1 if update_every else batch,
        "reg_coeff": reg,
        "reg_rate_hz": 20.0,
    }
    if not rec_scale:  # W_rec = 0 at every iteration: no recurrence, e-prop = BPTT
        train["train_recurrent"] = False
    if kind == "regression":
        task = {"name": "sine", "n_in": SYNTH_N_IN, "rate_hz": 150.0, "periods_ms": [44.0]}
        train["loss"] = "mse"
    else:
        task = {"name": "evidence", "n_in": 8, "n_cues": 2, "cue_ms": 10.0, "gap_ms": 5.0, "recall_ms": 15.0}
        task.update(cue_rate_hz=150.0, noise_rate_hz=100.0)
        net["n_out"] = 2
        train["loss"] = "cross_entropy"
    if update_every:
        train["update_every_steps"] = update_every
    return parse_config({"simulation": sim, "network": net, "task": task, "training": train})


class _Killed(Exception):
    """The fault :func:`write_synthetic_run` injects to stop a run between an iteration's trials and its
    update (``partial_iteration``)."""


@contextlib.contextmanager
def _stopped_before_update(iteration: int) -> Iterator[None]:
    """While open, a run log's writer raises :class:`_Killed` when the update of ``iteration`` is handed to
    it, after that iteration's trials were: the runner's writer then closes the log at that point (keeping
    the trials, as it keeps every finished trial of a run stopped by an error) and the run stops."""
    add_iteration = RunWriter.add_iteration

    def stop(self: RunWriter, *args: Any, **kw: Any) -> int:
        if self.n_iterations == iteration:
            raise _Killed(f"stopped before the update of iteration {iteration}")
        return add_iteration(self, *args, **kw)

    RunWriter.add_iteration = stop  # type: ignore[method-assign]
    try:
        yield
    finally:
        RunWriter.add_iteration = add_iteration  # type: ignore[method-assign]


def write_synthetic_run(
    path: Path,
    *,
    kind: str = "regression",
    rec_scale: float = 0.2,
    n_iter: int = 3,
    w_in: float = 0.15,
    w_out: float = 0.3,
    batch: int = 2,
    reg: float = 0.5,
    partial_iteration: bool = False,
    seed: int = 0,
    rule: str = "eprop",
    update_every: int = 0,
    n_alif: int = 0,
    neuron: str = "alif",
) -> Path:
    """Train a tiny network (10 neurons, trials of 60 steps) on the numpy device with ``neuroplast run``'s
    code (``run_training``) and return its run log (an existing ``path`` is replaced).

    ``kind``: ``regression`` (sine, MSE) or ``classification`` (evidence accumulation, cross-entropy);
    ``rec_scale``, ``w_in``, ``w_out``: ``network.w_rec_scale``/``w_in_scale``/``w_out_scale`` — 0 for
    ``rec_scale`` also sets ``training.train_recurrent = false``, so that W_rec is 0 at every iteration (the
    comparison's equality case: e-prop = BPTT); ``batch``: ``training.batch_size``; ``reg``:
    ``training.reg_coeff``; ``seed``: ``simulation.seed`` − 3; ``rule``: ``training.rule`` (``bptt`` trains
    with and logs the exact gradient); ``update_every=k``: learning inside each trial
    (``training.update_every_steps``, batch 1); ``n_alif`` > 0: the last ``n_alif`` neurons adaptive
    (β = 0.5, τ_a = 200 ms); ``neuron``: ``network.neuron`` (any registered model, its own keys at their
    defaults, ``w_in`` times :data:`SYNTH_GAIN` of the model).  ``partial_iteration``: ``n_iter`` complete
    iterations, then the trials of one more logged and the run stopped before its update (the log of a run
    killed mid-iteration: unfinished, its last trials without weights).
    """
    from neuroplast.training.runner import run_training

    cfg = _synthetic_config(
        kind, reg, rule, update_every, n_alif, rec_scale=rec_scale, w_in=w_in, w_out=w_out, batch=batch,
        seed=seed, iterations=n_iter + int(partial_iteration), neuron=neuron,
    )  # fmt: skip
    if not partial_iteration:
        return run_training(cfg, path, force=True, progress=False)
    with _stopped_before_update(n_iter), contextlib.suppress(_Killed):
        run_training(cfg, path, force=True, progress=False)
    return Path(path)


# ------------------------------------------------------------ training records compared byte for byte
def record_arrays(obj: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Every number of a training record, by path (dicts, lists, dataclass-like trial records)."""
    out: dict[str, np.ndarray] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(record_arrays(v, f"{prefix}/{k}"))
    elif isinstance(obj, (list, tuple)):
        for k, v in enumerate(obj):
            out.update(record_arrays(v, f"{prefix}[{k}]"))
    elif hasattr(obj, "__dataclass_fields__"):
        for k in obj.__dataclass_fields__:
            out.update(record_arrays(getattr(obj, k), f"{prefix}.{k}"))
    elif obj is not None:
        out[prefix] = np.asarray(obj)
    return out


def assert_same_records(want: list, got: list) -> None:
    """Two trainings' :class:`IterationRecord` lists are the same byte for byte (−0.0 ≠ 0.0, as the run-log
    diff): the spec of every execution strategy (chunks, trials side by side) is identity."""
    assert len(got) == len(want)
    for r_want, r_got in zip(want, got, strict=True):
        a, b = record_arrays(r_want), record_arrays(r_got)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            assert a[key].tobytes() == b[key].tobytes(), f"iteration {r_want.iteration}: {key}"


def small_run_writer(path: Path, n_in: int, n_rec: int, n_out: int, n_steps: int, **kw: Any):
    """A regression ``RunWriter`` of a small dense network (input and readout all-to-all, a recurrent chain
    0 → 1 → … → n_rec − 1, the readout bias); ``kw`` (dt_ms, seed, flush_every, ...) go to the writer."""
    from neuroplast.io import RunWriter

    edges = {
        "input": (np.repeat(np.arange(n_in), n_rec), np.tile(np.arange(n_rec), n_in)),
        "recurrent": (np.arange(n_rec - 1), np.arange(1, n_rec)),
        "output": (np.repeat(np.arange(n_rec), n_out), np.tile(np.arange(n_out), n_rec)),
        "bias": None,
    }
    kw = {"dt_ms": 1.0, "seed": 0, **kw}
    return RunWriter(
        path,
        config_toml="[a]\nb = 1\n",
        populations={"recurrent": {"alpha": np.full(n_rec, 0.9)}, "input": {}, "readout": {}},
        projections_edges=edges,
        n_in=n_in,
        n_out=n_out,
        task_kind="regression",
        n_steps=n_steps,
        brian2_version="test",
        **kw,
    )


# ----------------------------------------------- neuron models (tests/model/test_neurons.py, gradients)
#: Parameter values of the built-in neuron models for :func:`model_problem` (dt = 1 ms).
MODEL_VALUES = {
    "alif": lambda p: {"alpha": p.alpha, "rho": p.rho, "beta": p.beta},
    "lif_syn": lambda p: {"alpha": p.alpha, "alpha_s": float(np.exp(-1.0 / 5.0))},
    "adlif": lambda p: {
        "alpha": p.alpha,
        "rho_w": float(np.exp(-1.0 / 50.0)),
        "adapt_a": 0.5,
        "adapt_b": 0.4,
    },
}
#: Input gain per model so that make_problem's network spikes (adlif's drive enters as (1 − α) c).
MODEL_GAIN = {"alif": 1.0, "lif_syn": 0.5, "adlif": 12.0}
#: The example plugin's neuron model (examples/plugin_rule), read from its file: no install needed.
PLUGIN_NEURON_FILE = ROOT / "examples" / "plugin_rule" / "neuroplast_sign_rule" / "neurons.py"
MODEL_VALUES["resonate"] = lambda p: {"rho_r": float(np.exp(-1.0 / 20.0)), "theta": 0.2}
MODEL_GAIN["resonate"] = 1.0


def plugin_neuron() -> Any:
    """The ``resonate`` :class:`~neuroplast.model.neurons.NeuronModel` of examples/plugin_rule (loaded from
    its file, whether or not the package is installed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_plugin_neurons", PLUGIN_NEURON_FILE)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.RESONATE


def model_problem(
    name: str, *, n_ref: int = 0, loss_name: str = "mse", seed: int = 0, w_rec_std: float = 0.3
):
    """:func:`make_problem` for neuron model ``name`` (ALIF/LIF mix for ``alif``; ``resonate``: the example
    plugin's, :func:`plugin_neuron`), input gain per model.

    Returns ``(model, values, params, weights, x, target, mask, loss)``.
    """
    from neuroplast.model.neurons import get_neuron

    params, w, x, target, mask, loss = make_problem(
        PROBLEM_BETAS["mixed"], n_ref=n_ref, loss_name=loss_name, seed=seed, w_rec_std=w_rec_std
    )
    gain = MODEL_GAIN[name]
    w = Weights(w.w_in * gain, w.w_rec * gain, w.w_out, w.b_out, w.mask_in, w.mask_rec)
    model = plugin_neuron() if name == "resonate" else get_neuron(name)
    return model, MODEL_VALUES[name](params), params, w, x, target, mask, loss
