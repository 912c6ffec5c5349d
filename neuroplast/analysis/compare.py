"""Replay every trial of a run log with the NumPy reference, compute exact BPTT and compare estimators.

For every trial ``k`` of a ``neuroplast-run`` file (``docs/hdf5.md``) :func:`compare_run`

1. rebuilds the dense weights the trial ran with from ``weights[iteration]`` and the edge lists,
2. replays the trial with :func:`neuroplast.model.dynamics.simulate` (identical to the Brian2 network)
   and checks that the replayed loss equals the logged loss (relative difference ≤ :data:`LOSS_RTOL`),
3. computes the exact gradient :func:`neuroplast.gradients.bptt.bptt_grads` (reset path detached, the
   gradient that e-prop factorizes) and its split ``dE/dW = Σ_t L*_t e_t = Σ_t L^kept_t e_t +
   Σ_t L^rec_t e_t`` into the part e-prop keeps (learning signal through the readout and the rate
   regularizer) and the part that flows back through ``W_rec``,

then writes ``grad/bptt`` (every projection), ``grad/bptt_eprop_part`` and ``grad/bptt_recurrent_part``
(input and recurrent) into the file and measures every other stored estimator against the exact gradient
(:mod:`neuroplast.analysis.metrics`): per trial and summarized (mean over trials, first and last trial).
Nothing is written unless every replayable trial passes the loss check.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.analysis.metrics import METRICS, relative_error
from neuroplast.analysis.views import connectivity_of
from neuroplast.build import model_params, neuron_values, target_rate
from neuroplast.config import parse_config
from neuroplast.devices import AUTO, device_info
from neuroplast.errors import ConfigError
from neuroplast.io import RunFileError, RunLog, add_gradients, open_run, rename_gradient
from neuroplast.model.connectivity import PROJECTIONS, Connectivity
from neuroplast.model.dynamics import Trajectory
from neuroplast.model.losses import Loss, get_loss
from neuroplast.model.neurons import DEFAULT_NEURON, NeuronModel, get_neuron
from neuroplast.model.params import ModelParams, Weights
from neuroplast.progress import Progress

__all__ = [
    "LOSS_RTOL",
    "REFERENCE",
    "REFERENCE_FULL",
    "KEPT_PART",
    "RECURRENT_PART",
    "RTRL",
    "ReplayContext",
    "ReplayedTrial",
    "replay_context",
    "replay_trial",
    "model_trial",
    "compare_run",
    "self_test",
]

#: Largest relative difference allowed between the replayed and the logged loss of a trial.
LOSS_RTOL = 1e-9
#: Exact gradient with the reset path detached (what e-prop's factorization is exact for).
REFERENCE = "bptt"
#: Exact gradient with the reset path differentiated too (``keep_reset=True``).
REFERENCE_FULL = "bptt_full"
#: Part of :data:`REFERENCE` that e-prop keeps (learning signal through the readout + regularizer).
KEPT_PART = "bptt_eprop_part"
#: Part of :data:`REFERENCE` that flows back through the recurrent weights (dropped by e-prop).
RECURRENT_PART = "bptt_recurrent_part"
#: Exact real-time recurrent learning (``rtrl=True``): the forward factorization of the reference gradient.
RTRL = "rtrl"
#: Estimators written by :func:`compare_run` (not read back as logged estimators).
WRITTEN = (REFERENCE, REFERENCE_FULL, KEPT_PART, RECURRENT_PART, RTRL)
#: Projections with a gradient, in log order (the trainer's parameter groups).
GRAD_PROJECTIONS = PROJECTIONS
#: Projections whose gradient is split into the kept and the recurrent part.
PART_PROJECTIONS = ("input", "recurrent")
#: HDF5 attribute set on every gradient dataset written here.
WRITTEN_BY = "neuroplast compare"


@dataclass(frozen=True)
class ReplayContext:
    """What is constant over the trials of a run: model, loss, regularizer, connectivity.

    Attributes
    ----------
    run : RunLog
        The file.
    config : Config
        Configuration stored in the file.
    params : ModelParams
        Model constants (from the stored config, as ``neuroplast run`` built them).
    loss : Loss
        Task loss.
    c_reg : float
        Rate-regularization coefficient ``training.reg_coeff``.
    f_target : float
        Target rate f* = ``reg_rate_hz · dt_ms · 1e-3``, spikes per step.
    connectivity : Connectivity
        Masks and edge lists, rebuilt from the log's edge lists.
    neuron : NeuronModel
        The neuron model (``network.neuron``; docs/model.md §10).
    neuron_values : mapping
        Its parameters (:func:`neuroplast.build.neuron_values`).
    """

    run: RunLog
    config: Any
    params: ModelParams
    loss: Loss
    c_reg: float
    f_target: float
    connectivity: Connectivity
    neuron: NeuronModel = field(default_factory=lambda: get_neuron(DEFAULT_NEURON))
    neuron_values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def derived_model(self) -> bool:
        """Whether the neuron model is not ``alif``: replayed and differentiated through its derived
        equations (:mod:`neuroplast.gradients.derived`) instead of the hand-written ones."""
        return self.neuron.name != DEFAULT_NEURON

    @property
    def edges(self) -> Mapping[str, tuple[np.ndarray, np.ndarray]]:
        """``projection -> (source_ids, target_ids)`` in edge order."""
        return self.connectivity.edges

    @property
    def n_in(self) -> int:
        return self.connectivity.n_in

    @property
    def n_rec(self) -> int:
        return self.connectivity.n_rec

    @property
    def n_out(self) -> int:
        return self.connectivity.n_out

    @property
    def masks(self) -> Mapping[str, np.ndarray]:
        """Dense connectivity masks (post × pre) of ``input``, ``recurrent``, ``output``."""
        return self.connectivity.masks

    def dense_weights(self, weights_before: dict[str, np.ndarray]) -> Weights:
        """Dense :class:`Weights` from edge vectors (``RunLog.replay(k).weights_before``).

        Parameters
        ----------
        weights_before : dict of str to numpy.ndarray
            ``projection -> (n_edges,)`` weights in edge order (``bias``: ``(n_out,)``).

        Returns
        -------
        Weights
            Post × pre matrices, zero outside the masks built from the edge lists.
        """
        return self.connectivity.weights(weights_before)

    def edge_vector(self, name: str, dense: np.ndarray) -> np.ndarray:
        """Dense (post × pre) gradient or weight matrix → 1-D array in the log's edge order of ``name``."""
        return self.connectivity.to_edges(name, dense)


@dataclass(frozen=True)
class ReplayedTrial:
    """One trial replayed with the NumPy reference.

    Attributes
    ----------
    index, iteration : int
        Trial index and training iteration.
    weights : Weights
        Dense weights the trial ran with.
    x : numpy.ndarray, shape (T, n_in)
        Input spikes.
    target : numpy.ndarray, shape (T, n_out)
        Regression target, or the one-hot label π* at every step (classification).
    mask : numpy.ndarray, shape (T,)
        Steps that enter the loss (1/0); all ones for regression.
    traj : Trajectory or ModelTrajectory
        Replayed trajectory (unbatched; a :class:`~neuroplast.model.stepper.ModelTrajectory` for a neuron
        model other than ``alif``).
    loss : float
        Task loss of the replay (dimensionless).
    logged_loss : float
        Task loss written by the training run.
    """

    index: int
    iteration: int
    weights: Weights
    x: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    traj: Trajectory | Any
    loss: float
    logged_loss: float

    @property
    def loss_rel_diff(self) -> float:
        """|replayed − logged| / max(|logged|, |replayed|) (0 when both are 0)."""
        scale = max(abs(self.loss), abs(self.logged_loss))
        return 0.0 if scale == 0 else abs(self.loss - self.logged_loss) / scale


def replay_context(run: RunLog) -> ReplayContext:
    """Build the :class:`ReplayContext` of a run log.

    The stored config is parsed without the machine-resource checks (``check_resources=False``): a log is
    data, and one made on a machine with more memory than this one is still replayed here.

    Raises
    ------
    RunFileError
        If the stored config is not a valid neuroplast config, a projection is missing, or the population
        sizes disagree with the config.
    """
    try:
        cfg = parse_config(tomllib.loads(run.config_toml), str(run.path), check_resources=False)
    except (tomllib.TOMLDecodeError, ConfigError) as exc:
        raise RunFileError(run.path, f"stored config cannot be used to replay the run: {exc}") from exc
    device = cfg.simulation.device.strip().lower()
    if device != AUTO and device_info(device).capabilities.nest_plasticity:
        raise RunFileError(
            run.path,
            f"cannot replay a run of simulation.device = {cfg.simulation.device!r}: its weights changed "
            "during each sequence by NEST's own models, which neuroplast's replay (docs/model.md) does not "
            'simulate (docs/validation.md, "NEST\'s current models")',
        )
    n_rec = int(cfg.network.n_rec)
    n_out = run.n_out
    if run.population_sizes.get("recurrent", n_rec) != n_rec or cfg.network.n_out != n_out:
        raise RunFileError(run.path, "population sizes disagree with the stored config")
    bias = run.projection("bias")
    src, tgt = bias.source_ids.astype(np.int64), bias.target_ids.astype(np.int64)
    if src.size and (src.max() >= n_out or tgt.max() >= n_out):
        raise RunFileError(run.path, "projection 'bias' has node ids outside the populations")
    conn = connectivity_of(run, n_rec)
    tr = cfg.training
    params = model_params(cfg)
    neuron, values = neuron_values(cfg, params)
    return ReplayContext(
        run=run,
        config=cfg,
        params=params,
        loss=get_loss(tr.loss),
        c_reg=float(tr.reg_coeff),
        f_target=float(target_rate(cfg)),
        connectivity=conn,
        neuron=neuron,
        neuron_values=values,
    )


def replay_trial(ctx: ReplayContext, k: int) -> ReplayedTrial | None:
    """Replay trial ``k`` with the NumPy reference.

    Parameters
    ----------
    ctx : ReplayContext
    k : int
        Trial index.

    Returns
    -------
    ReplayedTrial or None
        ``None`` if the weights of the trial's iteration are not in the file (writer killed before the
        iteration ended).
    """
    r = ctx.run.replay(k)
    if r.weights_before is None:
        return None
    T = r.n_steps
    if ctx.run.task_kind == "classification":
        target = np.zeros((T, ctx.n_out))
        target[:, int(r.target)] = 1.0
        mask = np.asarray(r.mask, dtype=np.float64)
    else:
        target = np.asarray(r.target, dtype=np.float64)
        mask = np.ones(T)
    w = ctx.dense_weights(r.weights_before)
    if ctx.derived_model:
        from neuroplast.model.stepper import simulate_model

        traj: Any = simulate_model(ctx.neuron, ctx.neuron_values, ctx.params, w, r.x)
        y = traj.y
    else:
        from neuroplast.gradients.trial import TrialData

        replay = TrialData.make(ctx.params, w, r.x, target, mask, ctx.loss)  # simulates the trial
        traj, y = replay.traj, replay.y
    loss = float(ctx.loss.value(y, target, mask))
    return ReplayedTrial(r.index, r.iteration, w, r.x, target, mask, traj, loss, r.loss)


def _exact_grads(
    ctx: ReplayContext, tr: ReplayedTrial, keep_reset: bool, rtrl: bool = False
) -> dict[str, dict[str, np.ndarray]]:
    """Dense exact gradients and factorization parts of one trial: ``estimator -> projection -> array``
    (with ``rtrl``, also :data:`RTRL`)."""
    out = (
        _model_exact_grads(ctx, tr, keep_reset)
        if ctx.derived_model
        else _alif_exact_grads(ctx, tr, keep_reset)
    )
    if rtrl:
        from neuroplast.gradients.derived import model_rtrl

        out[RTRL] = model_rtrl(model_trial(ctx, tr), detach_reset=not keep_reset)
    return out


def model_trial(ctx: ReplayContext, tr: ReplayedTrial, weights: Weights | None = None) -> Any:
    """The trial as :mod:`neuroplast.gradients.derived` reads it (simulated through the model's statements:
    for ``alif`` the same trajectory as the replay, bit for bit); ``weights``: re-simulated with those."""
    from neuroplast.gradients.derived import ModelTrial

    replayed = ctx.derived_model and weights is None
    return ModelTrial.make(
        ctx.neuron,
        ctx.neuron_values,
        ctx.params,
        tr.weights if weights is None else weights,
        tr.x,
        tr.target,
        tr.mask,
        ctx.loss,
        traj=tr.traj if replayed else None,
        c_reg=ctx.c_reg,
        f_target=ctx.f_target,
    )


def _alif_exact_grads(
    ctx: ReplayContext, tr: ReplayedTrial, keep_reset: bool
) -> dict[str, dict[str, np.ndarray]]:
    """:func:`_exact_grads` of the ``alif`` model (the hand-written BPTT and factorization)."""
    from neuroplast.gradients.bptt import bptt_grads, ideal_learning_signal
    from neuroplast.gradients.eprop import factorized_grads
    from neuroplast.gradients.trial import TrialData

    trial = TrialData(
        ctx.params, tr.weights, tr.x, tr.traj, tr.target, tr.mask, ctx.loss, ctx.c_reg, ctx.f_target
    )
    out: dict[str, dict[str, np.ndarray]] = {REFERENCE: bptt_grads(trial)}
    if keep_reset:
        out[REFERENCE_FULL] = bptt_grads(trial, detach_reset=False)
    sig = ideal_learning_signal(trial)
    for est, part in ((KEPT_PART, "eprop"), (RECURRENT_PART, "recurrent")):
        parts = {
            name: factorized_grads(ctx.params, trial.traj, trial.pre[name], sig[part], filtered=False)
            for name in PART_PROJECTIONS
        }
        out[est] = trial.masked(parts)
    return out


def _model_exact_grads(
    ctx: ReplayContext, tr: ReplayedTrial, keep_reset: bool
) -> dict[str, dict[str, np.ndarray]]:
    """:func:`_exact_grads` of a neuron model other than ``alif`` (its derived BPTT and eligibility)."""
    from neuroplast.gradients.derived import model_bptt, model_signal_parts

    trial = model_trial(ctx, tr)
    exact, adjoints = model_bptt(trial)
    out: dict[str, dict[str, np.ndarray]] = {REFERENCE: exact}
    if keep_reset:
        out[REFERENCE_FULL] = model_bptt(trial, detach_reset=False)[0]
    parts = model_signal_parts(trial, adjoints)
    out[KEPT_PART], out[RECURRENT_PART] = parts["eprop"], parts["recurrent"]
    return out


def _summary(per_trial: np.ndarray, done: np.ndarray) -> dict[str, Any]:
    """Mean over trials (NaN ignored), first and last replayed trial, and the per-trial values."""
    vals = per_trial[done]
    finite = vals[np.isfinite(vals)]
    return {
        "mean": float(np.mean(finite)) if finite.size else float("nan"),
        "first": float(vals[0]) if vals.size else float("nan"),
        "last": float(vals[-1]) if vals.size else float("nan"),
        "per_trial": per_trial,
    }


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr)


def compare_run(
    path: str | Path,
    *,
    estimators: list[str] | None = None,
    keep_reset: bool = False,
    progress: bool = True,
    rtrl: bool = False,
) -> dict[str, Any]:
    """Compute exact BPTT for every trial of a run log, store it, and compare the logged estimators.

    Parameters
    ----------
    path : str or Path
        Run log written by ``neuroplast run``; modified in place (``grad/bptt``, ``grad/bptt_eprop_part``,
        ``grad/bptt_recurrent_part``, and ``grad/bptt_full`` with ``keep_reset``; existing ones replaced).
    estimators : list of str, optional
        Estimators to compare (default: every stored one except those written here).
    keep_reset : bool
        Also compute the gradient with the reset term −v_th z_{t−1} differentiated (``grad/bptt_full``) and
        compare against it instead of the reset-detached gradient.
    progress : bool
        Show a progress bar and messages on stderr.
    rtrl : bool
        Also compute exact RTRL (:func:`neuroplast.gradients.derived.model_rtrl`, ``grad/rtrl``), the
        forward factorization of the reference gradient, and compare it as an estimator (it equals the
        reference to rounding).  Small networks only (``UsageError`` beyond
        :data:`~neuroplast.gradients.derived.RTRL_MAX_OPS`).

    Returns
    -------
    dict
        ``file``, ``rule``, ``task_kind``, ``n_trials``, ``replayed`` (trial indices), ``skipped`` (trial
        indices without weights), ``reference`` (estimator compared against), ``keep_reset``,
        ``loss_check`` (``max_rel_diff``, ``tolerance``), ``written`` (estimator names), and
        ``projections``: ``projection -> estimator -> metric -> {mean, first, last, per_trial}``
        with metrics ``cosine``, ``rel_error``, ``sign_agreement``, ``norm_ratio`` (dimensionless; see
        :mod:`neuroplast.analysis.metrics`) and, for input and recurrent, ``rel_error_vs_eprop_part``
        (‖ĝ − kept part‖ / ‖kept part‖: 0 for an exact symmetric-feedback e-prop).  ``per_trial`` is a
        ``(n_trials,)`` array, NaN for skipped trials.  ``bptt_eprop_part`` (the best e-prop can do) and
        a logged ``bptt`` (from ``--rule bptt``, as ``bptt_logged``) appear as estimators too.

    Raises
    ------
    RunFileError
        If the file is not a replayable run log, has no trial with weights, learned inside its trials, or a
        replayed loss differs from the logged one (the replay would not be the same trajectory).
    """
    run = open_run(path)
    if run.n_trials == 0:
        raise RunFileError(run.path, "has no complete trials to compare")
    if run.update_every_steps:
        raise RunFileError(
            run.path,
            f"the run learned inside its trials (training.update_every_steps = {run.update_every_steps}): "
            "its weights change during a trial, so there is no single-weights BPTT gradient to compare "
            "with; compare a run with per-trial updates",
        )
    ctx = replay_context(run)
    if rtrl:
        _check_rtrl_size(ctx, run)
    reference = REFERENCE_FULL if keep_reset else REFERENCE
    stored, logged_bptt = _stored_estimators(run, estimators)  # read before anything is written
    computed, done, skipped, max_diff = _replay_all(ctx, keep_reset, progress, rtrl)
    if "bptt_logged" in stored and logged_bptt:  # keep the training run's own bptt under another name
        rename_gradient(run.path, REFERENCE, "bptt_logged", logged_bptt, overwrite=True)
    written = []
    for est, by_proj in computed.items():  # each estimator lands in every projection, or in none
        detach = not keep_reset if est == RTRL else est != REFERENCE_FULL
        marks = {"written_by": WRITTEN_BY, "detach_reset": np.int8(detach)}
        add_gradients(run.path, est, by_proj, overwrite=True, attrs=marks)
        written.append(est)
    rows = {**stored, KEPT_PART: computed[KEPT_PART], **({RTRL: computed[RTRL]} if rtrl else {})}
    return {
        "file": str(run.path),
        "rule": str(ctx.config.training.rule),
        "task_kind": run.task_kind,
        "n_trials": run.n_trials,
        "replayed": [int(k) for k in np.flatnonzero(done)],
        "skipped": skipped,
        "reference": reference,
        "keep_reset": bool(keep_reset),
        "loss_check": {"max_rel_diff": max_diff, "tolerance": LOSS_RTOL},
        "written": written,
        "projections": _metrics(rows, computed[reference], computed[KEPT_PART], done),
    }


def _stored_estimators(
    run: RunLog, estimators: list[str] | None
) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """The logged estimators to compare (``label -> projection -> (n_trials, n_edges)``) and the
    projections that hold a ``bptt`` of the training run itself (compared as ``bptt_logged``)."""
    stored: dict[str, dict[str, np.ndarray]] = {}
    logged_bptt: list[str] = []
    for name in GRAD_PROJECTIONS:
        p = run.projection(name)
        for est in p.estimators:
            own = est == REFERENCE and p.grad_attrs(est).get("written_by") is None
            if own:
                logged_bptt.append(name)
            if est in WRITTEN and not own:
                continue
            label = "bptt_logged" if est == REFERENCE else est
            if estimators is not None and est not in estimators and label not in estimators:
                continue
            stored.setdefault(label, {})[name] = np.asarray(p.grad(est), dtype=np.float64)
    if estimators is not None:
        missing = [e for e in estimators if e not in stored]
        if missing:
            raise RunFileError(run.path, f"has no gradient estimator {', '.join(missing)}")
    return stored, logged_bptt


def _check_rtrl_size(ctx: ReplayContext, run: RunLog) -> None:
    """RTRL's cost on the longest trial, refused in one line beyond what it is meant for."""
    from neuroplast.errors import UsageError
    from neuroplast.gradients.derived import RTRL_MAX_OPS, rtrl_ops

    T = int(np.max(run.trials["n_steps"])) if run.n_trials else 0
    ops = rtrl_ops(ctx.n_rec, ctx.n_in, T)
    if ops > RTRL_MAX_OPS:
        raise UsageError(
            f"--rtrl: exact RTRL of {ctx.n_rec} neurons, {ctx.n_in} inputs and {T} steps needs ≈ {ops:.1e} "
            f"multiply-adds per trial (limit {RTRL_MAX_OPS:.0e}, N³ (n_in + N) T): it is for small networks"
        )


def _replay_all(
    ctx: ReplayContext, keep_reset: bool, progress: bool, rtrl: bool = False
) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray, list[int], float]:
    """Replay every trial and compute its exact gradients in edge order.

    Returns ``(computed, done, skipped, max_loss_rel_diff)``; rows of trials without weights stay NaN.
    """
    run = ctx.run
    n = run.n_trials
    n_edges = {name: ctx.edges[name][0].size for name in GRAD_PROJECTIONS}
    computed: dict[str, dict[str, np.ndarray]] = {
        est: {name: np.full((n, n_edges[name]), np.nan) for name in projs}
        for est, projs in (
            (REFERENCE, GRAD_PROJECTIONS),
            (KEPT_PART, PART_PROJECTIONS),
            (RECURRENT_PART, PART_PROJECTIONS),
            *([(REFERENCE_FULL, GRAD_PROJECTIONS)] if keep_reset else []),
            *([(RTRL, GRAD_PROJECTIONS)] if rtrl else []),
        )
    }
    done = np.zeros(n, dtype=bool)
    skipped: list[int] = []
    max_diff = 0.0
    bar = Progress(n, 0, "compare", enabled=progress, unit="trial")  # the style of `neuroplast run`
    try:
        for k in range(n):
            diff = _replay_into(ctx, k, keep_reset, rtrl, computed)
            if diff is None:
                skipped.append(k)
            else:
                max_diff, done[k] = max(max_diff, diff), True
            bar.step()
    finally:
        bar.close()
    if not done.any():
        raise RunFileError(
            run.path,
            f"cannot be replayed: none of its {n} trials has the weights of its iteration "
            "(the writer stopped before the first update was logged)",
        )
    if skipped:  # always said, also without progress output
        _say(
            True,
            f"{run.path}: skipped {len(skipped)} trial(s) without stored weights "
            f"(trials {skipped[0]}..{skipped[-1]}); their gradients are NaN",
        )
    return computed, done, skipped, max_diff


def _replay_into(
    ctx: ReplayContext, k: int, keep_reset: bool, rtrl: bool, computed: dict[str, dict[str, np.ndarray]]
) -> float | None:
    """Replay trial ``k`` and write its exact gradients into row ``k`` of ``computed``; the relative
    difference of its replayed loss from the logged one, or None when the trial has no stored weights."""
    tr = replay_trial(ctx, k)
    if tr is None:
        return None
    if not tr.loss_rel_diff <= LOSS_RTOL:
        raise RunFileError(
            ctx.run.path,
            f"trial {k}: replayed loss {tr.loss:.12g} differs from the logged loss {tr.logged_loss:.12g} "
            f"(relative {tr.loss_rel_diff:.2g} > {LOSS_RTOL:g}); the file does not reproduce its run, "
            "nothing written",
        )
    for est, by_proj in _exact_grads(ctx, tr, keep_reset, rtrl).items():
        for name, dense in by_proj.items():
            computed[est][name][k] = ctx.edge_vector(name, dense)
    return tr.loss_rel_diff


def _metrics(
    rows: dict[str, dict[str, np.ndarray]],
    ref: dict[str, np.ndarray],
    kept: dict[str, np.ndarray],
    done: np.ndarray,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``projection -> estimator -> metric -> summary`` of every estimator against the reference."""
    projections: dict[str, dict[str, dict[str, Any]]] = {}
    for name in GRAD_PROJECTIONS:
        res: dict[str, dict[str, Any]] = {}
        for est in sorted(rows):
            if name not in rows[est]:
                continue
            g = rows[est][name]
            m = {
                key: _summary(np.asarray(fn(g, ref[name], batch_axes=1)), done) for key, fn in METRICS.items()
            }
            if name in PART_PROJECTIONS and est != KEPT_PART:
                m["rel_error_vs_eprop_part"] = _summary(
                    np.asarray(relative_error(g, kept[name], batch_axes=1)), done
                )
            res[est] = m
        projections[name] = res
    return projections


# --------------------------------------------------------------------------- self-test

#: Largest relative difference accepted where the comparator must agree (``compare --self-test``).
SELF_TEST_AGREE = 1e-10
#: Smallest relative difference expected where it must disagree (the logged W_rec ≠ 0).
SELF_TEST_DIFFER = 1e-6


def _rel(a: dict[str, np.ndarray], b: dict[str, np.ndarray], names: tuple[str, ...]) -> float:
    """‖a − b‖ / ‖b‖ over the listed projections together (0 when both are 0)."""
    num = np.sqrt(sum(float(np.sum((a[n] - b[n]) ** 2)) for n in names))
    den = np.sqrt(sum(float(np.sum(b[n] ** 2)) for n in names))
    if den == 0:
        return 0.0 if num == 0 else float("inf")
    return float(num / den)


def _self_test_grads(ctx: ReplayContext, tr: ReplayedTrial, w0: Weights) -> dict[str, dict[str, np.ndarray]]:
    """The gradients :func:`_self_test_trial` compares, for a neuron model other than ``alif`` (its derived
    e-prop, BPTT and ideal-signal sum; ``w0``: the weights with W_rec = 0)."""
    from neuroplast.gradients.derived import model_bptt, model_eprop_grads, model_signal_parts

    zero = model_trial(ctx, tr, w0)  # re-simulated with W_rec = 0
    logged = model_trial(ctx, tr)
    g, adjoints = model_bptt(logged)
    parts = model_signal_parts(logged, adjoints)
    return {
        "g0": model_bptt(zero)[0],
        "e0": model_eprop_grads(zero),
        "g": g,
        "ideal": {n: parts["eprop"][n] + parts["recurrent"][n] for n in PART_PROJECTIONS},
        "e": model_eprop_grads(logged),
    }


def _self_test_trial(ctx: ReplayContext, tr: ReplayedTrial) -> list[dict[str, Any]]:
    """The three checks of :func:`self_test` on one replayed trial."""
    w = tr.weights
    w0 = Weights(w.w_in, np.zeros_like(w.w_rec), w.w_out, w.b_out, w.mask_in, w.mask_rec, w.mask_out)
    if ctx.derived_model:
        return _self_test_checks(**_self_test_grads(ctx, tr, w0))
    from neuroplast.gradients.bptt import bptt_grads, ideal_learning_signal
    from neuroplast.gradients.eprop import eprop_grads, factorized_grads
    from neuroplast.gradients.trial import TrialData

    kw = dict(c_reg=ctx.c_reg, f_target=ctx.f_target)
    zero = TrialData.make(ctx.params, w0, tr.x, tr.target, tr.mask, ctx.loss, **kw)  # re-simulated
    logged = TrialData.make(ctx.params, w, tr.x, tr.target, tr.mask, ctx.loss, traj=tr.traj, **kw)
    g0 = bptt_grads(zero)
    e0 = eprop_grads(zero, feedback=w.w_out.T)
    g = bptt_grads(logged)
    sig = ideal_learning_signal(logged)["total"]
    ideal = logged.masked(
        {
            n: factorized_grads(ctx.params, logged.traj, logged.pre[n], sig, filtered=False)
            for n in PART_PROJECTIONS
        }
    )
    e = eprop_grads(logged, feedback=w.w_out.T)
    return _self_test_checks(g0, e0, g, ideal, e)


def _self_test_checks(
    g0: dict[str, np.ndarray],
    e0: dict[str, np.ndarray],
    g: dict[str, np.ndarray],
    ideal: dict[str, np.ndarray],
    e: dict[str, np.ndarray],
) -> list[dict[str, Any]]:
    """The three checks of :func:`self_test` from BPTT and e-prop with W_rec = 0 (``g0``, ``e0``), BPTT, the
    ideal-signal sum and e-prop with the logged weights (``g``, ``ideal``, ``e``)."""
    every = tuple(GRAD_PROJECTIONS)
    return [
        {"check": "W_rec = 0: e-prop equals BPTT", "rel_diff": _rel(e0, g0, every), "expect": "agree"},
        {
            "check": "ideal learning signal: sum_t L*_t e_t equals BPTT",
            "rel_diff": _rel(ideal, g, PART_PROJECTIONS),
            "expect": "agree",
        },
        {
            "check": "logged W_rec: e-prop differs from BPTT",
            "rel_diff": _rel(e, g, every),
            "expect": "differ",
        },
    ]


def self_test(path: str | Path, *, n_trials: int = 3) -> dict[str, Any]:
    """Show on a run's own model and trials that the comparator can both agree and disagree (read only).

    On up to ``n_trials`` replayable trials (first, middle, last), each replayed from the file:

    1. with W_rec = 0 (the trial re-simulated), symmetric e-prop equals BPTT (every projection;
       relative difference ≤ :data:`SELF_TEST_AGREE`);
    2. with the logged weights, Σ_t L*_t e_t (ideal learning signal) equals BPTT (input, recurrent;
       ≤ :data:`SELF_TEST_AGREE`);
    3. with the logged W_rec, symmetric e-prop differs from BPTT (> :data:`SELF_TEST_DIFFER`).

    Nothing is written into the file.

    Returns
    -------
    dict
        ``file``, ``trials`` (indices), ``loss_check`` (max replayed-vs-logged relative difference),
        ``checks``: list of ``{check, trial, rel_diff, expect, ok}``, ``ok`` (all passed).

    Raises
    ------
    RunFileError
        Not a replayable run log, learned inside its trials, or a replay that does not reproduce its loss.
    """
    run = open_run(path)
    if run.n_trials == 0:
        raise RunFileError(run.path, "has no complete trials to test on")
    if run.update_every_steps:
        raise RunFileError(
            run.path,
            f"the run learned inside its trials (training.update_every_steps = {run.update_every_steps}): "
            "there is no single-weights BPTT gradient to test the comparator on",
        )
    ctx = replay_context(run)
    picks = sorted({0, run.n_trials // 2, run.n_trials - 1})[: max(1, n_trials)]
    checks: list[dict[str, Any]] = []
    used, max_diff = [], 0.0
    for k in picks:
        tr = replay_trial(ctx, k)
        if tr is None:
            continue
        if not tr.loss_rel_diff <= LOSS_RTOL:
            raise RunFileError(
                run.path,
                f"trial {k}: replayed loss differs from the logged loss (relative {tr.loss_rel_diff:.2g}); "
                "the file does not reproduce its run",
            )
        max_diff = max(max_diff, tr.loss_rel_diff)
        used.append(k)
        for c in _self_test_trial(ctx, tr):
            agree = c["expect"] == "agree"
            ok = c["rel_diff"] <= SELF_TEST_AGREE if agree else c["rel_diff"] > SELF_TEST_DIFFER
            checks.append({**c, "trial": k, "ok": bool(ok)})
    if not used:
        raise RunFileError(run.path, "none of its trials has the weights of its iteration")
    return {
        "file": str(run.path),
        "trials": used,
        "loss_check": {"max_rel_diff": max_diff, "tolerance": LOSS_RTOL},
        "checks": checks,
        "ok": all(c["ok"] for c in checks),
    }
